"""A loop as a short movie the browser plays: the frames the page shows, at the file's frame rate.

Encoded in memory with PyAV (H.264 in mp4, the format every browser plays), never written to
disk: the frames are the masked views of the page, but a loop is still patient data.
"""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np

#: most frames put in a movie (a 25 fps loop of 24 s); longer loops are subsampled evenly
MAX_MOVIE_FRAMES = 600
#: frame rate used when the file states none
DEFAULT_FPS = 25.0


def movie_frame_indices(n_frames: int, limit: int = MAX_MOVIE_FRAMES) -> np.ndarray:
    """The frames of an ``n_frames`` loop a movie shows: all, or ``limit`` spread evenly."""
    if n_frames <= limit:
        return np.arange(n_frames)
    return np.unique(np.linspace(0, n_frames - 1, limit).round().astype(int))


def loop_movie(frames: np.ndarray, fps: float | None) -> bytes:
    """mp4 bytes of uint8 RGB frames ``(T, H, W, 3)`` played at ``fps`` (default 25); odd
    sizes are cropped by one pixel (H.264's 4:2:0 needs even sizes)."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"expected uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    rate = Fraction(float(fps) if fps and fps > 0 else DEFAULT_FPS).limit_denominator(1001)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
