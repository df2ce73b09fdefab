"""Builders of small test media, made in a temporary folder at test time.

Shared by test modules: add functions here, do not change the behaviour of existing ones.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: number of bars of the index bar code drawn by :func:`index_frame`
INDEX_BITS = 8


def index_frame(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB uint8 frame (H, W, 3) that carries ``index`` as a bar code.

    The frame is cut into :data:`INDEX_BITS` vertical bars; bar ``b`` is white when bit ``b``
    of ``index`` is set and black otherwise. Bars are wide enough to survive lossy video
    coding. A strip along the top is red on the left half and blue on the right half, so that
    a swap of R and B shows. Read the index back with :func:`decode_frame_index`.
    """
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"index {index} does not fit in {INDEX_BITS} bits")
    if width % INDEX_BITS:
        raise ValueError(f"width {width} must be a multiple of {INDEX_BITS}")
    bar = width // INDEX_BITS
    bits = (index >> np.arange(INDEX_BITS)) & 1
    grey = np.repeat(bits * 200 + 28, bar).astype(np.uint8)  # (W,)
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[...] = grey[None, :, None]
    # A strip along the top: pure red on the left half, pure blue on the right half.
    strip = max(2, height // 8) // 2 * 2
    frame[:strip, : width // 2] = (220, 20, 20)
    frame[:strip, width // 2 :] = (20, 20, 220)
    return frame


def decode_frame_index(frame: np.ndarray) -> int:
    """The index drawn by :func:`index_frame` into ``frame`` (H, W, C), after lossy coding."""
    height, width = frame.shape[:2]
    strip = max(2, height // 8) // 2 * 2
    bar = width // INDEX_BITS
    body = frame[strip + 2 :].astype(np.float64).mean(axis=-1)  # (H', W)
    index = 0
    for b in range(INDEX_BITS):
        # Only the middle of each bar: its edges blur under compression.
        level = body[:, b * bar + bar // 4 : (b + 1) * bar - bar // 4].mean()
        index |= int(level > 128) << b
    return index


def write_test_video(
    path: str | Path,
    n_frames: int = 48,
    size: tuple[int, int] = (48, 64),
    fps: float | Fraction = 25,
    codec: str = "libx264",
    gop: int = 12,
    with_audio: bool = False,
    audio_frequency_hz: float = 440.0,
    audio_sample_rate: int = 16000,
    audio_codec: str | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    frame_times_s: list[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Encode ``n_frames`` frames of :func:`index_frame` into a video file with PyAV.

    Args:
        path: output file; its suffix picks the container (.mp4, .mkv, .avi, .mov, .webm).
        n_frames: number of frames T.
        size: (height, width) in pixels; even numbers, width a multiple of 8.
        fps: constant frame rate.
        codec: video encoder name (``"libx264"``, ``"mpeg4"``, ``"libvpx-vp9"``, ``"mjpeg"``...).
        gop: keyframe interval in frames.
        with_audio: add a mono sine track of ``audio_frequency_hz`` covering the video's length.
        audio_sample_rate: samples per second of that track.
        audio_codec: audio encoder; default AAC, except Opus for .webm and MP3 for .avi.
        options: encoder options (default: a high-quality setting per codec).
        container_options: muxer options (e.g. ``{"movflags": "faststart"}``).
        frame_times_s: presentation time of each frame in seconds, for a variable frame rate
            (stored in milliseconds); default ``index / fps``.

    Returns:
        the uint8 RGB frames (T, H, W, 3) given to the encoder.
    """
    import av

    path = Path(path)
    height, width = size
    rate = Fraction(fps).limit_denominator(100000)
    frames = np.stack([index_frame(i, height, width) for i in range(n_frames)])
    if options is None:
        options = {
            "libx264": {"crf": "12", "preset": "veryfast"},
            "libvpx-vp9": {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"},
        }.get(codec, {})
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        video.codec_context.gop_size = gop
        if codec == "mpeg4":
            video.codec_context.qmax = 4  # fixed high quality so the bar code survives
        video.options = dict(options)
        audio = None
        if with_audio:
            if audio_codec is None:
                audio_codec = {".webm": "libopus", ".avi": "libmp3lame"}.get(path.suffix.lower(), "aac")
            if audio_codec == "libopus":
                audio_sample_rate = 48000  # the only rate Opus encodes natively
            audio = container.add_stream(audio_codec, rate=audio_sample_rate)
            audio.layout = "mono"
        if frame_times_s is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        for frame_index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if frame_times_s is None:
                frame.pts, frame.time_base = frame_index, 1 / rate
            else:
                frame.pts, frame.time_base = round(frame_times_s[frame_index] * 1000), Fraction(1, 1000)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            _encode_sine(container, audio, float(n_frames / rate), audio_frequency_hz, audio_sample_rate)
    return frames


def sine_wave(duration_s: float, frequency_hz: float, sample_rate: int) -> np.ndarray:
    """A float32 sine of amplitude 0.5, shape (samples,)."""
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    return (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def _encode_sine(container, stream, duration_s: float, frequency_hz: float, sample_rate: int) -> None:
    import av

    samples = sine_wave(duration_s, frequency_hz, sample_rate)
    chunk = 1000  # PyAV converts to the encoder's sample format and re-chunks to its frame size
    for start in range(0, samples.size, chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_audio_only(path: str | Path, duration_s: float = 1.0, sample_rate: int = 16000) -> None:
    """A media file (e.g. .mp4) holding a single AAC sine track and no video stream."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        _encode_sine(container, stream, duration_s, 440.0, sample_rate)


def truncate_file(source: str | Path, target: str | Path, keep_fraction: float) -> Path:
    """Copy the first ``keep_fraction`` of ``source``'s bytes to ``target``."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(target)


def fan_mask(
    height: int = 128,
    width: int = 128,
    apex_yx: tuple[float, float] = (-10.0, 64.0),
    radii: tuple[float, float] = (20.0, 120.0),
    half_angle_deg: float = 30.0,
) -> np.ndarray:
    """Boolean ``(H, W)`` ultrasound fan: pixels within ``radii`` of the apex and
    ``half_angle_deg`` of the downward vertical. An apex above the image (negative row) and
    an inner radius give a curvilinear probe; an apex in the image and radius 0 a phased array."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    dy, dx = rows - apex_yx[0], columns - apex_yx[1]
    distance = np.hypot(dy, dx)
    angle = np.degrees(np.arctan2(dx, dy))
    return (distance >= radii[0]) & (distance <= radii[1]) & (np.abs(angle) <= half_angle_deg)


def speckle_frames(sector: np.ndarray, n_frames: int = 16, seed: int = 0) -> np.ndarray:
    """Float32 frames ``(T, H, W)`` in [0, 1]: moving tissue with fresh speckle on every frame
    inside ``sector`` (values >= 0.02 there), exactly 0 outside."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width = sector.shape
    tissue = cv2.GaussianBlur(rng.uniform(0.0, 1.0, (height, width)), (0, 0), 4)
    tissue = 0.25 + 0.5 * (tissue - tissue.min()) / (np.ptp(tissue) + 1e-9)
    frames = []
    for t in range(n_frames):
        speckle = rng.gamma(4.0, 0.25, (height, width))
        frames.append(np.clip(np.roll(tissue, t, axis=0) * speckle, 0.02, 1.0) * sector)
    return np.stack(frames).astype(np.float32)


def burn_in_overlays(
    frames: np.ndarray,
    sector: np.ndarray,
    texts: tuple[tuple[str, tuple[int, int]], ...] = (("ID 42", (1, 9)), ("12/05", (92, 9)), ("HOSP", (2, 124))),
    caliper_xy: tuple[int, int] | None = (64, 60),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Burn static white text (``cv2.putText`` at (x, y) baselines) outside ``sector`` and a
    caliper "+" at ``caliper_xy`` into every frame ``(T, H, W)``.

    Returns:
        the frames with overlays, the boolean text pixels ``(H, W)`` and the boolean
        caliper pixels ``(H, W)``.
    """
    import cv2

    height, width = sector.shape
    text = np.zeros((height, width), np.uint8)
    for words, origin in texts:
        cv2.putText(text, words, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.3, 255, 1)
    # Keep text clear of the sector: in a real layout it never overlaps the image.
    near_sector = cv2.dilate(sector.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    text = (text > 0) & ~near_sector
    caliper = np.zeros((height, width), np.uint8)
    if caliper_xy is not None:
        cv2.drawMarker(caliper, caliper_xy, 255, cv2.MARKER_CROSS, 7, 1)
    out = frames.copy()
    out[:, text] = 1.0
    out[:, caliper > 0] = 1.0
    return out, text, caliper > 0
