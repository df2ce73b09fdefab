"""Finding the scan sector of an ultrasound clip, and the depth of each pixel inside it.

An ultrasound frame shows the image inside a fan (curvilinear and phased-array probes) or a
rectangle (linear probes); around it lies a dark background carrying burned-in text (patient
name, dates, institution), calipers, scales, colour bars and logos. :func:`detect_sector`
finds the sector so that everything outside it can be masked: that removes identifying text
and the shortcuts a network could learn from overlays. :func:`depth_geometry` and
:func:`depth_map` give the normalised distance from the probe, used by depth-dependent
augmentations.

No library detects scan sectors, so the detection here is hand-written on OpenCV morphology.
It rests on two facts: speckle inside the sector changes from frame to frame while overlays
are static (temporal mode), and the sector is a large convex region whereas text strokes are
thin (intensity mode, for single frames and frozen clips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

#: modes understood by :func:`detect_sector`
SECTOR_MODES = ("auto", "temporal", "intensity")

#: a change of at most this many grey levels (of 255) between frames counts as coding noise
_NOISE_LEVELS = 2

#: the background of a frame is looked for among grey levels up to this one (of 255)
_DARKEST_BACKGROUND = 32


def clip_to_grey_frames(clip: np.ndarray | torch.Tensor) -> np.ndarray:
    """The brightest channel of every frame, as uint8 ``(T, H, W)``.

    Args:
        clip: either a float clip ``(C, T, H, W)`` with values in [0, 1] (the transforms'
            layout, numpy or torch), or uint8 frames ``(T, H, W, C)`` as returned by the
            readers. A single frame may be given as ``(H, W)``. The dtype tells the layouts
            apart: uint8 means frames-first, channels-last.

    The brightest channel rather than the mean is kept so that coloured overlays (a blue
    banner, green markers) count as bright.
    """
    if isinstance(clip, torch.Tensor):
        clip = clip.detach().cpu().numpy()
    clip = np.asarray(clip)
    if clip.dtype == np.uint8:
        if clip.ndim == 2:
            return clip[None]
        if clip.ndim == 4:
            return clip.max(axis=-1)
        raise ValueError(f"uint8 frames must have shape (T, H, W, C) or (H, W), got {clip.shape}")
    if clip.ndim == 2:
        clip = clip[None, None]
    if clip.ndim != 4:
        raise ValueError(f"a float clip must have shape (C, T, H, W) or (H, W), got {clip.shape}")
    grey = np.clip(np.nan_to_num(clip.max(axis=0).astype(np.float32)), 0.0, 1.0)
    return np.rint(grey * 255.0).astype(np.uint8)


def _odd(size: float) -> int:
    size = max(3, int(round(size)))
    return size if size % 2 else size + 1


def _disc(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


_REGION_KEYS = ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")


def _largest_box(region_bounds) -> tuple[int, int, int, int]:
    """The box to search: given one box, that box; given several, the largest.

    Dictionaries holding DICOM ultrasound-region attributes (as in the DICOM reader's
    ``metadata["us_regions"]``) are accepted too; 2D regions (RegionSpatialFormat 1) are then
    preferred over spectral or M-mode strips.
    """
    if isinstance(region_bounds, Mapping):
        region_bounds = [region_bounds]
    if isinstance(region_bounds, Sequence) and region_bounds and isinstance(region_bounds[0], Mapping):
        regions = [r for r in region_bounds if all(r.get(k) is not None for k in _REGION_KEYS)]
        if not regions:
            raise ValueError("none of the ultrasound regions gives its pixel bounds")
        two_d = [r for r in regions if r.get("RegionSpatialFormat") == 1]
        region_bounds = [[r[k] for k in _REGION_KEYS] for r in (two_d or regions)]
    boxes = np.asarray(region_bounds, dtype=np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return tuple(int(round(v)) for v in boxes[int(np.argmax(areas))])


def region_box_mask(region_bounds, height: int, width: int) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the box ``(x0, y0, x1, y1)``, bounds inclusive.

    The bounds follow DICOM's Sequence of Ultrasound Regions (RegionLocationMinX0,
    RegionLocationMinY0, RegionLocationMaxX1, RegionLocationMaxY1; pixels, inclusive).
    Several boxes may be given (``(N, 4)``, or a list of region dictionaries); see
    :func:`_largest_box` for the one used.
    """
    x0, y0, x1, y1 = _largest_box(region_bounds)
    box = np.zeros((height, width), dtype=bool)
    box[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
    return box


def _convex_hull_of_largest_component(binary: np.ndarray) -> np.ndarray | None:
    """Fill the convex hull of the largest 8-connected component; ``None`` if there is none."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    points = cv2.findNonZero((labels == largest).astype(np.uint8))
    hull = cv2.convexHull(points)
    filled = np.zeros(binary.shape, dtype=np.uint8)
    cv2.fillConvexPoly(filled, hull, 1)
    # fillConvexPoly paints the hull's outline too, so even a component one pixel wide is
    # kept whole.
    return filled.astype(bool)


def _log_otsu_level(values: np.ndarray) -> int:
    """Otsu's threshold computed on log(1 + values), returned in the values' own scale.

    The variation of a clip spans two orders of magnitude (faint far-field speckle to bright
    tissue edges); on a linear scale Otsu splits bright tissue from the rest and drops the
    faint but moving parts of the sector, on a log scale it splits moving from static.
    """
    log_scale = 255.0 / np.log(256.0)
    logs = np.rint(np.log1p(values.astype(np.float32)) * log_scale).astype(np.uint8)
    level, _ = cv2.threshold(logs, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(np.floor(np.expm1(level / log_scale)))


def _temporal_candidate(grey: np.ndarray, close_size: int, open_size: int) -> np.ndarray:
    variation = (grey.max(axis=0) - grey.min(axis=0)).astype(np.uint8)
    level = max(_log_otsu_level(variation), _NOISE_LEVELS)
    binary = (variation > level).astype(np.uint8)
    # Closing joins the scattered speckle changes into one region (dark parts of the sector
    # change little on some frames); the opening then cuts thin moving things (an ECG
    # trace, a frame counter) from it.
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, _disc(close_size))
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, _disc(open_size))


def _background_level(image: np.ndarray, box: np.ndarray | None) -> int:
    """Grey level of the background: most of the dark pixels along the outer ring of the image.

    The ring (or that of the region box) lies outside the sector on nearly every scanner
    layout; its dark pixels are the background, which lossy colour coding leaves at 0 or 1-2
    levels in blocks. Bright ring pixels (a banner, text) are left out. Some scanners paint
    the sector only one level above the background, so the level must be this precise.
    """
    if box is not None:
        rows, columns = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
        image = image[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    height, width = image.shape
    band = max(1, int(round(0.02 * min(height, width))))
    ring = np.concatenate(
        [image[:band].ravel(), image[-band:].ravel(), image[:, :band].ravel(), image[:, -band:].ravel()]
    )
    dark = ring[ring <= _DARKEST_BACKGROUND]
    return int(np.percentile(dark, 75)) if dark.size else 0


def _intensity_candidate(
    grey: np.ndarray, open_size: int, dark_level: float | None, box: np.ndarray | None
) -> np.ndarray:
    image = grey.max(axis=0)
    # A 5x5 median removes isolated compression noise from a black background without
    # moving the sector's edge.
    image = cv2.medianBlur(image, 5)
    if dark_level is None:
        threshold = _background_level(image, box)
    else:
        threshold = int(np.floor(dark_level * 255.0))
    binary = (image > threshold).astype(np.uint8)
    # An opening wider than a text stroke removes burned-in text and thin markers and cuts
    # calipers and scales that touch the sector from it. No closing after it: that would
    # bridge the gap between the sector and a banner or logo beside it (the convex hull
    # fills the sector's holes anyway).
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, _disc(open_size))


def spread_frame_indices(n_frames: int, count: int) -> np.ndarray:
    """Indices (int64, sorted) of ``count`` frames spread evenly over a loop of ``n_frames``
    (every frame of a shorter loop): where a loop's sector is found, so that speckle has moved
    between them while burned-in text has not."""
    if n_frames < 1 or count < 1:
        raise ValueError(f"n_frames and count must be >= 1, got {n_frames}, {count}")
    return np.unique(np.linspace(0, n_frames - 1, min(int(count), int(n_frames))).round().astype(np.int64))


def detect_sector(
    clip: np.ndarray | torch.Tensor,
    mode: str = "auto",
    region_bounds: Sequence[float] | np.ndarray | None = None,
    stroke_width: int | None = None,
    dark_level: float | None = None,
    min_moving_fraction: float = 0.02,
) -> np.ndarray:
    """Boolean mask ``(H, W)`` of the scan sector: one convex region, True inside.

    Args:
        clip: float ``(C, T, H, W)`` in [0, 1], or uint8 frames ``(T, H, W, C)`` as the
            readers return them, or one frame ``(H, W)`` (see :func:`clip_to_grey_frames`).
        mode: ``"temporal"``: pixels whose value changes over the frames (speckle moves,
            overlays do not), thresholded with Otsu's method on a log scale; needs T >= 2. ``"intensity"``: pixels
            brighter than the background, with thin structures (text strokes) removed by a
            morphological opening. ``"auto"``: temporal when at least ``min_moving_fraction``
            of the pixels change by more than coding noise, intensity otherwise (single
            frames, frozen clips) or when motion shows no region. Motion misleads on files
            whose frames are separate images rather than a cine loop: use intensity there.
        region_bounds: ``(x0, y0, x1, y1)`` in pixels, inclusive (DICOM Sequence of
            Ultrasound Regions); the search is restricted to that box. An ``(N, 4)`` array of
            boxes, or a list of region dictionaries with the DICOM keywords (the DICOM
            reader's ``metadata["us_regions"]``), may be given: the largest (2D) one is used.
        stroke_width: width in pixels above which a structure is kept; the opening kernel
            is ``stroke_width`` wide. Default: 2% of the shorter image side (at least 3),
            wider than the strokes of burned-in text.
        dark_level: intensity mode only: pixels at or below this level (in [0, 1]) are
            background. Default: the level of most dark pixels along the border of the
            image (or of the region box), where the background lies on scanner layouts.
        min_moving_fraction: see ``mode="auto"``.

    Returns:
        bool array ``(H, W)``: the convex hull of the largest component found (sectors are
        convex; overlays are left out by the component step). For a curvilinear probe the
        hull also covers the thin sliver between the probe's arc and its chord. When nothing
        is found (a blank frame) the whole image (or region box) is returned: there is then
        nothing to hide.
    """
    if mode not in SECTOR_MODES:
        raise ValueError(f"mode must be one of {SECTOR_MODES}, got {mode!r}")
    grey = clip_to_grey_frames(clip)
    n_frames, height, width = grey.shape
    box = None
    if region_bounds is not None and not isinstance(region_bounds, Mapping) and len(region_bounds) == 0:
        region_bounds = None  # a file without ultrasound regions
    if region_bounds is not None:
        box = region_box_mask(region_bounds, height, width)
        grey = np.where(box[None], grey, np.uint8(0))

    open_size = _odd(stroke_width if stroke_width is not None else 0.02 * min(height, width))
    close_size = _odd(0.01 * min(height, width))
    if mode == "temporal" and n_frames < 2:
        raise ValueError(f"temporal sector detection needs at least 2 frames, got {n_frames}")
    if mode == "auto":
        variation = grey.max(axis=0) - grey.min(axis=0) if n_frames > 1 else np.zeros((1,))
        mode = "temporal" if (variation > _NOISE_LEVELS).mean() >= min_moving_fraction else "intensity"
        fall_back = True
    else:
        fall_back = False
    sector = None
    if mode == "temporal":
        sector = _convex_hull_of_largest_component(_temporal_candidate(grey, close_size, open_size))
    if mode == "intensity" or (sector is None and fall_back):
        sector = _convex_hull_of_largest_component(_intensity_candidate(grey, open_size, dark_level, box))
    if sector is None:
        sector = np.ones((height, width), dtype=bool) if box is None else box
    elif box is not None:
        sector &= box
    return sector


@dataclass(frozen=True)
class DepthGeometry:
    """Where the probe is, so that depth can be measured from it.

    Attributes:
        radial: True for a fan (depth = distance from the apex, where the fan's straight
            sides meet), False for a rectangle (depth = row).
        origin_yx: the apex ``(row, column)`` in pixels (may lie above the image for
            curvilinear probes); ignored when not ``radial``.
        depth_range: the distances (pixels) mapped to depth 0 and 1: from the apex (or the
            first row) to the probe surface and to the deepest point of the sector.
    """

    radial: bool
    origin_yx: tuple[float, float]
    depth_range: tuple[float, float]

    @classmethod
    def top_of_image(cls, height: int) -> DepthGeometry:
        """The probe along the top row, depth 1 at the last row."""
        return cls(False, (0.0, 0.0), (0.0, float(max(height - 1, 1))))

    def as_params(self) -> dict:
        """Plain numbers, for recording with a transform's parameters."""
        return {
            "radial": bool(self.radial),
            "origin_yx": [float(v) for v in self.origin_yx],
            "depth_range": [float(v) for v in self.depth_range],
        }

    @classmethod
    def from_params(cls, params) -> DepthGeometry:
        return cls(
            bool(params["radial"]),
            tuple(float(v) for v in params["origin_yx"]),
            tuple(float(v) for v in params["depth_range"]),
        )


def _fit_side(rows: np.ndarray, columns: np.ndarray, usable: np.ndarray) -> tuple[float, float] | None:
    """Least-squares line ``column = slope * row + offset`` through the usable boundary points."""
    if usable.sum() < 3:
        return None
    slope, offset = np.polyfit(rows[usable].astype(np.float64), columns[usable].astype(np.float64), 1)
    return float(slope), float(offset)


def depth_geometry(mask: np.ndarray | torch.Tensor, min_half_angle_deg: float = 2.0) -> DepthGeometry:
    """Estimate where the probe is from a sector mask.

    Args:
        mask: the sector, ``(H, W)`` or ``(1, T|1, H, W)`` (any frame-wise union is used),
            non-zero inside.
        min_half_angle_deg: sides that open by less than this are taken as parallel: a
            linear probe, depth measured by row.

    Fits a line to the left and to the right boundary of the sector between its top and its
    widest row (where a fan's straight sides end) and intersects them. Boundary points on
    the image border are left out (a sector cut by the image edge); with one side left, the
    apex is put above the middle of the top row.
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 4:
        mask = mask.reshape(-1, *mask.shape[-2:]).max(axis=0)
    if mask.ndim != 2:
        raise ValueError(f"a sector mask must be (H, W) or (1, T, H, W), got {mask.shape}")
    mask = mask > 0.5 if mask.dtype != bool else mask
    height, width = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size < 2:
        return DepthGeometry.top_of_image(height)
    top, bottom = int(rows[0]), int(rows[-1])
    left = np.argmax(mask[rows], axis=1)
    right = width - 1 - np.argmax(mask[rows, ::-1], axis=1)
    widths = right - left
    linear = DepthGeometry(False, (0.0, 0.0), (float(top), float(max(bottom, top + 1))))

    widest = int(np.argmax(widths >= widths.max() - 1))  # first row within a pixel of the widest
    lo, hi = int(round(0.1 * widest)), int(round(0.9 * widest))
    in_span = np.zeros(rows.size, dtype=bool)
    in_span[lo : hi + 1] = True
    left_line = _fit_side(rows, left, in_span & (left > 0))
    right_line = _fit_side(rows, right, in_span & (right < width - 1))
    min_slope = np.tan(np.radians(min_half_angle_deg))
    if left_line is not None and right_line is not None:
        (a_left, b_left), (a_right, b_right) = left_line, right_line
        if a_right - a_left < 2 * min_slope:
            return linear
        apex_y = (b_left - b_right) / (a_right - a_left)
        apex_x = a_left * apex_y + b_left
    else:
        side = left_line if left_line is not None else right_line
        if side is None or abs(side[0]) < min_slope:
            return linear
        apex_x = 0.5 * (left[0] + right[0])
        apex_y = (apex_x - side[1]) / side[0]
    if apex_y > top + 1:
        return linear  # sides that widen upwards: not a fan seen from its apex

    # Depth 0 at the probe surface: the ends of the top row lie on it (for a curvilinear
    # probe the top row is the chord of the probe's arc; for a phased array, its tip).
    top_ends = np.array([[top, left[0]], [top, right[0]]], dtype=np.float64)
    near = float(np.hypot(top_ends[:, 0] - apex_y, top_ends[:, 1] - apex_x).mean())
    ys, xs = np.nonzero(mask)
    far = float(np.hypot(ys - apex_y, xs - apex_x).max())
    if far - near < 1.0:
        return linear
    return DepthGeometry(True, (float(apex_y), float(apex_x)), (near, far))


def depth_map(height: int, width: int, geometry: DepthGeometry | None = None) -> torch.Tensor:
    """Normalised depth ``(H, W)`` float32 in [0, 1]: 0 at the probe, 1 at the deepest point.

    Without a ``geometry`` the probe lies along the top row and depth is ``row / (H - 1)``.
    """
    geometry = geometry or DepthGeometry.top_of_image(height)
    near, far = geometry.depth_range
    span = max(far - near, 1e-6)
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    if geometry.radial:
        apex_y, apex_x = geometry.origin_yx
        columns = torch.arange(width, dtype=torch.float64)[None, :]
        distance = torch.sqrt((rows - apex_y) ** 2 + (columns - apex_x) ** 2)
    else:
        distance = rows.expand(height, width)
    return ((distance - near) / span).clamp(0.0, 1.0).to(torch.float32)
