"""Loading the frames chosen by a temporal sampler: :class:`LoadClipd`."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.transforms import Transform

from ultrassl.errors import ClipReadError
from ultrassl.io import read_clip
from ultrassl.io.cache import LoopCache, shared_loop_cache
from ultrassl.io.types import Clip, ClipInfo
from ultrassl.transforms.intensity import ToFloatClip
from ultrassl.transforms.temporal import frame_indices_key


def meta_key(view: Hashable) -> str:
    """Name of the sample entry holding a view's timing and spacing."""
    return f"{view}_meta"


def audio_key(view: Hashable) -> str:
    """Name of the sample entry holding a view's audio."""
    return f"{view}_audio"


class LoadClipd(Transform):
    """Decode the frames of every view of a sample with one read of the file.

    Reads the union of the views' ``"{view}_frame_indices"`` (written by
    :class:`~ultrassl.transforms.temporal.SampleFramesd`) with :func:`ultrassl.io.read_clip`,
    each frame once, and puts for each view:

    * ``d[view]``: float32 tensor ``(C, T, H, W)`` in [0, 1], the view's frames in its order;
    * ``d[f"{view}_meta"]``: ``{"timestamps_s": [T floats], "spacing_mm": [row, col] (NaN,
      NaN when unknown), "fps": float (NaN when unknown)}``, plus ``"audio_sample_rate"``
      (float) when audio is read;
    * with ``with_audio``: ``d[f"{view}_audio"]``: float32 tensor ``(channels, samples)`` in
      [-1, 1] covering the view's time span ``[t_first, t_last + 1 / fps)``, cut from the
      audio the reader returns for the union (which starts at the earliest frame's time).

    The input dict is not modified.

    Args:
        view_keys: the views to load.
        path_key: entry holding the file path.
        with_audio: also load each view's audio; a file without an audio track raises.
        expected_frames_key: entry holding the frame count the manifest gives (skipped when
            absent); a file with another count raises
            :class:`~ultrassl.errors.FrameCountMismatchError`.
        format_key: entry holding the reader name (the manifest's ``format`` column), used
            when present to skip format detection.
        info_key: entry holding a :class:`~ultrassl.io.ClipInfo` from an earlier probe, used
            when present to skip the probe.
        loop_cache_mb: keep up to this many MB of whole decoded loops in memory per process
            (:func:`~ultrassl.io.cache.shared_loop_cache`, one cache for all the loaders of a
            process, as large as the largest of their budgets; 0: off). For data sets whose
            decoded loops fit; reads with audio bypass it.

    Raises:
        ClipReadError: a subclass naming the file and the cause.
    """

    def __init__(
        self,
        view_keys: str | tuple[str, ...] | list[str] = ("clip",),
        path_key: str = "path",
        with_audio: bool = False,
        expected_frames_key: str | None = "n_frames",
        format_key: str | None = "format",
        info_key: str | None = "clip_info",
        loop_cache_mb: float = 0.0,
    ):
        self.view_keys = (view_keys,) if isinstance(view_keys, str) else tuple(view_keys)
        if not self.view_keys:
            raise ValueError("view_keys must name at least one view")
        self.path_key = path_key
        self.with_audio = with_audio
        self.expected_frames_key = expected_frames_key
        self.format_key = format_key
        self.info_key = info_key
        self.to_float = ToFloatClip()
        self.loop_cache_bytes = int(loop_cache_mb * 2**20)

    @property
    def cache(self) -> LoopCache | None:
        """The process's loop cache (None when off), looked up at each read so that a worker
        process uses its own."""
        return shared_loop_cache(self.loop_cache_bytes) if self.loop_cache_bytes > 0 else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        if self.path_key not in d:
            raise KeyError(f"LoadClipd needs the file path under {self.path_key!r}")
        path = d[self.path_key]
        views = {}
        for view in self.view_keys:
            key = frame_indices_key(view)
            if key not in d:
                raise KeyError(f"LoadClipd: {path}: no {key!r} in the sample (run SampleFramesd first)")
            views[view] = np.asarray(d[key], dtype=np.int64).reshape(-1)
        union = np.unique(np.concatenate(list(views.values())))
        info = d.get(self.info_key) if self.info_key else None
        options = dict(expected_n_frames=_optional(d, self.expected_frames_key),
                       info=info if isinstance(info, ClipInfo) else None, format=_optional(d, self.format_key))
        cache = self.cache
        if cache is not None and not self.with_audio:
            clip = cache.read(path, union, **options)
        else:
            clip = read_clip(path, union, with_audio=self.with_audio, **options)
        if self.with_audio and clip.audio is None:
            raise ClipReadError("audio was asked for but the file has no audio track", str(path))
        frames = self.to_float(clip.frames)  # (C, U, H, W)
        spacing = [math.nan, math.nan] if clip.spacing_mm is None else [float(v) for v in clip.spacing_mm]
        fps = math.nan if not clip.fps else float(clip.fps)
        union_start_s = float(np.min(clip.timestamps_s))
        for view, indices in views.items():
            positions = torch.as_tensor(np.searchsorted(union, indices))
            d[view] = frames[:, positions].contiguous()
            times = np.asarray(clip.timestamps_s, dtype=np.float64)[positions.numpy()]
            meta = {"timestamps_s": [float(t) for t in times], "spacing_mm": list(spacing), "fps": fps}
            if self.with_audio:
                d[audio_key(view)] = torch.from_numpy(_view_audio(clip, times, union_start_s, path))
                meta["audio_sample_rate"] = float(clip.audio_sample_rate)
            d[meta_key(view)] = meta
        return d


def _optional(d: Mapping[Hashable, Any], key: str | None) -> Any:
    """``d[key]``, or None when there is no key or the value is missing (None or NaN)."""
    if key is None:
        return None
    value = d.get(key)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _view_audio(clip: Clip, times: np.ndarray, union_start_s: float, path: Any) -> np.ndarray:
    """The samples of ``clip.audio`` over ``[times.min(), times.max() + 1 / fps)``.

    ``clip.audio`` starts at ``union_start_s``, the time of the earliest frame read. Samples
    beyond the end of what the reader returned are zeros.
    """
    if not np.all(np.isfinite(times)):
        raise ClipReadError("cannot place the audio: the frames' times are unknown", str(path))
    rate = float(clip.audio_sample_rate)
    period = 1.0 / clip.fps if clip.fps else 0.0
    first, last = float(times.min()), float(times.max())
    start = int(round((first - union_start_s) * rate))
    n_samples = int(round((last + period - first) * rate))
    audio = np.zeros((clip.audio.shape[0], n_samples), dtype=np.float32)
    available = clip.audio[:, start : start + n_samples]
    audio[:, : available.shape[1]] = available
    return audio
