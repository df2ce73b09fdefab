"""B-mode image formation for a curvilinear probe: geometry, speckle, scan conversion, overlay.

A frame is formed in beam space (radius x angle), the way a scanner does: echogenicity of
the tissue under each sample, times a Rayleigh speckle drawn from a fixed 3D field of
scatterers (so speckle belongs to the tissue and decorrelates as the slice moves through
it), times the attenuation accumulated along the beam (shadows behind bone, enhancement
behind fluid), then log compression and scan conversion into a fan with ``cv2.remap``.

No installed library simulates B-mode images (Field II and k-Wave are MATLAB), so this is
a small hand-written approximation tuned for looks and speed, not acoustics.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ProbeGeometry:
    """Where the fan of a curvilinear probe lies in an image of ``height`` x ``width`` pixels.

    The virtual apex lies ``radius_cm`` above the transducer face, outside the image; the
    fan opens by ``opening_deg`` and reaches ``depth_cm`` below the face. A band of
    ``header_rows`` at the top is left for the scanner's header text. Pixels are square,
    ``spacing_cm`` on a side.
    """

    height: int
    width: int
    depth_cm: float
    radius_cm: float
    opening_deg: float
    header_rows: int
    spacing_cm: float
    apex_col: float
    apex_row: float
    n_radii: int
    n_angles: int

    @classmethod
    def fit(cls, size: tuple[int, int], depth_cm: float, radius_cm: float = 4.0, opening_deg: float = 70.0,
            oversample: float = 1.15) -> "ProbeGeometry":
        """The largest fan that fits below the header band, centred horizontally."""
        height, width = size
        half = np.deg2rad(opening_deg / 2)
        header = max(8, int(round(0.1 * height)))
        fan_h = (radius_cm + depth_cm) - radius_cm * np.cos(half)
        fan_w = 2 * (radius_cm + depth_cm) * np.sin(half)
        spacing = max(fan_h / (height - header - 2), fan_w / (width - 4))
        apex_row = header - radius_cm * np.cos(half) / spacing
        n_radii = int(np.ceil(oversample * depth_cm / spacing))
        n_angles = int(np.ceil(oversample * 2 * half * (radius_cm + depth_cm) / spacing))
        return cls(height, width, float(depth_cm), float(radius_cm), float(opening_deg), header, float(spacing),
                   (width - 1) / 2.0, float(apex_row), n_radii, n_angles)

    @property
    def half_angle(self) -> float:
        return float(np.deg2rad(self.opening_deg / 2))

    def beam_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Radii (n_radii,) in cm from the apex and angles (n_angles,) in rad (0 = straight down,
        positive towards increasing columns), at sample centres."""
        dr = self.depth_cm / self.n_radii
        radii = self.radius_cm + (np.arange(self.n_radii) + 0.5) * dr
        dtheta = 2 * self.half_angle / self.n_angles
        angles = -self.half_angle + (np.arange(self.n_angles) + 0.5) * dtheta
        return radii, angles

    def probe_plane_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Lateral and depth-below-face coordinates (cm) of every beam sample, (n_radii, n_angles)."""
        radii, angles = self.beam_grid()
        r, a = np.meshgrid(radii, angles, indexing="ij")
        return r * np.sin(a), r * np.cos(a) - self.radius_cm

    def to_pixels(self, lateral_cm, depth_cm) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x = column, y = row) of points given in the probe plane (cm)."""
        x = self.apex_col + np.asarray(lateral_cm) / self.spacing_cm
        y = self.apex_row + (np.asarray(depth_cm) + self.radius_cm) / self.spacing_cm
        return x, y

    def pixel_polar(self) -> tuple[np.ndarray, np.ndarray]:
        """Radius (cm) and angle (rad) of every pixel centre, (H, W)."""
        rows, cols = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        dx = (cols - self.apex_col) * self.spacing_cm
        dy = (rows - self.apex_row) * self.spacing_cm
        return np.hypot(dx, dy), np.arctan2(dx, dy)

    def fan_mask(self) -> np.ndarray:
        """bool (H, W): pixels inside the imaged sector."""
        r, a = self.pixel_polar()
        return (r >= self.radius_cm) & (r <= self.radius_cm + self.depth_cm) & (np.abs(a) <= self.half_angle)

    def remap_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` tables from beam space (rows = radii, cols = angles) to the image."""
        r, a = self.pixel_polar()
        map_r = (r - self.radius_cm) / (self.depth_cm / self.n_radii) - 0.5
        map_a = (a + self.half_angle) / (2 * self.half_angle / self.n_angles) - 0.5
        return map_a.astype(np.float32), map_r.astype(np.float32)

    def region_bounds(self) -> tuple[int, int, int, int]:
        """Inclusive pixel bounding box (x0, y0, x1, y1) of the sector."""
        ys, xs = np.nonzero(self.fan_mask())
        return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())

    def face_centre_pixel(self) -> tuple[float, float]:
        """Pixel of the centre of the transducer face (depth 0 on the central beam)."""
        return self.apex_col, self.apex_row + self.radius_cm / self.spacing_cm


class SliceGrid:
    """The beam samples of one frame placed in the world, with a fast sub-block lookup.

    Args:
        geometry: the probe geometry.
        origin: (3,) world position (cm) of the centre of the transducer face.
        axes: (3, 3) world directions (columns) of the probe's lateral, elevation (slice
            normal) and depth axes.
    """

    def __init__(self, geometry: ProbeGeometry, origin: np.ndarray, axes: np.ndarray):
        self.geometry = geometry
        self.origin = np.asarray(origin, dtype=np.float64)
        self.axes = np.asarray(axes, dtype=np.float64)
        lateral, depth = geometry.probe_plane_coordinates()
        points = self.origin + lateral[..., None] * self.axes[:, 0] + depth[..., None] * self.axes[:, 2]
        self.points = points.astype(np.float32)  # (n_radii, n_angles, 3)
        radii, _ = geometry.beam_grid()
        # depth below the curved transducer face: the skin is pressed against it
        self.face_depth = np.broadcast_to((radii - geometry.radius_cm)[:, None], lateral.shape).astype(np.float32)
        self.dr = geometry.depth_cm / geometry.n_radii
        self.dtheta = 2 * geometry.half_angle / geometry.n_angles

    @property
    def normal(self) -> np.ndarray:
        return self.axes[:, 1]

    def box(self, centre: np.ndarray, radius: float) -> tuple[int, int, int, int] | None:
        """Index box (i0, i1, j0, j1) of the samples a sphere (world ``centre``, ``radius`` cm)
        can touch, or ``None`` when it misses the slice or the sector."""
        g = self.geometry
        rel = np.asarray(centre) - self.origin
        d = float(rel @ self.axes[:, 1])
        if abs(d) >= radius:
            return None
        reach = np.sqrt(radius**2 - d**2)
        x = float(rel @ self.axes[:, 0])
        z = float(rel @ self.axes[:, 2]) + g.radius_cm
        r = np.hypot(x, z)
        r_lo, r_hi = r - reach, r + reach
        i0 = max(0, int(np.floor((r_lo - g.radius_cm) / self.dr - 0.5)))
        i1 = min(g.n_radii, int(np.ceil((r_hi - g.radius_cm) / self.dr + 0.5)) + 1)
        if reach >= r or z <= 0:
            j0, j1 = 0, g.n_angles
        else:
            a = np.arctan2(x, z)
            spread = np.arcsin(min(1.0, reach / r))
            j0 = max(0, int(np.floor((a - spread + g.half_angle) / self.dtheta - 0.5)))
            j1 = min(g.n_angles, int(np.ceil((a + spread + g.half_angle) / self.dtheta + 0.5)) + 1)
        if i0 >= i1 or j0 >= j1:
            return None
        return i0, i1, j0, j1


class BeamSpeckle:
    """Complex Gaussian speckle fixed to positions along the sweep (elevation), in beam space.

    One 2D field (n_radii, n_angles) per elevation step, smoothed to the speckle size
    (larger across the beam than along it, so grains widen with depth after scan
    conversion as on a real scanner); a frame at elevation y interpolates the two nearest
    fields, so speckle stays put while the probe rests and decorrelates as it moves by
    about one step.

    Args:
        rng: source of the values.
        geometry: probe geometry (beam grid size).
        y_range: (min, max) elevation (cm) the sweep visits.
        step_cm: elevational correlation length.
        sigma: (axial, lateral) Gaussian smoothing in beam samples.
    """

    def __init__(self, rng: np.random.Generator, geometry: ProbeGeometry, y_range: tuple[float, float],
                 step_cm: float, sigma: tuple[float, float] = (0.7, 1.6)):
        self.y0 = float(y_range[0]) - step_cm
        self.step = float(step_cm)
        n = int(np.ceil((y_range[1] - self.y0) / step_cm)) + 2
        white = rng.standard_normal((n, geometry.n_radii, geometry.n_angles, 2), dtype=np.float32)
        self.fields = np.empty_like(white)
        for k in range(n):
            smooth = cv2.GaussianBlur(white[k], (0, 0), sigmaX=sigma[1], sigmaY=sigma[0])
            self.fields[k] = smooth / np.sqrt((smooth**2).mean())  # unit variance per component

    def at(self, y: float) -> np.ndarray:
        """(n_radii, n_angles, 2) unit-variance field at elevation ``y`` (cm)."""
        pos = np.clip((y - self.y0) / self.step, 0, len(self.fields) - 1.001)
        k = int(pos)
        f = pos - k
        mixed = (1 - f) * self.fields[k] + f * self.fields[k + 1]
        return mixed / np.float32(np.sqrt((1 - f) ** 2 + f**2))


class RandomField:
    """A fixed field of Gaussian values on a regular 3D world grid, sampled trilinearly
    (smooth tissue inhomogeneity).

    Args:
        rng: source of the values.
        lower, upper: (3,) world bounds in cm of the region the field must cover.
        spacing: (3,) grid step in cm (the correlation length).
    """

    def __init__(self, rng: np.random.Generator, lower, upper, spacing):
        self.lower = np.asarray(lower, dtype=np.float32)
        self.spacing = np.asarray(spacing, dtype=np.float32)
        self.shape = tuple(int(n) for n in np.ceil((np.asarray(upper) - self.lower) / self.spacing).astype(int) + 2)
        self.values = rng.standard_normal(int(np.prod(self.shape)), dtype=np.float32)

    def sample(self, points: np.ndarray) -> np.ndarray:
        """Values at ``points`` (N, 3) -> (N,)."""
        idx = (points - self.lower) / self.spacing
        idx = np.clip(idx, 0.0, np.asarray(self.shape, dtype=np.float32) - 1.001)
        base = np.floor(idx).astype(np.int64)
        frac = idx - base
        ny, nz = self.shape[1], self.shape[2]
        out = np.zeros(len(points), dtype=np.float32)
        for dx in (0, 1):
            wx = frac[:, 0] if dx else 1 - frac[:, 0]
            for dy in (0, 1):
                wy = frac[:, 1] if dy else 1 - frac[:, 1]
                for dz in (0, 1):
                    w = wx * wy * (frac[:, 2] if dz else 1 - frac[:, 2])
                    out += w * self.values[((base[:, 0] + dx) * ny + base[:, 1] + dy) * nz + base[:, 2] + dz]
        return out


@dataclass(frozen=True)
class ScannerSettings:
    """Image-formation settings of one clip (drawn per sweep)."""

    gain_db: float = 0.0
    dynamic_range_db: float = 48.0
    gamma: float = 1.2
    tgc_db_cm: float = 1.2
    noise_floor: float = 0.016  # electronic noise: fluid shows faint grain, as on a scanner
    fresh_speckle: float = 0.12  # share of speckle power that changes every frame (tissue motion)
    top_db: float = 10.0  # level shown as white


def beam_image(echo: np.ndarray, attenuation: np.ndarray, speckle: np.ndarray, fresh: np.ndarray,
               texture: np.ndarray, noise: np.ndarray, dr_cm: float, settings: ScannerSettings) -> np.ndarray:
    """Grey levels in [0, 1] in beam space.

    Args:
        echo, attenuation: (n_radii, n_angles) tissue echogenicity and dB/cm.
        speckle, fresh: (n_radii, n_angles, 2) unit-variance complex speckle: the part fixed
            to the tissue and a part that changes from frame to frame.
        texture: (n_radii, n_angles) smooth unit-variance field (tissue inhomogeneity).
        noise: (n_radii, n_angles) per-frame white Gaussian draw (electronic noise).
        dr_cm: radial sample step.
    """
    beta = settings.fresh_speckle
    field = np.sqrt(1 - beta) * speckle + np.sqrt(beta) * fresh
    rayleigh = np.sqrt((field**2).sum(axis=-1) / 2)
    amplitude = echo * np.exp(0.25 * texture) * rayleigh
    # attenuation above each sample, minus what the time-gain compensation restores
    excess = (attenuation - settings.tgc_db_cm) * dr_cm
    loss_db = np.clip(np.cumsum(excess, axis=0) - excess, -4.0, 50.0)
    amplitude = amplitude * 10 ** (-loss_db / 20) + settings.noise_floor * np.abs(noise)
    db = 20 * np.log10(amplitude + 1e-6) + settings.gain_db
    low = settings.top_db - settings.dynamic_range_db
    grey = np.clip((db - low) / settings.dynamic_range_db, 0, 1) ** settings.gamma
    return grey.astype(np.float32)


def scan_convert(beam: np.ndarray, tables: tuple[np.ndarray, np.ndarray], fan: np.ndarray) -> np.ndarray:
    """Beam-space grey levels (n_radii, n_angles) in [0, 1] -> uint8 image (H, W), black outside the fan."""
    image = cv2.remap(beam, tables[0], tables[1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0)
    image = np.where(fan, image, 0.0)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------- overlay

_FONT = cv2.FONT_HERSHEY_PLAIN
_TEXT_GREY = 225


def _text_scale(texts: tuple[str, ...], max_height: int, max_width: int) -> float:
    """Largest font scale (<= 1) at which every text fits ``max_height`` rows (with its
    descent) and all of them side by side fit ``max_width`` columns."""
    scale = 1.0
    while scale > 0.3:
        sizes = [cv2.getTextSize(t, _FONT, scale, 1) for t in texts]
        tall = max(h + base for (_, h), base in sizes)
        wide = sum(w + 6 for (w, _), _ in sizes)
        if tall <= max_height and wide <= max_width:
            break
        scale -= 0.05
    return scale


def _put(canvas: np.ndarray, keep_out: np.ndarray, text: str, x: int, baseline_y: int, scale: float,
         align_right: bool = False) -> bool:
    """Draw ``text`` if it fits inside the image and outside ``keep_out``; return whether it did."""
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    if align_right:
        x = x - w
    y0, y1, x0, x1 = baseline_y - h - 1, baseline_y + base + 1, x - 1, x + w + 1
    if x0 < 0 or y0 < 0 or x1 > canvas.shape[1] or y1 > canvas.shape[0] or keep_out[y0:y1, x0:x1].any():
        return False
    cv2.putText(canvas, text, (x, baseline_y), _FONT, scale, _TEXT_GREY, 1, cv2.LINE_8)
    return True


def _put_largest(canvas, keep_out, text, x, baseline_y, scale, align_right=False) -> float | None:
    """Draw ``text`` at the largest scale <= ``scale`` that fits; return that scale, or None."""
    while scale >= 0.3:
        if _put(canvas, keep_out, text, x, baseline_y, scale, align_right):
            return scale
        scale -= 0.05
    return None


def burned_in_overlay(geometry: ProbeGeometry, name: str, date: str, fps: float, frequency_mhz: float) -> np.ndarray:
    """The scanner's static annotations as a uint8 (H, W) image, zero where nothing is drawn.

    Header band: patient name (left) and exam date (right). Left of the fan: the
    simulator's name and acquisition settings. Right of the fan: a depth scale with a
    tick per cm. Nothing is drawn within 2 pixels of the sector.
    """
    h, w = geometry.height, geometry.width
    canvas = np.zeros((h, w), dtype=np.uint8)
    keep_out = cv2.dilate(geometry.fan_mask().astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    free_rows = int(np.argmax(keep_out.any(axis=1)))  # rows above the sector's keep-out band
    scale = _text_scale((name, date), free_rows - 2, w)
    (_, text_h), _ = cv2.getTextSize(name, _FONT, scale, 1)
    baseline = text_h + 1
    _put(canvas, keep_out, name, 1, baseline, scale)
    _put(canvas, keep_out, date, w - 2, baseline, scale, align_right=True)
    line = text_h + 4
    y = free_rows + line
    for text in ("ultrassl", "simulator", f"{frequency_mhz:.1f}MHz", f"{fps:.0f}Hz"):
        if _put_largest(canvas, keep_out, text, 1, y, scale):
            y += line
    # depth scale: ticks at each cm below the face along the central beam
    _, face_row = geometry.face_centre_pixel()
    for depth in range(0, int(geometry.depth_cm) + 1):
        row = int(round(face_row + depth / geometry.spacing_cm))
        length = 4 if depth % 5 == 0 else 2
        x0 = w - 1 - length
        if row >= h or keep_out[row, x0:w].any():
            continue
        canvas[row, x0:w] = _TEXT_GREY
        if depth % 5 == 0 and depth:
            _put_largest(canvas, keep_out, str(depth), x0 - 2, row + text_h // 2, scale, align_right=True)
    canvas[keep_out] = 0
    return canvas
