"""Simulated fetal ultrasound sweeps with standard-plane labels and sonographer gaze.

Each simulated subject is an analytic phantom (:mod:`ultrassl.synth.phantom`). A sweep
moves a curvilinear probe through it: frame t is the slice at elevation y(t), with a
little tilt and tremor; the probe slows down near standard planes and holds most of the
planes it crosses for a moment (the slice then goes through the plane's centre, with
tremor), as sonographers do when they freeze a standard view; some sweeps go back and
forth. Frames are rendered as B-mode images
(:mod:`ultrassl.synth.bmode`) with the scanner's text burned in outside the sector.

Ground truth per frame:
    plane: one of :data:`PLANE_CLASSES` -- the standard plane whose defining position
        the slice passes within a tolerance of (its normal within 20 degrees and its
        centre inside the sector), else ``"Background"``.
    fixations: 0-3 simulated gaze points (x = column, y = row, pixels) on visible
        structures (:mod:`ultrassl.synth.gaze`).

Planes (SonoNet's names; all 13 are simulated): transverse sweeps give 3VV, RVOT, LVOT,
4CH, Abdominal, Kidneys, Femur, Brain (Tv.), Brain (Cb.); sagittal sweeps give Profile
and Spine (sag.); coronal sweeps give Lips and Spine (cor.).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ultrassl.data.planes import BACKGROUND, PLANE_CLASSES, STANDARD_PLANE_NAMES
from ultrassl.synth.bmode import (
    BeamSpeckle,
    ProbeGeometry,
    RandomField,
    ScannerSettings,
    SliceGrid,
    beam_image,
    burned_in_overlay,
    scan_convert,
)
from ultrassl.synth.gaze import GazeSimulator
from ultrassl.synth.phantom import Phantom, build_phantom
from ultrassl.synth.writers import FakeIdentity, UltrasoundRegion, fake_date, write_mp4, write_ultrasound_dicom


@dataclass(frozen=True)
class StandardPlane:
    """A standard plane in fetal units: a centre point, the plane's normal (a fetal axis:
    0 = u, 1 = v, 2 = s), the structures a sonographer looks at in it, and how far (fetal
    units) a slice may lie from the centre along the normal and still count."""

    name: str
    centre: tuple[float, float, float]
    axis: int
    structures: tuple[str, ...]
    tolerance: float = 0.15


#: The simulated standard planes, in SonoNet's order.
STANDARD_PLANES: tuple[StandardPlane, ...] = (
    StandardPlane("3VV", (0.1, 0.2, 5.95), 2, ("great_vessels",)),
    StandardPlane("4CH", (0.45, 0.45, 6.95), 2, ("heart",)),
    StandardPlane("Abdominal", (0.0, 0.3, 9.0), 2, ("stomach", "umbilical_vein")),
    StandardPlane("Brain (Cb.)", (0.0, -0.8, 3.1), 2, ("cerebellum",)),
    StandardPlane("Brain (Tv.)", (0.0, 0.0, 1.95), 2, ("ventricles",)),
    StandardPlane("Femur", (1.33, 1.6, 11.33), 2, ("femur",)),
    StandardPlane("Kidneys", (0.0, -0.6, 10.0), 2, ("kidney",)),
    StandardPlane("Lips", (0.0, 3.0, 4.3), 1, ("lips",)),
    StandardPlane("LVOT", (0.4, 0.45, 6.6), 2, ("great_vessels", "heart")),
    StandardPlane("Profile", (0.0, 2.6, 3.7), 0, ("face",)),
    StandardPlane("RVOT", (0.6, 0.6, 6.3), 2, ("great_vessels", "heart")),
    StandardPlane("Spine (cor.)", (0.0, -1.25, 8.5), 1, ("spine",), 0.12),
    StandardPlane("Spine (sag.)", (0.0, -1.0, 8.5), 0, ("spine",)),
)

# The class names are the data layer's (PLANE_CLASSES, label order); the simulator renders those planes.
if tuple(p.name for p in STANDARD_PLANES) != STANDARD_PLANE_NAMES:
    raise ImportError("the simulated standard planes differ from ultrassl.data.planes.STANDARD_PLANE_NAMES")

_MAX_TILT = np.cos(np.deg2rad(20.0))


@dataclass(frozen=True)
class SweepProgram:
    """What a sonographer sets out to do in one sweep.

    ``legs``: successive (start, end) positions along the swept fetal axis (fetal units);
    ``anchor``: the fetal point held under the probe's centre line (its swept coordinate
    is ignored).
    """

    family: str  # "transverse" (axis s), "sagittal" (axis u) or "coronal" (axis v)
    legs: tuple[tuple[float, float], ...]
    anchor: tuple[float, float, float]
    zoom: float = 1.0  # imaging depth relative to the subject's default (< 1 magnifies)

    @property
    def axis(self) -> int:
        return {"sagittal": 0, "coronal": 1, "transverse": 2}[self.family]


#: Sweep i follows program i mod 8, so every plane is visited by any 8 consecutive sweeps.
PROGRAMS: tuple[SweepProgram, ...] = (
    SweepProgram("transverse", ((-0.3, 12.3),), (0.0, 0.0, 0.0)),  # head to legs
    SweepProgram("transverse", ((0.6, 7.8),), (0.0, 0.0, 0.0), 0.9),  # head and chest
    SweepProgram("sagittal", ((-2.0, 2.0),), (0.0, 1.0, 3.4), 0.85),  # across the face
    SweepProgram("transverse", ((12.2, 4.6),), (0.0, 0.0, 0.0)),  # legs up to the chest
    SweepProgram("coronal", ((3.6, -1.9),), (0.0, 0.0, 6.2), 0.95),  # face front to the back
    SweepProgram("transverse", ((5.0, 7.7), (7.7, 5.4), (5.4, 7.5)), (0.0, 0.0, 0.0), 0.75),  # heart, to and fro
    SweepProgram("sagittal", ((2.2, -2.2),), (0.0, -0.5, 8.0)),  # across the spine
    SweepProgram("transverse", ((11.8, 0.2), (0.2, 2.5)), (0.0, 0.0, 0.0)),  # legs to head and back
)


@dataclass
class Subject:
    """Everything fixed for one simulated mother and fetus."""

    index: int
    phantom: Phantom
    depth_cm: float
    fetal_scale: float  # cm per fetal unit
    study_date: str
    frequency_mhz: float


@dataclass
class SweepPlan:
    """Geometry and labels of one sweep, before rendering.

    Attributes:
        fetal_rotation: (3, 3) world directions of the fetal u, v, s axes (columns).
        fetal_origin: (3,) world position of the fetal origin, cm.
        origins: (T, 3) world position of the centre of the transducer face per frame.
        axes: (T, 3, 3) probe axes per frame: columns lateral, elevation (slice normal), depth.
        labels: (T,) plane names.
    """

    index: int
    subject: Subject
    program: SweepProgram
    geometry: ProbeGeometry
    fetal_rotation: np.ndarray
    fetal_origin: np.ndarray
    origins: np.ndarray
    axes: np.ndarray
    labels: list[str] = field(default_factory=list)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def make_subject(seed: int, index: int) -> Subject:
    """Subject ``index`` of the data set drawn with ``seed`` (independent of the other subjects)."""
    rng = _rng(seed, 0, index)
    depth = float(rng.uniform(8.5, 11.0))
    return Subject(index, build_phantom(rng, depth), depth, float(rng.uniform(0.95, 1.2)), fake_date(rng),
                   float(rng.choice([3.5, 4.0, 4.5, 5.0])))


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _fetal_rotation(family: str, rng: np.random.Generator) -> np.ndarray:
    """World directions of the fetal axes so that the swept axis lies along the elevation y."""
    sign = lambda: 1.0 if rng.random() < 0.5 else -1.0  # noqa: E731
    y = np.array([0.0, 1.0, 0.0])
    if family == "transverse":  # body axis along the sweep; any roll of the trunk
        s = sign() * y
        roll = rng.uniform(0, 2 * np.pi)
        u = np.array([np.cos(roll), 0.0, np.sin(roll)])
        v = np.cross(s, u)
    elif family == "sagittal":  # body lies across the image, swept from side to side
        u = sign() * y
        s = np.array([sign(), 0.0, 0.0])
        v = np.cross(s, u)
    else:  # coronal: swept from front to back
        v = sign() * y
        s = np.array([sign(), 0.0, 0.0])
        u = np.cross(v, s)
    rotation = np.stack([u, v, s], axis=1)
    wobble = _rotation(rng.normal(size=3), np.deg2rad(rng.normal(0, 5)))
    return wobble @ rotation


def _smooth_noise(rng: np.random.Generator, n: int, sd: float, correlation: float) -> np.ndarray:
    """A slowly varying random signal (n,) with standard deviation ~``sd``."""
    white = rng.normal(0, 1, n + int(4 * correlation) + 1)
    kernel = np.exp(-0.5 * (np.arange(-2 * correlation, 2 * correlation + 1) / max(correlation, 1e-3)) ** 2)
    smooth = np.convolve(white, kernel / np.sqrt((kernel**2).sum()), mode="valid")[:n]
    return sd * smooth


def _sweep_positions(program: SweepProgram, rng: np.random.Generator, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Position (fetal units) along the swept axis for every frame, slower near standard
    planes and still while a plane is held, and the index into :data:`STANDARD_PLANES` of the
    plane held at each frame (-1: moving)."""
    legs = [(a + rng.normal(0, 0.25), b + rng.normal(0, 0.25)) for a, b in program.legs]
    path = np.concatenate([np.linspace(a, b, max(2, int(abs(b - a) / 0.01))) for a, b in legs])
    candidates = [i for i, p in enumerate(STANDARD_PLANES) if p.axis == program.axis]
    targets = np.array([STANDARD_PLANES[i].centre[program.axis] for i in candidates])
    # sonographers linger near the planes they look for, most when there are few of them
    slowdown = rng.uniform(0.5, 0.85) if program.family == "transverse" else rng.uniform(0.8, 0.93)
    near = np.exp(-(((path[:, None] - targets[None, :]) / 0.3) ** 2)).max(axis=1)
    speed = 1.0 - slowdown * near
    step = np.abs(np.diff(path, prepend=path[0]))
    time = np.cumsum(step / speed)
    # ... and hold most planes they find, as when freezing a standard view: a share of the
    # sweep's time is spent holding, split over the planes the path crosses
    crossings = sorted((int(np.argmin(np.abs(path - t))), i) for t, i in zip(targets, candidates)
                       if np.abs(path - t).min() < 0.05)
    held = [c for c in crossings if rng.random() < 0.8] or crossings
    intervals = []
    if held:
        share = rng.uniform(0.35, 0.55)
        weights = rng.uniform(0.6, 1.4, len(held))
        hold = share / (1.0 - share) * time[-1] * weights / weights.sum()
        for (c, plane), h in zip(held, hold):
            intervals.append((time[c], time[c] + h, plane))
            time[c:] += h
    frames_t = np.linspace(0, time[-1], n_frames)
    positions = np.interp(frames_t, time, path) + _smooth_noise(rng, n_frames, 0.02, 3.0)
    holding = np.full(n_frames, -1, dtype=np.int64)
    for start, end, plane in intervals:
        holding[(frames_t >= start) & (frames_t <= end)] = plane
    return positions, holding


def plan_sweep(seed: int, index: int, n_frames: int, size: tuple[int, int], subject: Subject) -> SweepPlan:
    """Poses and plane labels of sweep ``index`` (cheap: nothing is rendered)."""
    rng = _rng(seed, 1, index)
    program = PROGRAMS[index % len(PROGRAMS)]
    depth = subject.depth_cm * program.zoom
    geometry = ProbeGeometry.fit(size, depth)
    scale = subject.fetal_scale
    rotation = _fetal_rotation(program.family, rng)
    anchor = np.array(program.anchor, dtype=np.float64)
    anchor[program.axis] = np.mean([np.mean(leg) for leg in program.legs])
    wall = subject.phantom.mother.uterus.center[2] - subject.phantom.mother.uterus.semi[2]
    centre_depth = float(max(rng.uniform(0.5, 0.6) * (depth + wall), wall + 2.3))
    anchor_world = np.array([rng.normal(0, 0.6), 0.0, centre_depth])
    origin_f = anchor_world - rotation @ (scale * anchor)

    positions, holding = _sweep_positions(program, rng, n_frames)
    points = np.repeat(anchor[None], n_frames, axis=0)
    points[:, program.axis] = positions
    world = (rotation @ (scale * points).T).T + origin_f
    lateral = anchor_world[0] + _smooth_noise(rng, n_frames, 0.15, 6.0)  # hand drift
    origins = np.stack([lateral, world[:, 1], np.zeros(n_frames)], axis=1)
    tilt = _smooth_noise(rng, n_frames, np.deg2rad(3.0), 8.0) + np.deg2rad(rng.normal(0, 3))
    twist = _smooth_noise(rng, n_frames, np.deg2rad(2.0), 8.0) + np.deg2rad(rng.normal(0, 3))
    axes = np.stack([
        _rotation(np.array([0.0, 0, 1]), tw) @ _rotation(np.array([1.0, 0, 0]), ti) for ti, tw in zip(tilt, twist)
    ])
    # While holding a plane the sonographer has the slice through it, whatever the tilt: the
    # probe sits where the tilted slice meets the plane's centre, give or take a tremor well
    # inside the plane's tolerance.
    tremor = _smooth_noise(rng, n_frames, 1.0, 3.0)
    for t in np.flatnonzero(holding >= 0):
        plane = STANDARD_PLANES[holding[t]]
        centre_w = rotation @ (scale * np.asarray(plane.centre)) + origin_f
        normal = axes[t][:, 1]
        offset = float((centre_w - origins[t]) @ normal) + 0.3 * plane.tolerance * scale * tremor[t]
        origins[t, 1] += offset / normal[1]
    plan = SweepPlan(index, subject, program, geometry, rotation, origin_f, origins, axes)
    plan.labels = plane_labels(plan)
    return plan


def _facing_planes(plan: SweepPlan, origin: np.ndarray, axes: np.ndarray) -> list[tuple[StandardPlane, float]]:
    """The standard planes a frame's slice faces (normals within 20 degrees), each with the
    slice's distance from the plane's centre along the slice's normal (fetal units)."""
    normal_f = plan.fetal_rotation.T @ axes[:, 1]
    origin_f = plan.fetal_rotation.T @ (origin - plan.fetal_origin) / plan.subject.fetal_scale
    return [(plane, abs(float((np.asarray(plane.centre) - origin_f) @ normal_f)))
            for plane in STANDARD_PLANES if abs(normal_f[plane.axis]) >= _MAX_TILT]


def plane_labels(plan: SweepPlan) -> list[str]:
    """The standard plane (or Background) of every frame of a planned sweep."""
    geometry = plan.geometry
    scale = plan.subject.fetal_scale
    r_min, r_max = geometry.radius_cm + 0.5, geometry.radius_cm + geometry.depth_cm - 0.5
    half = geometry.half_angle - np.deg2rad(5)
    labels = []
    for origin, axes in zip(plan.origins, plan.axes):
        best, best_score = BACKGROUND, np.inf
        for plane, distance in _facing_planes(plan, origin, axes):
            if distance > plane.tolerance:
                continue
            centre_w = plan.fetal_rotation @ (scale * np.asarray(plane.centre)) + plan.fetal_origin - origin
            x, z = centre_w @ axes[:, 0], centre_w @ axes[:, 2] + geometry.radius_cm
            r, angle = np.hypot(x, z), np.arctan2(x, z)
            if not (r_min <= r <= r_max and abs(angle) <= half):
                continue
            # of two planes at once (Profile and Spine (sag.) share the midline) the one
            # nearer the centre of the image is the one the sonographer is showing
            score = distance / plane.tolerance + abs(angle) / half
            if score < best_score:
                best, best_score = plane.name, score
        labels.append(best)
    return labels


def plane_offsets(plan: SweepPlan) -> np.ndarray:
    """How far (in tolerances) every frame's slice lies from the nearest standard plane it
    faces, ``(T,)``: the distance along the plane's normal over the plane's tolerance, among the
    planes whose normal the slice's is within 20 degrees of (inf where there is none). A frame
    labelled with a plane has an offset of at most 1; a Background frame at 1.5 looks much like
    the plane and is not counted as it, which is where plane detectors err most."""
    return np.array([min((distance / plane.tolerance for plane, distance in _facing_planes(plan, origin, axes)),
                         default=np.inf)
                     for origin, axes in zip(plan.origins, plan.axes)])


def plan_fetal_sweeps(n_sweeps: int = 24, n_frames: int = 64, size: tuple[int, int] = (128, 160), seed: int = 0,
                      sweeps_per_subject: int = 3) -> list[SweepPlan]:
    """Plans (poses and labels, no pixels) of the sweeps :func:`synthesize_fetal_sweeps` renders."""
    subjects: dict[int, Subject] = {}
    plans = []
    for i in range(n_sweeps):
        s = i // sweeps_per_subject
        if s not in subjects:
            subjects[s] = make_subject(seed, s)
        plans.append(plan_sweep(seed, i, n_frames, size, subjects[s]))
    return plans


@dataclass
class RenderedSweep:
    """Frames uint8 (T, H, W), labels (T,), fixations rows (frame, x, y)."""

    frames: np.ndarray
    labels: list[str]
    fixations: list[tuple[int, float, float]]


def scanner_overlay(plan: SweepPlan, fps: float) -> np.ndarray:
    """The text and scale the scanner burns into every frame of the sweep: uint8 ``(H, W)``,
    zero where nothing is drawn (the ground truth for masking tests: none of it may survive)."""
    date = plan.subject.study_date
    return burned_in_overlay(plan.geometry, FakeIdentity().patient_name, f"{date[:4]}-{date[4:6]}-{date[6:]}", fps,
                             plan.subject.frequency_mhz)


def render_sweep(plan: SweepPlan, fps: float, seed: int) -> RenderedSweep:
    """Render every frame of a planned sweep and simulate gaze on it."""
    rng = _rng(seed, 2, plan.index)
    geometry = plan.geometry
    subject = plan.subject
    shape = (geometry.n_radii, geometry.n_angles)
    lateral, depth = geometry.probe_plane_coordinates()

    # world box swept by the fan, for the fixed speckle and texture fields
    corners = np.array([[x, z] for x in (lateral.min(), lateral.max()) for z in (depth.min(), depth.max())])
    swept = np.concatenate([o + corners[:, :1] * a[:, 0] + corners[:, 1:] * a[:, 2]
                            for o, a in zip(plan.origins, plan.axes)])
    lower, upper = swept.min(axis=0) - 0.5, swept.max(axis=0) + 0.5
    speckle = BeamSpeckle(rng, geometry, (plan.origins[:, 1].min(), plan.origins[:, 1].max()),
                          step_cm=2.0 * geometry.spacing_cm)
    texture = RandomField(rng, lower, upper, (0.45, 0.45, 0.45))
    settings = ScannerSettings(gain_db=float(rng.normal(0, 2.0)), dynamic_range_db=float(rng.uniform(45, 51)),
                               gamma=float(rng.uniform(1.1, 1.3)), tgc_db_cm=float(rng.normal(1.2, 0.15)))
    tables = geometry.remap_tables()
    fan = geometry.fan_mask()
    overlay = scanner_overlay(plan, fps)
    text = overlay > 0
    sample_x, sample_y = geometry.to_pixels(lateral, depth)
    gaze = GazeSimulator(rng, sample_x, sample_y, fan)
    keys = {p.name: p.structures for p in STANDARD_PLANES}
    dr = geometry.depth_cm / geometry.n_radii
    coarse = (slice(None, None, 4), slice(None, None, 4))

    frames = np.empty((len(plan.origins), geometry.height, geometry.width), dtype=np.uint8)
    fixations: list[tuple[int, float, float]] = []
    for t, (origin, axes) in enumerate(zip(plan.origins, plan.axes)):
        grid = SliceGrid(geometry, origin, axes)
        echo, atten, owner = subject.phantom.evaluate(grid, plan.fetal_rotation, plan.fetal_origin,
                                                      subject.fetal_scale)
        # tissue texture varies slowly: sample it coarsely and interpolate
        sparse = grid.points[coarse]
        tex = texture.sample(sparse.reshape(-1, 3)).reshape(sparse.shape[:2])
        tex = cv2.resize(tex, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        fresh = speckle.fields[(7 * t + 3) % len(speckle.fields)]
        noise = rng.standard_normal(shape, dtype=np.float32)
        # finite resolution: tissue boundaries blur over about one resolution cell
        echo = cv2.GaussianBlur(echo, (0, 0), sigmaX=1.2, sigmaY=0.6)
        beam = beam_image(echo, atten, speckle.at(origin[1]), fresh, tex, noise, dr, settings)
        image = scan_convert(beam, tables, fan)
        image[text] = overlay[text]
        frames[t] = image
        for x, y in gaze.step(owner, keys.get(plan.labels[t], ())):
            fixations.append((t, round(x, 2), round(y, 2)))
    return RenderedSweep(frames, list(plan.labels), fixations)


def _render_and_write(task: tuple) -> dict:
    """Render one sweep and write its files (a process-pool task)."""
    plan, fps, seed, fmt, out_dir, stem = task
    sweep = render_sweep(plan, fps, seed)
    geometry = plan.geometry
    out_dir = Path(out_dir)
    if fmt == "dicom":
        media = out_dir / f"{stem}.dcm"
        x0, y0, x1, y1 = geometry.region_bounds()
        face_x, face_y = geometry.face_centre_pixel()
        region = UltrasoundRegion((x0, y0, x1, y1), (geometry.spacing_cm, geometry.spacing_cm),
                                  (int(round(face_x)) - x0, int(round(face_y)) - y0))
        identity = FakeIdentity(study_date=plan.subject.study_date)
        write_ultrasound_dicom(media, sweep.frames, fps, region, identity, [seed, plan.index])
    elif fmt == "mp4":
        media = write_mp4(out_dir / f"{stem}.mp4", sweep.frames, fps)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected 'dicom' or 'mp4'")
    planes = out_dir / f"{stem}.planes.csv"
    pd.DataFrame({"frame": np.arange(len(sweep.labels)), "plane": sweep.labels}).to_csv(planes, index=False)
    fixations = out_dir / f"{stem}.fixations.csv"
    pd.DataFrame(sweep.fixations, columns=["frame", "x", "y"]).to_csv(fixations, index=False)
    return {"media": media, "planes": planes, "fixations": fixations}


def synthesize_fetal_sweeps(
    out_dir: str | os.PathLike,
    n_sweeps: int = 24,
    n_frames: int = 64,
    size: tuple[int, int] = (128, 160),
    fps: float = 25.0,
    seed: int = 0,
    formats: tuple[str, ...] = ("dicom", "mp4"),
    sweeps_per_subject: int = 3,
    val_fraction: float = 0.25,
    workers: int | None = None,
) -> pd.DataFrame:
    """Write a set of simulated fetal ultrasound sweeps with plane labels and gaze.

    Files (``out_dir`` relative): ``sweeps/sweep_XXX.dcm`` or ``.mp4`` (sweep i uses
    ``formats[i % len(formats)]``), ``sweeps/sweep_XXX.planes.csv`` (frame, plane),
    ``sweeps/sweep_XXX.fixations.csv`` (frame, x, y in pixels; frames without fixation
    have no row), ``annotations.csv`` and ``planes.txt`` (:data:`PLANE_CLASSES`, one per
    line, index order, Background first).

    Args:
        out_dir: output folder (created).
        n_sweeps: number of sweeps; sweep i belongs to subject ``i // sweeps_per_subject``.
        n_frames: frames per sweep T.
        size: (height, width) in pixels; even numbers when mp4 is among the formats.
        fps: frame rate.
        seed: everything drawn follows from it; same seed, same pixels and labels.
        formats: file formats to alternate, among "dicom" and "mp4".
        sweeps_per_subject: sweeps per simulated subject.
        val_fraction: share of subjects (whole subjects) in the "val" split.
        workers: processes rendering in parallel (default: up to 2 on the available cores);
            the output does not depend on it.

    Returns:
        the annotations table: path, subject, split, frame_labels, fixations (paths
        relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    (out_dir / "sweeps").mkdir(parents=True, exist_ok=True)
    if not formats or any(f not in ("dicom", "mp4") for f in formats):
        raise ValueError(f"formats must be a non-empty sequence of 'dicom'/'mp4', got {formats!r}")
    if "mp4" in formats and (size[0] % 2 or size[1] % 2):
        raise ValueError(f"mp4 (yuv420p) needs an even frame size, got {size}")
    plans = plan_fetal_sweeps(n_sweeps, n_frames, size, seed, sweeps_per_subject)
    tasks = [(plan, fps, seed, formats[i % len(formats)], out_dir / "sweeps", f"sweep_{i:03d}")
             for i, plan in enumerate(plans)]
    if workers is None:
        workers = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            written = list(pool.map(_render_and_write, tasks))
    else:
        written = [_render_and_write(t) for t in tasks]

    n_subjects = (n_sweeps + sweeps_per_subject - 1) // sweeps_per_subject
    n_val = int(round(val_fraction * n_subjects)) if n_subjects > 1 else 0
    n_val = min(max(n_val, 1 if val_fraction > 0 and n_subjects > 1 else 0), n_subjects - 1)
    val_subjects = set(_rng(seed, 3).permutation(n_subjects)[:n_val].tolist())
    rows = []
    for i, files in enumerate(written):
        subject = i // sweeps_per_subject
        rows.append({
            "path": files["media"].relative_to(out_dir).as_posix(),
            "subject": f"S{subject:03d}",
            "split": "val" if subject in val_subjects else "train",
            "frame_labels": files["planes"].relative_to(out_dir).as_posix(),
            "fixations": files["fixations"].relative_to(out_dir).as_posix(),
        })
    table = pd.DataFrame(rows, columns=["path", "subject", "split", "frame_labels", "fixations"])
    table.to_csv(out_dir / "annotations.csv", index=False)
    (out_dir / "planes.txt").write_text("\n".join(PLANE_CLASSES) + "\n")
    return table
