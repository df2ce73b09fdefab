"""Natural-video-like motion clips whose classes differ only in the direction of time.

Each clip shows a colour-textured object moving over a colour-textured background. The
classes come in pairs; a clip of the second class of a pair is a clip of the first class
played backwards (its trajectory is drawn the same way and reversed), so a single frame
carries no class information and only temporal order separates them:

    Expanding      <-> Contracting          (the object grows / shrinks)
    MoveLeft       <-> MoveRight            (the object travels left / right)
    MoveUp         <-> MoveDown             (the object travels up / down)
    RotateClockwise <-> RotateAnticlockwise (the object turns, as seen on screen)

Every clip has a mono AAC sound track with two parts. A tone follows the object: its pitch is
higher when the object is bigger, further right, higher up or turned further anticlockwise, and
it is louder when the object moves faster, so sound and motion are aligned in time (and a
reversed clip has reversed sound). Under it, a room tone: steady noise in a band set by the kind
of scene, one of four, each with its own colours (:data:`SCENES`), so the sound also says where
the clip was filmed, as a street or a beach looks and sounds like itself.

The files follow UCF101's layout and split conventions:
``videos/<Class>/v_<Class>_gXX_cYY.mp4``, ``splits/classInd.txt`` ("1 Class" lines),
``splits/trainlist01.txt`` ("Class/v_..._gXX_cYY.mp4 <1-based label>") and
``splits/testlist01.txt`` (paths only). Clips of one group share their scene, background and
object appearance (UCF101's groups share actor and scene), and the split keeps whole
groups apart: the first groups (as UCF101's split 1 keeps groups 1-7 of 25) are the test set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ultrassl.synth.writers import write_mp4

#: (forward class, its time reversal)
MOTION_PAIRS: tuple[tuple[str, str], ...] = (
    ("Expanding", "Contracting"),
    ("MoveLeft", "MoveRight"),
    ("MoveUp", "MoveDown"),
    ("RotateClockwise", "RotateAnticlockwise"),
)
#: Class names in label order (alphabetical, as in UCF101's classInd.txt).
MOTION_CLASSES: tuple[str, ...] = tuple(sorted(c for pair in MOTION_PAIRS for c in pair))
_REVERSED = {b: a for a, b in MOTION_PAIRS}
_FORWARD = {a for a, _ in MOTION_PAIRS}
AUDIO_SAMPLE_RATE = 16000
#: Kinds of scene: the background's colour family (RGB in [0, 1]) and the centre of its room tone
#: in Hz, as a street, a forest, a beach and an office each look and sound like themselves.
SCENES: tuple[tuple[str, tuple[float, float, float], float], ...] = (
    ("warm", (0.75, 0.45, 0.30), 400.0),
    ("green", (0.30, 0.62, 0.32), 800.0),
    ("blue", (0.30, 0.42, 0.78), 1600.0),
    ("grey", (0.52, 0.52, 0.52), 3200.0),
)


@dataclass
class Trajectory:
    """Object state per frame: centre (x, y) in pixels, radius in pixels, angle in degrees
    (counter-clockwise on screen, as ``cv2.getRotationMatrix2D``). Arrays of shape (T,)."""

    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    angle: np.ndarray

    def reversed(self) -> "Trajectory":
        return Trajectory(self.x[::-1].copy(), self.y[::-1].copy(), self.radius[::-1].copy(), self.angle[::-1].copy())


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def _smooth(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1] (h, w) with blobs about ``cell`` pixels across."""
    small = rng.random((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2))).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip((big - big.min()) / max(float(np.ptp(big)), 1e-6), 0, 1)


def _grating(rng: np.random.Generator, h: int, w: int, period: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    phase = rng.uniform(0, 2 * np.pi)
    return 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)


def colour_texture(rng: np.random.Generator, h: int, w: int, contrast: float = 1.0,
                   palette: Sequence[float] | None = None) -> np.ndarray:
    """A random colour texture, float32 (h, w, 3) in [0, 1]: blobs, a grating and grain
    mixed between three random colours (drawn around ``palette``, RGB in [0, 1], when given)."""
    if palette is None:
        colours = rng.random((3, 3)).astype(np.float32)
    else:
        colours = np.clip(np.asarray(palette, np.float32) + rng.normal(0, 0.12, (3, 3)), 0, 1).astype(np.float32)
    blobs = _smooth(rng, h, w, rng.uniform(4, 12))[..., None]
    stripes = _grating(rng, h, w, rng.uniform(4, 14))[..., None]
    grain = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 0.8)[..., None]
    mix = colours[0] + (colours[1] - colours[0]) * blobs + (colours[2] - colours[0]) * (0.45 * contrast) * stripes
    return np.clip(mix + 0.15 * contrast * (grain - 0.5), 0, 1).astype(np.float32)


def make_sprite(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An object: colour (size, size, 3) float32 and alpha (size, size) in [0, 1].

    Its shape (ellipse, rectangle, triangle or star) and texture are random; a bright
    radial stripe makes its orientation visible whatever the shape.
    """
    supersample = 4
    big = size * supersample
    mask = np.zeros((big, big), dtype=np.uint8)
    c = big // 2
    r = int(0.46 * big)
    kind = rng.integers(4)
    if kind == 0:
        cv2.ellipse(mask, (c, c), (r, int(r * rng.uniform(0.55, 0.9))), 0, 0, 360, 255, -1)
    elif kind == 1:
        half = int(r * 0.75)
        cv2.rectangle(mask, (c - half, c - int(half * rng.uniform(0.6, 1.0))), (c + half, c + half), 255, -1)
    else:
        n = 3 if kind == 2 else 5
        k = np.arange(2 * n if kind == 3 else n)
        step = np.pi / n if kind == 3 else 2 * np.pi / n
        radii = np.where(k % 2 == 0, r, r * 0.5) if kind == 3 else np.full(len(k), r)
        pts = np.stack([c + radii * np.cos(k * step - np.pi / 2), c + radii * np.sin(k * step - np.pi / 2)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    alpha = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    colour = colour_texture(rng, size, size, contrast=1.6)
    marker = np.zeros((size, size), np.float32)
    cv2.line(marker, (size // 2, size // 2), (size // 2, size // 12), 1.0, max(1, size // 12))
    colour = colour * (1 - marker[..., None]) + marker[..., None] * np.array([1.0, 1.0, 0.9], np.float32)
    edge = cv2.morphologyEx((alpha > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    colour[edge > 0] *= 0.35  # a dark rim, as objects seen against a background have
    return colour, alpha


def forward_trajectory(kind: str, rng: np.random.Generator, n_frames: int, size: tuple[int, int]) -> Trajectory:
    """The trajectory of the forward class of a pair (Expanding, MoveLeft, MoveUp,
    RotateClockwise). Nuisance motion (drift, easing) is drawn symmetrically in time."""
    h, w = size
    short = min(h, w)
    tau = np.linspace(0.0, 1.0, n_frames)
    ease = rng.uniform(-0.5, 0.5)  # accelerating or decelerating; symmetric under reversal
    progress = tau + ease * tau * (tau - 1)
    drift = rng.normal(0, 0.04 * short, 2)
    angle0 = rng.uniform(0, 360)
    if kind == "Expanding":
        r0 = rng.uniform(0.1, 0.15) * short
        r1 = min(r0 * rng.uniform(1.8, 2.6), 0.42 * short)
        radius = r0 + (r1 - r0) * progress
        cx, cy = w / 2 + rng.normal(0, 0.06 * w), h / 2 + rng.normal(0, 0.06 * h)
        x, y = cx + drift[0] * (tau - 0.5), cy + drift[1] * (tau - 0.5)
        angle = np.full(n_frames, angle0)
    elif kind in ("MoveLeft", "MoveUp"):
        r = rng.uniform(0.13, 0.2) * short
        extent = w if kind == "MoveLeft" else h
        length = rng.uniform(0.4, 0.65) * extent
        start = rng.uniform(0.6 * r + length, extent - 0.6 * r)
        along = start - length * progress  # decreasing: leftwards or upwards
        across = rng.uniform(0.3, 0.7) * (h if kind == "MoveLeft" else w) + drift[1] * (tau - 0.5)
        x, y = (along, across) if kind == "MoveLeft" else (across, along)
        radius = np.full(n_frames, r)
        angle = np.full(n_frames, angle0)
    elif kind == "RotateClockwise":
        r = rng.uniform(0.2, 0.3) * short
        turn = rng.uniform(4.0, 10.0) * (n_frames - 1)
        angle = angle0 - turn * progress  # clockwise on screen = decreasing cv2 angle
        x = w / 2 + rng.normal(0, 0.08 * w) + drift[0] * (tau - 0.5)
        y = h / 2 + rng.normal(0, 0.08 * h) + drift[1] * (tau - 0.5)
        radius = np.full(n_frames, r)
    else:
        raise ValueError(f"{kind!r} is not a forward motion class; expected one of {sorted(_FORWARD)}")
    return Trajectory(np.asarray(x, float), np.asarray(y, float), np.asarray(radius, float), np.asarray(angle, float))


def class_trajectory(class_name: str, rng: np.random.Generator, n_frames: int, size: tuple[int, int]) -> Trajectory:
    """A trajectory of ``class_name``: forward classes directly, the others time-reversed."""
    if class_name in _FORWARD:
        return forward_trajectory(class_name, rng, n_frames, size)
    if class_name in _REVERSED:
        return forward_trajectory(_REVERSED[class_name], rng, n_frames, size).reversed()
    raise ValueError(f"unknown motion class {class_name!r}; expected one of {MOTION_CLASSES}")


def render_clip(trajectory: Trajectory, background: np.ndarray, sprite: tuple[np.ndarray, np.ndarray],
                rng: np.random.Generator) -> np.ndarray:
    """Frames uint8 (T, H, W, 3) RGB of the sprite following ``trajectory`` over ``background``."""
    colour, alpha = sprite
    h, w = background.shape[:2]
    size = colour.shape[0]
    frames = np.empty((len(trajectory.x), h, w, 3), dtype=np.uint8)
    for t in range(len(frames)):
        # sprite pixel -> frame pixel: scale/rotate about the sprite centre, then move
        m = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), float(trajectory.angle[t]),
                                    float(2 * trajectory.radius[t] / size))
        m[:, 2] += [trajectory.x[t] - (size - 1) / 2, trajectory.y[t] - (size - 1) / 2]
        obj = cv2.warpAffine(colour, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
        frame = background * (1 - a) + obj * a
        frame = frame + rng.normal(0, 0.008, frame.shape).astype(np.float32)  # sensor noise
        frames[t] = np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)
    return frames


def pitch_track(trajectory: Trajectory, size: tuple[int, int]) -> np.ndarray:
    """The tone's frequency per frame in Hz, float (T,): up by 2.4 octaves from a dot to an object
    filling the frame, 1.2 octaves from the left edge to the right and from the bottom to the
    top, 0.8 octave per anticlockwise turn; 160 Hz to about 4.5 kHz."""
    h, w = size
    turns = (trajectory.angle - trajectory.angle.mean()) / 360.0
    octaves = (2.4 * trajectory.radius / (0.5 * min(h, w)) + 1.2 * trajectory.x / w + 1.2 * (1 - trajectory.y / h)
               + 0.8 * turns)
    return 160.0 * 2.0 ** np.clip(octaves, 0, 4.8)


def loudness_track(trajectory: Trajectory, size: tuple[int, int]) -> np.ndarray:
    """The tone's amplitude per frame, float (T,) in [0.05, 0.4]: louder the faster the object's
    outline moves (travel, growth of the circumference, and the rim's travel when it turns, in
    pixels per frame; full loudness at 5 % of the frame's short side per frame)."""
    short = min(size)
    travel = np.hypot(np.gradient(trajectory.x), np.gradient(trajectory.y))
    growth = 2 * np.pi * np.abs(np.gradient(trajectory.radius))
    turn = np.abs(np.gradient(trajectory.angle)) * np.pi / 180 * trajectory.radius
    speed = (travel + growth + turn) / (0.05 * short)
    return 0.05 + 0.35 * np.clip(speed, 0.0, 1.0)


def room_tone(centre: float, n_samples: int, rng: np.random.Generator, level: float = 0.012,
              sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """Steady noise, float32 (n_samples,), in the half-octave band around ``centre`` Hz, of RMS
    ``level`` (about a third of the quietest tone's, so it never masks the object's sound).

    Band-limited by zeroing the spectrum outside the band: a brick-wall filter is enough for a
    synthetic scene, and numpy's FFT is all it needs."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n_samples))
    frequency = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    spectrum[np.abs(np.log2(np.maximum(frequency, 1e-3) / centre)) > 0.25] = 0
    noise = np.fft.irfft(spectrum, n_samples)
    return (level * noise / max(float(np.sqrt(np.mean(noise**2))), 1e-9)).astype(np.float32)


def trajectory_audio(trajectory: Trajectory, size: tuple[int, int], fps: float, rng: np.random.Generator,
                     sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """A tone (float32 (samples,), within +-0.5) that follows the object frame by frame: its pitch
    the object's size and place (:func:`pitch_track`), its loudness how fast it moves
    (:func:`loudness_track`). Both change within a clip, so sound shifted against the picture
    by a fraction of a clip no longer matches it. :func:`clip_audio` adds the scene's room tone."""
    n = int(round(len(trajectory.x) / fps * sample_rate))
    t_audio = (np.arange(n) + 0.5) / sample_rate
    t_frames = (np.arange(len(trajectory.x)) + 0.5) / fps
    f = np.interp(t_audio, t_frames, pitch_track(trajectory, size))
    amplitude = np.interp(t_audio, t_frames, loudness_track(trajectory, size))
    phase = 2 * np.pi * np.cumsum(f) / sample_rate + rng.uniform(0, 2 * np.pi)
    tone = amplitude * (np.sin(phase) + 0.25 * np.sin(2 * phase))
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * sample_rate))
    return (tone * fade + rng.normal(0, 0.005, n)).astype(np.float32)


def clip_audio(trajectory: Trajectory, scene: int, size: tuple[int, int], fps: float, rng: np.random.Generator,
               sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """A clip's sound track, float32 (samples,) within +-0.6: the object's tone
    (:func:`trajectory_audio`) over the room tone of its kind of scene (:data:`SCENES`, index
    ``scene``; :func:`room_tone`). The tone ties the sound to the clip's moments, the room tone to
    its kind of scene, so the sound of another clip fits neither, unless it is of the same kind
    of scene and its object happens to move alike."""
    tone = trajectory_audio(trajectory, size, fps, rng, sample_rate)
    room = room_tone(SCENES[scene][2], len(tone), rng, sample_rate=sample_rate)
    return np.clip(tone + room, -0.6, 0.6).astype(np.float32)


def clip_name(class_name: str, group: int, clip: int) -> str:
    """UCF101-style relative path of a clip (1-based group and clip numbers)."""
    return f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.mp4"


def synthesize_motion(
    out_dir: str | os.PathLike,
    n_per_class: int = 12,
    n_frames: int = 32,
    size: tuple[int, int] = (64, 64),
    fps: float = 25.0,
    seed: int = 0,
    clips_per_group: int = 3,
    test_fraction: float = 7 / 25,
) -> pd.DataFrame:
    """Write the motion clips and UCF101-style split files.

    Args:
        out_dir: output folder (created): ``videos/``, ``splits/``.
        n_per_class: clips per class.
        n_frames: frames per clip T.
        size: (height, width) in pixels, even numbers.
        fps: frame rate.
        seed: everything drawn follows from it; same seed, same pixels and sound.
        clips_per_group: clips sharing one background and object appearance.
        test_fraction: share of groups (the first ones) in the test list, at least one
            when there are two groups or more.

    Returns:
        one row per clip: path (relative to ``out_dir``, e.g.
        ``videos/MoveLeft/v_MoveLeft_g01_c01.mp4``), label (0-based index into
        :data:`MOTION_CLASSES`; the split files use label + 1), class_name, split
        ("train"/"test"), group (1-based).
    """
    out_dir = Path(out_dir)
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"H.264 (yuv420p) needs an even frame size, got {size}")
    n_groups = -(-n_per_class // clips_per_group)
    n_test = min(n_groups - 1, max(1, int(round(test_fraction * n_groups)))) if n_groups > 1 else 0
    rows = []
    for label, class_name in enumerate(MOTION_CLASSES):
        for k in range(n_per_class):
            group, clip = k // clips_per_group + 1, k % clips_per_group + 1
            look = _rng(seed, 10, label, group)  # shared by the clips of a group
            scene = int(look.integers(len(SCENES)))
            background = colour_texture(look, *size, palette=SCENES[scene][1])
            sprite = make_sprite(look)
            rng = _rng(seed, 11, label, group, clip)
            trajectory = class_trajectory(class_name, rng, n_frames, size)
            frames = render_clip(trajectory, background, sprite, rng)
            audio = clip_audio(trajectory, scene, size, fps, rng)
            relative = clip_name(class_name, group, clip)
            write_mp4(out_dir / "videos" / relative, frames, fps, audio=audio, audio_sample_rate=AUDIO_SAMPLE_RATE)
            rows.append({"path": f"videos/{relative}", "label": label, "class_name": class_name,
                         "split": "test" if group <= n_test else "train", "group": group})
    table = pd.DataFrame(rows, columns=["path", "label", "class_name", "split", "group"])
    splits = out_dir / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(MOTION_CLASSES)))
    train, test = table[table.split == "train"], table[table.split == "test"]
    (splits / "trainlist01.txt").write_text(
        "".join(f"{p.removeprefix('videos/')} {lab + 1}\n" for p, lab in zip(train.path, train.label)))
    (splits / "testlist01.txt").write_text("".join(f"{p.removeprefix('videos/')}\n" for p in test.path))
    return table
