"""Temporal samplers: which frames make each view, chosen before anything is decoded.

A sampler sees only a video's length (frames) and frame rate and returns the frame
indices of every view it makes, so that readers decode those frames and no others.
Modelled on pytorchvideo's ``data/clip_sampling.py``: a sampler returns a small named
tuple, and clip geometry can be stated at a reference frame rate (``target_fps``) so that
cine loops recorded at 25, 30 or 60 fps cover the same time.

Every sampler returns a :class:`ClipSampling`:

* ``indices``: int64 array ``(V, T)``, V views of T frames, each row in file order
  positions ``[0, n_frames)``;
* ``params``: one dict per view of plain numbers, with the same fields on every call of a
  given sampler, so that they collate in a batch. Common fields:

  - ``view``: the view's row in ``indices``;
  - ``start_frame``, ``end_frame``: first and last frame index of the view;
  - ``stride``: frames between consecutive frames of the view, as used;
  - ``num_frames``: T;
  - ``start_time_s``: ``start_frame / fps`` in seconds (NaN when the frame rate is unknown);
  - ``fps``: the video's frame rate (NaN when unknown);
  - ``video_frames``: the video's length in frames;
  - ``stride_reduced``: whether the stride was lowered to fit a short video;
  - ``padded``: whether trailing positions repeat the last frame of a short video.

Short videos. A sampler needs a span of frames (for one view of T frames at stride s,
``(T - 1) * s + 1``). When the video is shorter, ``short_clip`` decides, and the choice is
always recorded; a view never has fewer than T frames:

* ``"reduce_stride"`` (default): use the largest stride that fits (``stride_reduced``);
  if even stride 1 does not fit, raise :class:`ValueError`;
* ``"pad"``: keep the stride, start at frame 0 and repeat the last frame for positions
  past the end (``padded``);
* ``"error"``: raise :class:`ValueError`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from monai.transforms import Transform

from ultrassl.errors import ClipTooShortError
from ultrassl.transforms.base import Reseedable, record_params

#: name under which a view's temporal parameters are recorded in ``"{view}_params"``
TEMPORAL = "temporal"

ShortClipPolicy = Literal["error", "reduce_stride", "pad"]
GapDistribution = Literal["decreasing", "uniform", "increasing"]

_SHORT_CLIP_POLICIES = ("error", "reduce_stride", "pad")


class ClipSampling(NamedTuple):
    """The frames chosen for every view of one video.

    Attributes:
        indices: int64 array ``(V, T)`` of frame indices in ``[0, n_frames)``.
        params: ``V`` dicts of plain numbers describing each view (see the module docstring).
    """

    indices: np.ndarray
    params: list[dict[str, Any]]


class _Fit(NamedTuple):
    offsets: np.ndarray  # (V, T) int64, frame offsets from the window start
    stride: int
    max_start: int  # largest valid window start
    stride_reduced: bool
    padded: bool


def _positive_int(value: int, name: str) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ClipSampler(Reseedable):
    """Base of the temporal samplers.

    Args:
        num_frames: T, frames per view.
        stride: frames between consecutive frames of a view (at ``target_fps`` when given).
        target_fps: reference frame rate of ``stride`` (and of the other frame distances a
            sampler takes). For a video at ``fps``, distances are scaled by
            ``fps / target_fps`` and rounded (at least 1), so views cover the same time at
            any frame rate. Ignored when the video's frame rate is unknown.
        short_clip: what to do when a video is too short (see the module docstring).
    """

    def __init__(
        self,
        num_frames: int,
        stride: int = 1,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        self.num_frames = _positive_int(num_frames, "num_frames")
        self.stride = _positive_int(stride, "stride")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"target_fps must be positive or None, got {target_fps!r}")
        self.target_fps = target_fps
        if short_clip not in _SHORT_CLIP_POLICIES:
            raise ValueError(f"short_clip must be one of {_SHORT_CLIP_POLICIES}, got {short_clip!r}")
        self.short_clip = short_clip

    def __call__(self, n_frames: int, fps: float | None = None) -> ClipSampling:
        """Choose the frames of every view of a video of ``n_frames`` frames at ``fps``."""
        if int(n_frames) != n_frames or n_frames < 1:
            raise ValueError(f"{type(self).__name__}: n_frames must be a positive integer, got {n_frames!r}")
        if fps is not None and not (math.isfinite(float(fps)) and float(fps) > 0):
            fps = None  # NaN or 0 mean "unknown", as in manifests
        return self.sample(int(n_frames), None if fps is None else float(fps))

    @abstractmethod
    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        """Draw the views for a video of ``n_frames`` (>= 1) frames at ``fps`` (or None)."""

    def randomize(self, data: Any = None) -> None:
        """Samplers draw inside :meth:`sample`; there is no separate draw step."""

    # -- helpers for subclasses ------------------------------------------------------------

    def scaled(self, frames: int, fps: float | None) -> int:
        """A distance in frames at ``target_fps``, expressed at the video's ``fps``."""
        if self.target_fps is None or fps is None:
            return int(frames)
        return max(1, int(round(frames * fps / self.target_fps)))

    def fit(self, n_frames: int, stride: int, layout: Callable[[int], np.ndarray], what: str) -> _Fit:
        """Place ``layout(stride)`` (int offsets ``(V, T)`` from a window start) in the video.

        Applies the ``short_clip`` policy when the layout's span exceeds ``n_frames``.
        ``what`` describes the request for error messages.
        """
        offsets = np.asarray(layout(stride), dtype=np.int64)
        span = int(offsets.max()) + 1
        if span <= n_frames:
            return _Fit(offsets, stride, n_frames - span, False, False)
        if self.short_clip == "reduce_stride":
            for smaller in range(stride - 1, 0, -1):
                offsets = np.asarray(layout(smaller), dtype=np.int64)
                if int(offsets.max()) + 1 <= n_frames:
                    return _Fit(offsets, smaller, n_frames - int(offsets.max()) - 1, True, False)
            raise ClipTooShortError(
                f"{type(self).__name__}: a video of {n_frames} frames is too short for {what} "
                f"even at stride 1 (needs {int(layout(1).max()) + 1} frames); "
                "use short_clip='pad' to repeat its last frame instead"
            )
        if self.short_clip == "pad":
            return _Fit(offsets, stride, 0, False, True)
        raise ClipTooShortError(
            f"{type(self).__name__}: a video of {n_frames} frames is too short for {what} "
            f"(needs {span} frames); use short_clip='reduce_stride' or 'pad' to sample it anyway"
        )

    def view_params(
        self, view: int, row: np.ndarray, fit: _Fit, n_frames: int, fps: float | None, **extra: Any
    ) -> dict[str, Any]:
        """The common per-view fields (module docstring) plus ``extra``."""
        start = int(row[0])
        return {
            "view": int(view),
            "start_frame": start,
            "end_frame": int(row[-1]),
            "stride": int(fit.stride),
            "num_frames": int(row.size),
            "start_time_s": start / fps if fps else math.nan,
            "fps": float(fps) if fps else math.nan,
            "video_frames": int(n_frames),
            "stride_reduced": bool(fit.stride_reduced),
            "padded": bool(fit.padded),
            **extra,
        }

    def place(self, starts: np.ndarray | list[int], offsets: np.ndarray, n_frames: int) -> np.ndarray:
        """Indices ``(V, T)``: each view's offsets from its start, clamped to the last frame."""
        starts = np.asarray(starts, dtype=np.int64).reshape(-1, 1)
        return np.minimum(starts + offsets, n_frames - 1).astype(np.int64)

    def clip_layout(self, stride: int) -> np.ndarray:
        """One view of T frames at ``stride``: offsets ``(1, T)``."""
        return (np.arange(self.num_frames, dtype=np.int64) * stride)[None, :]


class UniformClipSampler(ClipSampler):
    """One view of T frames at a fixed stride.

    Args:
        num_frames, stride, target_fps, short_clip: see :class:`ClipSampler`.
        random: draw the start uniformly over every valid start (training); when False, take
            the centred clip (evaluation).
    """

    def __init__(
        self,
        num_frames: int,
        stride: int = 1,
        random: bool = True,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        super().__init__(num_frames, stride, target_fps, short_clip)
        self.random = random

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        fit = self.fit(
            n_frames, self.scaled(self.stride, fps), self.clip_layout,
            f"{self.num_frames} frames at stride {self.scaled(self.stride, fps)}",
        )
        start = int(self.R.randint(fit.max_start + 1)) if self.random else fit.max_start // 2
        indices = self.place([start], fit.offsets, n_frames)
        return ClipSampling(indices, [self.view_params(0, indices[0], fit, n_frames, fps)])


class SpacedFramesSampler(UniformClipSampler):
    """N frames ``spacing`` frames apart from a random start (order + geometry pretext task).

    Args:
        num_frames: N, frames in the sequence (4 in Jiao et al.).
        spacing: k, frames between consecutive frames (recorded as ``stride``).
        target_fps, short_clip: see :class:`ClipSampler`.
    """

    def __init__(
        self,
        num_frames: int = 4,
        spacing: int = 4,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        super().__init__(num_frames, spacing, True, target_fps, short_clip)


class MultiClipSampler(ClipSampler):
    """``num_clips`` evenly spaced views covering the video, for test-time multi-clip averaging.

    Deterministic: starts are ``round(linspace(0, max_start, num_clips))``, as in
    pytorchvideo's constant-clips-per-video sampler; a single clip is centred. Views may
    overlap (or coincide) when the video is short. Extra field: ``clip_index``.
    """

    def __init__(
        self,
        num_clips: int,
        num_frames: int,
        stride: int = 1,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        super().__init__(num_frames, stride, target_fps, short_clip)
        self.num_clips = _positive_int(num_clips, "num_clips")

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        stride = self.scaled(self.stride, fps)
        fit = self.fit(n_frames, stride, self.clip_layout, f"{self.num_frames} frames at stride {stride}")
        if self.num_clips == 1:
            starts = np.array([fit.max_start // 2])
        else:
            starts = np.round(np.linspace(0, fit.max_start, self.num_clips)).astype(np.int64)
        indices = self.place(starts, np.repeat(fit.offsets, self.num_clips, axis=0), n_frames)
        params = [
            self.view_params(v, indices[v], fit, n_frames, fps, clip_index=v) for v in range(self.num_clips)
        ]
        return ClipSampling(indices, params)


class PairSampler(ClipSampler):
    """Two views of T frames from one video with a random start gap (CVRL).

    With ``M`` the largest valid start (``L - (T - 1) * s - 1`` for a video of L frames; the
    CVRL paper's ``L - (T - 1) s`` counts the valid starts), the gap between the two starts
    is drawn over ``[0, M]`` from

    * ``"decreasing"`` (CVRL default): density falling linearly to 0 at M, by inverting its
      CDF: ``gap = floor((M + 1) * (1 - sqrt(1 - u)))``, u ~ U(0, 1) (mean about M / 3);
    * ``"uniform"``: ``gap = floor((M + 1) * u)``;
    * ``"increasing"``: the mirror of decreasing, ``gap = floor((M + 1) * sqrt(u))``.

    The earlier start is uniform over ``[0, M - gap]``, the later one is ``gap`` frames on,
    and the order of the two views is random (``swapped`` is 1 when view 0 is the later
    clip). Short videos, where a clip does not fit at the requested stride (the
    ``short_clip`` policy then applies), get two independent starts uniform over
    ``[0, M]`` instead, as CVRL does (``independent``).

    Playback speed. By default both views use ``stride`` (CVRL). With ``strides``, each view
    draws its own stride uniformly from that set (e.g. ``(1, 2, 4)``), so the two views of a
    pair may play at different speeds (CATE's speed augmentation); each view's ``stride``
    field records its own. ``M`` is then the largest start at which both views fit.

    Nearby views. With ``max_gap`` the gap is drawn from the same density over
    ``[0, min(M, max_gap)]`` instead, so the two views stay within ``max_gap`` frames (at
    ``target_fps`` when given) of each other; 0 gives two augmentations of the same frames
    (SimCLR's positives). In a probe sweep, clips far apart show other anatomy: invariance
    across them is invariance to what a plane classifier must see.

    Extra fields (equal in both views): ``gap_frames`` (distance between the two starts),
    ``gap_s`` (the same in seconds, NaN when the frame rate is unknown), ``swapped``,
    ``independent``.
    """

    def __init__(
        self,
        num_frames: int,
        stride: int = 1,
        gap: GapDistribution = "decreasing",
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
        strides: Sequence[int] | None = None,
        max_gap: int | None = None,
    ):
        super().__init__(num_frames, stride, target_fps, short_clip)
        if gap not in ("decreasing", "uniform", "increasing"):
            raise ValueError(f"gap must be 'decreasing', 'uniform' or 'increasing', got {gap!r}")
        if max_gap is not None and (int(max_gap) != max_gap or max_gap < 0):
            raise ValueError(f"max_gap must be a non-negative integer or None, got {max_gap!r}")
        self.max_gap = None if max_gap is None else int(max_gap)
        self.gap = gap
        if strides is not None:
            strides = tuple(_positive_int(s, "strides") for s in strides)
            if not strides:
                raise ValueError("strides must name at least one stride (or be None for the fixed stride)")
        self.strides = strides

    def draw_strides(self) -> list[int]:
        """The two views' strides (before frame-rate scaling)."""
        if self.strides is None:
            # no draw: a fixed-stride sampler consumes the random stream as it always has
            return [self.stride, self.stride]
        return [self.strides[int(self.R.randint(len(self.strides)))] for _ in range(2)]

    def scaled_gap(self, frames: int, fps: float | None) -> int:
        """``max_gap`` at the video's ``fps``; unlike a stride, 0 stays 0."""
        return 0 if frames == 0 else self.scaled(frames, fps)

    def draw_gap(self, max_start: int) -> int:
        """A start gap in ``[0, max_start]`` from the configured distribution."""
        u = self.R.random_sample()
        if self.gap == "decreasing":
            fraction = 1.0 - math.sqrt(1.0 - u)
        elif self.gap == "increasing":
            fraction = math.sqrt(u)
        else:
            fraction = u
        return min(int((max_start + 1) * fraction), max_start)

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        fits = []
        for requested in self.draw_strides():
            stride = self.scaled(requested, fps)
            fits.append(self.fit(n_frames, stride, self.clip_layout, f"{self.num_frames} frames at stride {stride}"))
        independent = any(fit.stride_reduced or fit.padded for fit in fits)
        if independent:
            starts = [int(self.R.randint(fit.max_start + 1)) for fit in fits]
        else:
            max_start = min(fit.max_start for fit in fits)
            largest = max_start if self.max_gap is None else min(max_start, self.scaled_gap(self.max_gap, fps))
            gap = self.draw_gap(largest)
            first = int(self.R.randint(max_start - gap + 1))
            starts = [first, first + gap]
        swapped = bool(self.R.random_sample() < 0.5)
        if swapped:
            # each start goes with the stride it was placed for (strides are drawn alike per view)
            starts, fits = starts[::-1], fits[::-1]
        gap_frames = abs(starts[1] - starts[0])
        indices = np.concatenate([self.place([start], fit.offsets, n_frames) for start, fit in zip(starts, fits)])
        extra = {
            "gap_frames": gap_frames,
            "gap_s": gap_frames / fps if fps else math.nan,
            "swapped": int(swapped),
            "independent": bool(independent),
        }
        params = [self.view_params(v, indices[v], fits[v], n_frames, fps, **extra) for v in range(2)]
        return ClipSampling(indices, params)


class TripletSampler(ClipSampler):
    """Anchor, positive and temporal negative from one video (VTDL).

    Anchor and positive share one random start (they differ only by their spatial
    augmentation); the negative starts elsewhere in the same video. When the two starts are
    fewer than ``min_negative_gap`` frames apart, the negative start is shifted by ``L // 3``
    modulo the number of valid starts, as in VTDL; if that still lands too close, it moves to
    the valid start farthest from the anchor. In a video with too few valid starts for any
    start to be ``min_negative_gap`` away, the negative is as far as the video allows and
    ``negative_far_enough`` is False (objectives can mask such samples).

    Views: 0 anchor, 1 positive, 2 negative. Extra fields: ``role`` (0, 1, 2),
    ``negative_gap_frames``, ``negative_gap_s``, ``negative_far_enough`` (equal in all views).
    """

    def __init__(
        self,
        num_frames: int,
        stride: int = 1,
        min_negative_gap: int = 2,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        super().__init__(num_frames, stride, target_fps, short_clip)
        self.min_negative_gap = _positive_int(min_negative_gap, "min_negative_gap")

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        stride = self.scaled(self.stride, fps)
        fit = self.fit(n_frames, stride, self.clip_layout, f"{self.num_frames} frames at stride {stride}")
        n_starts = fit.max_start + 1
        anchor = int(self.R.randint(n_starts))
        negative = int(self.R.randint(n_starts))
        if abs(negative - anchor) < self.min_negative_gap:
            negative = (negative + n_frames // 3) % n_starts
        if abs(negative - anchor) < self.min_negative_gap:
            negative = 0 if anchor >= fit.max_start - anchor else fit.max_start
        gap = abs(negative - anchor)
        indices = self.place([anchor, anchor, negative], np.repeat(fit.offsets, 3, axis=0), n_frames)
        extra = {
            "negative_gap_frames": gap,
            "negative_gap_s": gap / fps if fps else math.nan,
            "negative_far_enough": bool(gap >= self.min_negative_gap),
        }
        params = [self.view_params(v, indices[v], fit, n_frames, fps, role=v, **extra) for v in range(3)]
        return ClipSampling(indices, params)


class PastCurrentFutureSampler(ClipSampler):
    """One window of 3T frames split into past, current and future views (CEP).

    The window (stride s, random start) gives views 0 (past), 1 (current) and 2 (future),
    each T frames, contiguous: the current view starts ``s`` frames after the past one ends.
    With ``with_instance_view``, view 3 holds T frames of the same window subsampled in
    order at stride ``3 s``, from a random phase in {0, 1, 2} (in units of s), for CEP's
    instance term.

    Extra fields: ``segment`` (0 past, 1 current, 2 future, 3 instance), ``window_start``
    (first frame of the window), ``window_frames`` (frames the window spans).
    """

    def __init__(
        self,
        num_frames: int,
        stride: int = 1,
        with_instance_view: bool = False,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        super().__init__(num_frames, stride, target_fps, short_clip)
        self.with_instance_view = with_instance_view

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        t = self.num_frames
        phase = int(self.R.randint(3)) if self.with_instance_view else 0

        def layout(s: int) -> np.ndarray:
            steps = np.arange(t, dtype=np.int64)
            rows = [steps * s, (t + steps) * s, (2 * t + steps) * s]
            if self.with_instance_view:
                rows.append((phase + 3 * steps) * s)
            return np.stack(rows)

        stride = self.scaled(self.stride, fps)
        fit = self.fit(n_frames, stride, layout, f"a window of {3 * t} frames at stride {stride}")
        window_start = int(self.R.randint(fit.max_start + 1))
        n_views = fit.offsets.shape[0]
        indices = self.place([window_start] * n_views, fit.offsets, n_frames)
        window_frames = (3 * t - 1) * fit.stride + 1
        params = []
        for v in range(n_views):
            p = self.view_params(
                v, indices[v], fit, n_frames, fps,
                segment=v, window_start=window_start, window_frames=window_frames,
            )
            if v == 3:
                p["stride"] = 3 * fit.stride
            params.append(p)
        return ClipSampling(indices, params)


class MultiSegmentSampler(ClipSampler):
    """A long window cut into S consecutive segments, one view of T frames per segment.

    For audio-visual learning: segment ``i`` starts ``i * segment_length`` frames after the
    window's random start, and its view is the T frames at stride s from that point.

    Args:
        num_segments: S, views per video.
        num_frames, stride, target_fps, short_clip: see :class:`ClipSampler`.
        segment_length: frames from one segment's start to the next (at ``target_fps`` when
            given); default ``num_frames * stride`` (segments abut). At least the view's
            span. When ``short_clip="reduce_stride"`` lowers the stride, the segment length
            shrinks in proportion.

    Extra fields: ``segment`` (0..S-1), ``window_start``, ``segment_length``.
    """

    def __init__(
        self,
        num_segments: int,
        num_frames: int,
        stride: int = 1,
        segment_length: int | None = None,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
    ):
        super().__init__(num_frames, stride, target_fps, short_clip)
        self.num_segments = _positive_int(num_segments, "num_segments")
        if segment_length is not None:
            segment_length = _positive_int(segment_length, "segment_length")
            if segment_length < (self.num_frames - 1) * self.stride + 1:
                raise ValueError(
                    f"segment_length {segment_length} is shorter than one view "
                    f"({self.num_frames} frames at stride {self.stride})"
                )
        self.segment_length = segment_length

    def _segment_length(self, stride: int, requested_stride: int, fps: float | None) -> int:
        if self.segment_length is None:
            return self.num_frames * stride
        length = self.scaled(self.segment_length, fps)
        return max((self.num_frames - 1) * stride + 1, int(round(length * stride / requested_stride)))

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        requested = self.scaled(self.stride, fps)

        def layout(s: int) -> np.ndarray:
            seg = self._segment_length(s, requested, fps)
            steps = np.arange(self.num_frames, dtype=np.int64) * s
            return np.stack([i * seg + steps for i in range(self.num_segments)])

        fit = self.fit(
            n_frames, requested, layout,
            f"{self.num_segments} segments of {self.num_frames} frames at stride {requested}",
        )
        seg = self._segment_length(fit.stride, requested, fps)
        window_start = int(self.R.randint(fit.max_start + 1))
        indices = self.place([window_start] * self.num_segments, fit.offsets, n_frames)
        params = [
            self.view_params(
                v, indices[v], fit, n_frames, fps, segment=v, window_start=window_start, segment_length=seg
            )
            for v in range(self.num_segments)
        ]
        return ClipSampling(indices, params)


class SampleFramesd(Reseedable, Transform):
    """Dictionary twin of the samplers: choose every view's frames of one sample.

    Draws once and writes, for each view key ``k`` (in the sampler's view order),
    ``d[f"{k}_frame_indices"]`` (int64 ``(T,)``) and the view's parameters under
    ``d[f"{k}_params"]["temporal"]``. The input dict is not modified.

    Args:
        sampler: a :class:`ClipSampler`; its number of views must equal ``len(view_keys)``.
        view_keys: names of the views, e.g. ``("clip",)`` or ``("view1", "view2")``.
        n_frames_key: entry holding the video's frame count (e.g. from the manifest). When
            the sample lacks it, the file at ``path_key`` is probed.
        fps_key: entry holding the frame rate (None or NaN when unknown); probed with the
            frame count when missing.
        path_key: entry holding the file path, for probing and error messages.

    Raises:
        ValueError: the video is too short for the sampler (naming the file when known).
    """

    def __init__(
        self,
        sampler: ClipSampler,
        view_keys: str | tuple[str, ...] | list[str] = ("clip",),
        n_frames_key: str = "n_frames",
        fps_key: str = "fps",
        path_key: str = "path",
    ):
        self.sampler = sampler
        self.view_keys = (view_keys,) if isinstance(view_keys, str) else tuple(view_keys)
        if not self.view_keys:
            raise ValueError("view_keys must name at least one view")
        self.n_frames_key = n_frames_key
        self.fps_key = fps_key
        self.path_key = path_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.sampler.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        """Drawing happens in the sampler, in :meth:`__call__`."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        path = d.get(self.path_key)
        n_frames, fps = d.get(self.n_frames_key), d.get(self.fps_key)
        if n_frames is None:
            if path is None:
                raise KeyError(
                    f"SampleFramesd needs the frame count under {self.n_frames_key!r} "
                    f"or a file path under {self.path_key!r} to probe"
                )
            from ultrassl.io import probe_clip  # lazy: keeps this module free of decoder imports

            info = probe_clip(path)
            n_frames = info.n_frames
            if self.fps_key not in d:
                fps = info.fps
        try:
            sampling = self.sampler(int(n_frames), None if fps is None else float(fps))
        except ClipTooShortError as exc:  # named, so that a run can skip and record the file
            raise ClipTooShortError(exc.cause, None if path is None else str(path)) from exc
        except ValueError as exc:
            raise ValueError(str(exc) if path is None else f"{path}: {exc}") from exc
        if sampling.indices.shape[0] != len(self.view_keys):
            raise ValueError(
                f"{type(self.sampler).__name__} makes {sampling.indices.shape[0]} views but "
                f"view_keys names {len(self.view_keys)}: {self.view_keys}"
            )
        for row, key in enumerate(self.view_keys):
            d[frame_indices_key(key)] = sampling.indices[row].copy()
            record_params(d, key, TEMPORAL, sampling.params[row])
        return d


def frame_indices_key(view: Hashable) -> str:
    """Name of the sample entry holding a view's frame indices."""
    return f"{view}_frame_indices"
