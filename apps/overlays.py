"""Pure drawing functions of the viewer: sector masking, outlines, fixations, density, timeline.

Everything here takes and returns numpy arrays and knows nothing of Streamlit, so that it can
be tested pixel by pixel. Images are uint8 RGB ``(H, W, 3)``; frames as the readers return
them are uint8 ``(H, W, C)`` with C in {1, 3}. Fixations are ``(x, y)`` = (column, row) in
pixels of the frame as stored in the file, pixel centres at integer coordinates.

Privacy: :func:`render_view` blanks everything outside the scan sector before it enlarges
the frame or draws anything, and :class:`ViewOptions` does so by default, so burned-in text
(patient name, dates, institution) is only ever shown when the caller turns masking off.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: colour (RGB) of the sector outline
OUTLINE_COLOUR = (0, 200, 255)
#: colour (RGB) of the fixation circles
FIXATION_COLOUR = (255, 221, 0)
#: colour (RGB) of frames labelled background on the timeline
BACKGROUND_COLOUR = (72, 72, 72)
#: class names drawn in :data:`BACKGROUND_COLOUR`
BACKGROUND_NAMES = frozenset({"background", "other", "none"})
#: width in pixels the viewer enlarges small frames to
DISPLAY_WIDTH = 640

# Distinct colours for the plane classes, after Kelly's colours of maximum contrast (without
# white, black and greys, which mean background here; the darkest last, as they are hard to
# tell from the background). Written out because matplotlib, which carries such palettes, is
# not a dependency.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (30, 136, 229), (255, 104, 0), (0, 125, 52), (193, 0, 32), (128, 62, 117), (255, 179, 0),
    (166, 189, 215), (246, 118, 142), (147, 170, 0), (206, 162, 98), (255, 122, 92), (179, 40, 81),
    (0, 170, 170), (244, 200, 0), (127, 24, 13), (83, 55, 122), (89, 51, 21), (35, 44, 22),
)


def density_sigma_px(height: int, width: int, fraction: float = 0.025) -> float:
    """Gaussian sigma (pixels of the stored frame) of the fixation density map.

    ``fraction`` of the frame's longer side, at least 1 pixel. The default 2.5% is wide enough
    that the few fixations of a frame merge into a readable blob and narrow enough to keep
    separate structures apart. The saliency literature states sigma as about one degree of
    visual angle, which needs the viewing geometry of the gaze recording; without it this is
    a display choice, which the viewer lets the user change.
    """
    return max(1.0, float(fraction) * max(int(height), int(width)))


@dataclass(frozen=True)
class ViewOptions:
    """What :func:`render_view` draws; the defaults are the viewer's defaults.

    Attributes:
        hide_outside_sector: fill everything outside the scan sector with 0 (hides burned-in
            patient text). On by default; needs a sector mask.
        sector_outline: draw the sector's boundary.
        fixations: draw each fixation as a circle.
        density: blend a fixation density map (Gaussian blur of the fixations) over the frame.
        density_sigma_fraction: Gaussian sigma as a fraction of the frame's longer side
            (see :func:`density_sigma_px`).
        density_alpha: opacity of the density map at its peak, in [0, 1].
    """

    hide_outside_sector: bool = True
    sector_outline: bool = True
    fixations: bool = True
    density: bool = False
    density_sigma_fraction: float = 0.025
    density_alpha: float = 0.6


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """A uint8 frame ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` as RGB ``(H, W, 3)`` (a copy)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3):
        raise ValueError(f"a frame must be (H, W), (H, W, 1) or (H, W, 3), got {frame.shape}")
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame.copy()


def display_scale(width: int, target_width: int = DISPLAY_WIDTH) -> int:
    """Integer factor that brings a frame ``width`` pixels wide near ``target_width`` (>= 1)."""
    return max(1, int(round(target_width / max(int(width), 1))))


def mask_outside_sector(image: np.ndarray, sector: np.ndarray) -> np.ndarray:
    """``image`` with every pixel outside ``sector`` (bool ``(H, W)``) set to 0 (a copy)."""
    sector = np.asarray(sector, dtype=bool)
    if sector.shape != image.shape[:2]:
        raise ValueError(f"sector mask {sector.shape} and image {image.shape[:2]} differ in size")
    out = image.copy()
    out[~sector] = 0
    return out


def enlarge(image: np.ndarray, scale: int, smooth: bool = True) -> np.ndarray:
    """``image`` ``(H, W[, C])`` enlarged ``scale`` times (bilinear if ``smooth``, else nearest)."""
    if scale == 1:
        return image.copy()
    interpolation = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    height, width = image.shape[:2]
    out = cv2.resize(image, (width * scale, height * scale), interpolation=interpolation)
    return out.reshape(height * scale, width * scale, *image.shape[2:])


def enlarge_mask(mask: np.ndarray, scale: int) -> np.ndarray:
    """Bool mask ``(H, W)`` enlarged ``scale`` times, with smooth rather than stepped edges.

    The mask is interpolated bilinearly and cut at 0.5, so a slanted edge runs between the
    original pixel centres instead of following their blocks.
    """
    mask = np.asarray(mask, dtype=bool)
    if scale == 1:
        return mask.copy()
    return enlarge(mask.astype(np.float32), scale, smooth=True) >= 0.5


def draw_outline(image: np.ndarray, mask: np.ndarray, colour=OUTLINE_COLOUR, thickness: int = 2) -> np.ndarray:
    """Draw the boundary of the bool ``mask`` (same size as ``image``) on a copy of ``image``."""
    out = image.copy()
    contours, _ = cv2.findContours(np.asarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), thickness, cv2.LINE_AA)
    return out


def to_display_xy(points_xy: np.ndarray, scale: int) -> np.ndarray:
    """Fixation coordinates of the stored frame in pixels of the frame enlarged ``scale`` times.

    Pixel centres sit at integer coordinates in both, so pixel ``i`` covers ``[i - 0.5, i + 0.5)``
    and its enlarged block is centred at ``(i + 0.5) * scale - 0.5``.
    """
    return (np.asarray(points_xy, dtype=np.float64).reshape(-1, 2) + 0.5) * scale - 0.5


def draw_fixations(
    image: np.ndarray, points_xy: np.ndarray, radius: float = 6.0, colour=FIXATION_COLOUR, thickness: int = 2
) -> np.ndarray:
    """Draw a circle of ``radius`` pixels around each ``(x, y)`` (pixels of ``image``), with a dot at its centre."""
    out = image.copy()
    shift = 4  # cv2 takes sub-pixel centres as fixed-point integers with this many fraction bits
    colour = tuple(int(c) for c in colour)
    for x, y in np.asarray(points_xy, dtype=np.float64).reshape(-1, 2):
        centre = (int(round(x * (1 << shift))), int(round(y * (1 << shift))))
        cv2.circle(out, centre, int(round(radius * (1 << shift))), colour, thickness, cv2.LINE_AA, shift)
        cv2.circle(out, centre, int(round(max(1.0, thickness) * (1 << shift))), colour, -1, cv2.LINE_AA, shift)
    return out


def fixation_density(points_xy: np.ndarray, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Fixation density map: a Gaussian blur of the fixation points.

    Args:
        points_xy: ``(k, 2)`` fixations ``(x, y)`` in pixels; each lands on its nearest pixel,
            points outside the frame are dropped.
        shape: ``(H, W)`` of the map.
        sigma_px: standard deviation of the Gaussian in pixels (see :func:`density_sigma_px`).

    Returns:
        float32 ``(H, W)`` summing to 1, or all zeros when no fixation lies in the frame.
        Mass the Gaussian spreads past the border is dropped, then the map is renormalised.
        This is the saliency ground truth of
        :func:`ultrassl.metrics.saliency.fixation_density_map` (same pixels, kernel and
        normalisation), computed with OpenCV on one frame without going through torch.
    """
    if sigma_px <= 0:
        raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
    height, width = int(shape[0]), int(shape[1])
    impulses = np.zeros((height, width), dtype=np.float32)
    points = np.rint(np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    np.add.at(impulses, (points[inside, 1], points[inside, 0]), 1.0)
    if not inside.any():
        return impulses
    # ksize (0, 0): OpenCV sizes the kernel from sigma (+-4 sigma for float images);
    # a constant (zero) border keeps mass from being mirrored back in.
    density = cv2.GaussianBlur(impulses, (0, 0), sigmaX=float(sigma_px), sigmaY=float(sigma_px),
                               borderType=cv2.BORDER_CONSTANT)
    return (density / density.sum()).astype(np.float32)


def blend_density(image: np.ndarray, density: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend ``density`` ``(H, W)`` as a heat map over RGB ``image`` (same size).

    The heat map's opacity is ``alpha`` times the density relative to its peak, so pixels
    without density keep their value exactly.
    """
    if density.shape != image.shape[:2]:
        raise ValueError(f"density {density.shape} and image {image.shape[:2]} differ in size")
    peak = float(density.max())
    if peak <= 0:
        return image.copy()
    relative = np.clip(density / peak, 0.0, 1.0).astype(np.float32)
    heat = cv2.applyColorMap(np.rint(relative * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (float(alpha) * relative)[..., None]
    out = image.astype(np.float32) * (1 - weight) + heat * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colour_bar(width: int, height: int = 12) -> np.ndarray:
    """uint8 RGB ``(height, width, 3)``: the heat maps' colours from zero (left) to the peak
    (right), as :func:`blend_density` draws them (their opacity grows with the value too)."""
    ramp = np.rint(np.linspace(0, 255, max(int(width), 2))).astype(np.uint8)[None, :].repeat(max(int(height), 1), 0)
    return cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def model_map_heat(
    image: np.ndarray,
    model_map: np.ndarray,
    sector: np.ndarray | None = None,
    scale: int = 1,
    alpha: float = 0.6,
    shift_to_zero: bool = False,
) -> np.ndarray:
    """Blend a model's map of one frame (a saliency map or a class-activation map) over the
    view :func:`render_view` made of that frame.

    Args:
        image: uint8 RGB ``(H * scale, W * scale, 3)`` from :func:`render_view`.
        model_map: float ``(h, w)`` at the model's input size; resized to the frame ``(H, W)``
            (the pipelines resize whole frames, so this puts it back in place).
        sector: bool ``(H, W)``: where given, the map is zero outside it (with masking on, so
            that nothing is drawn where burned-in text was).
        scale: the view's enlargement.
        alpha: opacity at the map's peak.
        shift_to_zero: subtract the map's minimum (inside the sector) first: class-activation
            maps are signed scores; saliency maps are already non-negative.

    Returns:
        uint8 RGB, the size of ``image``.
    """
    height, width = image.shape[0] // scale, image.shape[1] // scale
    frame_map = cv2.resize(np.asarray(model_map, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    inside = np.ones((height, width), dtype=bool) if sector is None else np.asarray(sector, dtype=bool)
    if not inside.any():
        return image.copy()
    if shift_to_zero:
        frame_map = frame_map - float(frame_map[inside].min())
    frame_map = np.where(inside, np.maximum(frame_map, 0.0), 0.0).astype(np.float32)
    big = enlarge(frame_map, scale)
    if sector is not None:  # interpolation must not carry the map past the enlarged sector's edge
        big = np.where(enlarge_mask(inside, scale), big, 0.0).astype(np.float32)
    return blend_density(image, big, alpha)


def render_view(
    frame: np.ndarray,
    options: ViewOptions = ViewOptions(),
    sector: np.ndarray | None = None,
    fixations_xy: np.ndarray | None = None,
    density_xy: np.ndarray | None = None,
    scale: int = 1,
) -> np.ndarray:
    """The image the viewer shows for one frame.

    Args:
        frame: uint8 ``(H, W, C)`` as read.
        options: what to draw.
        sector: bool ``(H, W)`` scan sector; required when ``options.hide_outside_sector``
            or ``options.sector_outline``.
        fixations_xy: ``(k, 2)`` fixations of this frame, drawn as circles.
        density_xy: ``(k, 2)`` fixations the density map is made of (this frame's, or those
            of a few frames around it).
        scale: integer enlargement of the result.

    Returns:
        uint8 RGB ``(H * scale, W * scale, 3)``. With ``hide_outside_sector`` nothing in it
        depends on a pixel of ``frame`` outside ``sector``, and every pixel outside
        ``enlarge_mask(sector, scale)`` is 0 unless an overlay (outline, circles, heat map)
        is drawn on it.
    """
    if (options.hide_outside_sector or options.sector_outline) and sector is None:
        raise ValueError("a sector mask is needed to hide the outside of the sector or to outline it")
    image = to_rgb(frame)
    height, width = image.shape[:2]
    big_sector = None
    if sector is not None:
        sector = np.asarray(sector, dtype=bool)
        big_sector = enlarge_mask(sector, scale)
    if options.hide_outside_sector:
        # Masking before enlarging keeps outside values from bleeding inwards through the
        # interpolation, so nothing shown depends on a pixel outside the sector; masking
        # again after it draws the enlarged border cleanly.
        image = mask_outside_sector(enlarge(mask_outside_sector(image, sector), scale), big_sector)
    else:
        image = enlarge(image, scale)
    if options.density and density_xy is not None and len(density_xy):
        sigma = density_sigma_px(height, width, options.density_sigma_fraction)
        density = fixation_density(density_xy, (height, width), sigma)
        image = blend_density(image, enlarge(density, scale), options.density_alpha)
    if options.sector_outline:
        image = draw_outline(image, big_sector)
    if options.fixations and fixations_xy is not None and len(fixations_xy):
        radius = max(6.0, 2.5 * scale)
        image = draw_fixations(image, to_display_xy(fixations_xy, scale), radius=radius)
    return image


def class_colours(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """One RGB colour per class: grey for background classes, the palette for the others."""
    colours = []
    n_other = 0
    for name in class_names:
        if str(name).strip().lower() in BACKGROUND_NAMES:
            colours.append(BACKGROUND_COLOUR)
            continue
        if n_other < len(_PALETTE):
            colours.append(_PALETTE[n_other])
        else:  # more classes than the palette holds: spread further hues by the golden ratio
            hue = (n_other * 0.618034) % 1.0
            colours.append(tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, 0.65, 0.9)))
        n_other += 1
    return colours


def frame_columns(n_frames: int, width: int) -> np.ndarray:
    """For each of ``width`` timeline columns, the frame it shows (int64 ``(width,)``)."""
    return np.minimum((np.arange(width) * n_frames) // max(width, 1), n_frames - 1).astype(np.int64)


def plane_timeline(
    labels: np.ndarray,
    colours: Sequence[tuple[int, int, int]],
    current: int | None = None,
    width: int = DISPLAY_WIDTH,
    bar_height: int = 22,
    marker_height: int = 10,
) -> np.ndarray:
    """A strip showing the plane label of every frame, with a marker under the current frame.

    Args:
        labels: int ``(T,)`` class index per frame; negative values (unknown) are drawn black.
        colours: RGB colour per class index (see :func:`class_colours`).
        current: the frame to mark, or ``None``.
        width: image width in pixels; frame ``t`` covers columns ``[t * width / T, (t + 1) * width / T)``.
        bar_height, marker_height: heights of the colour bar and of the marker row below it.

    Returns:
        uint8 RGB ``(bar_height + marker_height, width, 3)``.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size == 0:
        raise ValueError("a timeline needs at least one frame")
    palette = np.asarray(list(colours) + [(0, 0, 0)], dtype=np.uint8)  # last entry: unknown
    index = np.where((labels >= 0) & (labels < len(colours)), labels, len(colours))
    columns = frame_columns(labels.size, width)
    strip = np.zeros((bar_height + marker_height, width, 3), dtype=np.uint8)
    strip[:bar_height] = palette[index[columns]][None]
    if current is not None:
        frame_cols = np.flatnonzero(columns == int(current))
        if frame_cols.size == 0:  # more frames than columns: mark the nearest column
            frame_cols = np.array([min(width - 1, int(current) * width // labels.size)])
        left, right = int(frame_cols[0]), int(frame_cols[-1])
        middle = 0.5 * (left + right)
        half = max(marker_height - 2, 0.5 * (right - left + 1))
        triangle = np.array(
            [[middle - half, bar_height + marker_height - 1], [middle + half, bar_height + marker_height - 1],
             [middle, bar_height + 1]], dtype=np.float64,
        )
        cv2.fillPoly(strip, [np.rint(triangle).astype(np.int32)], (255, 255, 255), cv2.LINE_AA)
        # the current frame's span is framed in white on the bar as well
        cv2.rectangle(strip, (left, 0), (right, bar_height - 1), (255, 255, 255), 1)
    return strip
