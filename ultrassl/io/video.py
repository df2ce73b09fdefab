"""Video files (.mp4, .mov, .m4v, .mkv, .webm, .avi) read frame-accurately with PyAV.

Frame index ``i`` is the ``i``-th picture in presentation order, counting every picture the
file holds once. Two ways of finding it, chosen per file in :meth:`VideoReader.probe`:

- MP4/MOV/MKV/WebM store a presentation timestamp (pts) per picture. The probe lists the
  pts of every video packet (demuxing only, no decoding: ~100k packets/s here) and sorts
  them; picture ``i`` is the ``i``-th smallest. When they lie on the grid
  ``first_pts + i / fps`` (constant frame rate, ``metadata["frame_timing"] == "constant"``)
  a read maps pts to index by that formula; otherwise (``"variable"``) it maps through the
  sorted list, which it rebuilds once per process and file. A read seeks to the keyframe
  before the first wanted picture and decodes forward, seeking again for wanted pictures
  more than two keyframe intervals further on.
- AVI stores no pts: FFmpeg makes them up from the chunk number, wrongly for B-frames
  (H.264 in AVI) and with gaps where the file holds "dropped frame" chunks, so index by
  pts would skip or swap pictures. AVI is read in decoding order instead
  (``"decode_order"``): from the start of the file, counting the pictures the decoder puts
  out; intra-only codecs (MJPEG, raw) decode only the wanted packets. The cost grows with
  the position of the last wanted frame: fine for short clips (UCF101, HMDB51, cine loops);
  long inter-coded AVI files are better converted to MP4 or MKV.

The probe's frame count is the number of pictures found, never the header's claim (0 for
MKV/WebM, counts "dropped frame" chunks for AVI). A file whose header declares more
pictures than it holds, or whose packets are damaged, is reported as truncated.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ultrassl.errors import (
    ClipReadError,
    CorruptFileError,
    EmptyClipError,
    FileAccessError,
    UnsupportedFormatError,
)
from ultrassl.io.base import ClipReader, default_timestamps
from ultrassl.io.types import Clip, ClipInfo

#: container formats (FFmpeg demuxer names) without trustworthy presentation timestamps
_DECODE_ORDER_FORMATS = frozenset({"avi"})
#: seconds of audio decoded before the wanted span, so that the decoder has settled after a seek
_AUDIO_PREROLL_S = 0.5
#: a pts this far (in frame periods) from the frame grid means the frame rate is not constant
_GRID_TOLERANCE = 0.25
#: pts tables kept per process for variable-frame-rate files, keyed by (path, size, mtime)
_PTS_TABLE_CACHE_SIZE = 256


class VideoReader(ClipReader):
    """Reads frames and audio of video files with PyAV (FFmpeg).

    Args:
        thread_type: FFmpeg decoder threading: ``"NONE"`` (default), ``"AUTO"`` (frame and
            slice threads), ``"FRAME"`` or ``"SLICE"``. On 2 cores threads gave no steady gain
            (720p H.264, 16-frame clips: 96-115 ms single-threaded against 114-181 ms with
            ``"AUTO"``), and data-loader workers already fill the cores.
        thread_count: decoder threads when threading; 0 lets FFmpeg choose from the core count.
        reseek_keyframe_intervals: wanted frames further apart than this many keyframe
            intervals are reached by a new seek rather than by decoding everything between.

    Returned frames are uint8 RGB (T, H, W, 3); audio is float32 (channels, samples) in
    [-1, 1] at the track's own sample rate.
    """

    name = "video"
    suffixes = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

    def __init__(
        self, thread_type: str = "NONE", thread_count: int = 0, reseek_keyframe_intervals: float = 2.0
    ):
        self.thread_type = thread_type
        self.thread_count = thread_count
        self.reseek_keyframe_intervals = reseek_keyframe_intervals

    # ------------------------------------------------------------------ probe
    def probe(self, path: Path) -> ClipInfo:
        """Header facts plus the exact frame count, from demuxing (not decoding) the video stream.

        ``metadata`` holds: ``codec``, ``pix_fmt``, ``container``, ``bit_rate`` (bits/s or
        None), ``duration_s`` (container duration or None), ``frame_timing``
        (``"constant"``, ``"variable"`` or ``"decode_order"``, see the module docstring),
        ``keyframe_interval`` (median frames between keyframes) and, with an audio track,
        ``audio_codec``, ``audio_sample_rate``, ``audio_channels``. File tags (title,
        author, location, creation time...) are left out on purpose.
        """
        path = Path(path)
        with _open(path) as container:
            stream = _video_stream(container, path)
            scan = _scan_packets(container, stream, path)
            fps = _nominal_fps(stream)
            timing = _frame_timing(container, stream, scan, fps)
            audio = _audio_stream(container)
            context = stream.codec_context
            metadata: dict = {
                "codec": context.name,
                "pix_fmt": context.pix_fmt,
                "container": container.format.name,
                "bit_rate": int(container.bit_rate) if container.bit_rate else None,
                "duration_s": None if container.duration is None else container.duration / 1e6,
                "frame_timing": timing,
                "keyframe_interval": scan.keyframe_interval,
            }
            if audio is not None:
                metadata.update(
                    audio_codec=audio.codec_context.name,
                    audio_sample_rate=int(audio.codec_context.sample_rate),
                    audio_channels=int(audio.codec_context.layout.nb_channels),
                )
            if timing == "variable":
                _remember_pts_table(path, scan.sorted_pts)
            return ClipInfo(
                path=str(path),
                format=self.name,
                n_frames=scan.n_frames,
                height=int(context.height),
                width=int(context.width),
                channels=3,
                fps=None if fps is None else float(fps),
                spacing_mm=spacing_from_tag(container.metadata.get("comment")),
                has_audio=audio is not None,
                metadata=metadata,
            )

    # ------------------------------------------------------------------- read
    def read(
        self, path: Path, frame_indices: np.ndarray, info: ClipInfo, with_audio: bool = False
    ) -> Clip:
        """Decode the frames at ``frame_indices`` (any order, repeats allowed).

        With ``with_audio``, ``Clip.audio`` covers ``[t, t_last + 1 / fps)`` where ``t`` and
        ``t_last`` are the times of the earliest and latest requested frames, at the audio
        track's sample rate: round(duration * rate) samples, zeros where the track has no
        sound (before its start or after its end).

        Raises:
            CorruptFileError: a wanted frame cannot be found or decoded (names the frame).
        """
        path = Path(path)
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        wanted = np.unique(indices)
        frames = np.empty((indices.size, info.height, info.width, 3), dtype=np.uint8)
        seconds = np.full(indices.size, np.nan)
        positions = {int(i): np.flatnonzero(indices == i).tolist() for i in wanted}

        def store(index: int, frame, time_s: float | None) -> None:
            rgb = frame.to_ndarray(format="rgb24", width=info.width, height=info.height)
            for position in positions[index]:
                frames[position] = rgb
                if time_s is not None:
                    seconds[position] = time_s

        metadata = info.metadata
        if metadata.get("frame_timing") not in ("constant", "variable", "decode_order"):
            metadata = self.probe(path).metadata  # info came without the probe's metadata
        timing_name = metadata["frame_timing"]

        with _open(path) as container:
            stream = _video_stream(container, path)
            context = stream.codec_context
            fps = _nominal_fps(stream)
            intra_only = timing_name == "decode_order" and bool(context.codec.intra_only)
            # Frame threads return pictures late; intra-only reads pair each packet with its picture.
            frame_threads = self.thread_type.upper() in ("AUTO", "FRAME")
            context.thread_type = "SLICE" if intra_only and frame_threads else self.thread_type
            context.thread_count = self.thread_count
            if timing_name == "decode_order":
                origin_s = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
                _read_in_decode_order(container, stream, wanted, intra_only, store, path)
                seconds = default_timestamps(indices, None if fps is None else float(fps))
            else:
                if timing_name == "constant" and fps is not None and stream.start_time is not None:
                    timing: _Timing = _ConstantRate(stream.start_time, stream.time_base, fps)
                else:
                    timing = _PtsTable(_pts_table(path, container, stream), stream.time_base)
                origin_s = float(timing.origin * stream.time_base)
                interval = int(metadata.get("keyframe_interval") or 60)
                gap = max(1, int(self.reseek_keyframe_intervals * interval))
                for group in _split_groups(wanted, gap):
                    _decode_group(container, stream, timing, group, store, path, interval)

            audio = sample_rate = None
            if with_audio:
                audio_stream = _audio_stream(container)
                if audio_stream is not None:
                    if np.isnan(seconds).all():
                        raise UnsupportedFormatError(
                            "the audio cannot be aligned: the video states no frame rate", str(path)
                        )
                    period = 1.0 / float(fps) if fps else 0.0
                    start_s = origin_s + float(np.nanmin(seconds))
                    stop_s = origin_s + float(np.nanmax(seconds)) + period
                    sample_rate = int(audio_stream.codec_context.sample_rate)
                    audio = _read_audio(container, audio_stream, start_s, stop_s, sample_rate, path)
        return Clip(
            frames=frames,
            frame_indices=indices,
            timestamps_s=seconds,
            info=info,
            audio=audio,
            audio_sample_rate=sample_rate,
        )


# ---------------------------------------------------------------------- opening
def _typed_av_error(exc: Exception, path: Path, doing: str) -> ClipReadError:
    """An FFmpeg error as a typed error naming the file (the message says what was being done)."""
    import av

    cause = getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, (av.error.FileNotFoundError, av.error.PermissionError)):
        return FileAccessError(f"{doing}: {cause}", str(path))
    if isinstance(exc, (av.error.DecoderNotFoundError, av.error.PatchWelcomeError, av.error.ProtocolNotFoundError)):
        return UnsupportedFormatError(f"{doing}: {cause}", str(path))
    return CorruptFileError(f"{doing}: {cause}", str(path))


@contextlib.contextmanager
def _open(path: Path):
    import av

    if path.is_dir():
        raise UnsupportedFormatError("a folder, not a video file", str(path))
    if path.stat().st_size == 0:
        raise CorruptFileError("the file is empty (0 bytes)", str(path))
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise _typed_av_error(
            exc, path, "not a readable video container (truncated, e.g. without its index, or not video)"
        ) from exc
    try:
        yield container
    except av.error.FFmpegError as exc:
        raise _typed_av_error(exc, path, "the video data cannot be read") from exc
    finally:
        container.close()


def _video_stream(container, path: Path):
    """The first video stream that is not cover art."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    others = sorted({s.type for s in container.streams})
    raise EmptyClipError(f"the file holds no video stream (streams: {', '.join(others) or 'none'})", str(path))


def _audio_stream(container):
    return container.streams.audio[0] if container.streams.audio else None


#: how ``ultrassl data convert`` records the pixel spacing in a video's ``comment`` tag
SPACING_TAG = "ultrassl spacing_mm={row:.6g},{col:.6g}"
_SPACING = re.compile(r"\bultrassl spacing_mm=([0-9.eE+-]+),([0-9.eE+-]+)")


def spacing_tag(spacing_mm: tuple[float, float]) -> str:
    """The container ``comment`` that records (row, column) pixel spacing in mm."""
    return SPACING_TAG.format(row=float(spacing_mm[0]), col=float(spacing_mm[1]))


def spacing_from_tag(comment: str | None) -> tuple[float, float] | None:
    """(row, column) mm from a ``comment`` written by :func:`spacing_tag`, else None (videos
    carry no calibration of their own)."""
    match = _SPACING.search(comment or "")
    if not match:
        return None
    try:
        row, col = float(match.group(1)), float(match.group(2))
    except ValueError:
        return None
    return (row, col) if row > 0 and col > 0 else None


def _nominal_fps(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate else None


# ------------------------------------------------------------------------- scan
@dataclass(frozen=True)
class _Scan:
    """What demuxing the video stream (without decoding) tells."""

    n_frames: int
    #: pts of the pictures in presentation order, or None when some packet has no pts
    sorted_pts: np.ndarray | None
    #: median number of frames between keyframes (n_frames when there is a single one)
    keyframe_interval: int


def _scan_packets(container, stream, path: Path) -> _Scan:
    pts: list = []
    keyframe_ordinals: list[int] = []
    n_discarded = 0
    for packet in container.demux(stream):
        if packet.size == 0:  # the end-of-stream packet; AVI "dropped frame" chunks
            continue
        if packet.is_corrupt:
            raise CorruptFileError(f"truncated or damaged data in video packet {len(pts)}", str(path))
        if packet.is_discard:  # before the start of an MP4 edit list: never shown
            n_discarded += 1
            continue
        if packet.is_keyframe:
            keyframe_ordinals.append(len(pts))
        pts.append(packet.pts)
    n_frames = len(pts)
    declared = int(stream.frames or 0)
    if n_frames == 0:
        if declared or _parse_duration_tag(stream.metadata.get("DURATION")) or stream.duration:
            raise CorruptFileError("truncated: the header declares frames, the file holds none", str(path))
        raise EmptyClipError("the video stream holds no frames", str(path))
    if container.format.name not in _DECODE_ORDER_FORMATS and declared > n_frames + n_discarded:
        raise CorruptFileError(
            f"truncated: the header declares {declared} frames, the file holds {n_frames + n_discarded}",
            str(path),
        )

    sorted_pts = None
    if all(p is not None for p in pts):
        sorted_pts = np.sort(np.asarray(pts, dtype=np.int64))
        if np.any(np.diff(sorted_pts) == 0):
            sorted_pts = None
    if (container.format.name in _DECODE_ORDER_FORMATS and declared > n_frames + n_discarded
            and not container.streams.audio):
        # An AVI's header counts its video chunks. Fewer found means chunks were cut off or
        # damaged past the demuxer's recognition, unless empty "dropped frame" chunks (which
        # the demuxer does not return) stand in for them: FFmpeg's muxer writes those when an
        # audio track starts first, so with audio the count is not a test of damage.
        raise CorruptFileError(
            f"damaged or truncated: the header declares {declared} frames, {n_frames + n_discarded} can be found",
            str(path),
        )
    if declared == 0 and sorted_pts is not None:
        _check_declared_duration(stream, sorted_pts, path)
    if sorted_pts is not None and keyframe_ordinals:
        keyframe_positions = np.searchsorted(sorted_pts, np.asarray(pts, dtype=np.int64)[keyframe_ordinals])
    else:
        keyframe_positions = np.asarray(keyframe_ordinals, dtype=np.int64)
    if keyframe_positions.size > 1:
        interval = int(np.median(np.diff(np.sort(keyframe_positions))))
    else:
        interval = n_frames
    return _Scan(n_frames=n_frames, sorted_pts=sorted_pts, keyframe_interval=max(1, interval))


def _check_declared_duration(stream, sorted_pts: np.ndarray, path: Path) -> None:
    """Matroska/WebM declare no frame count but a per-track duration: a shorter span means truncation."""
    declared = _parse_duration_tag(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    fps = _nominal_fps(stream)
    if declared is None or not fps:
        return
    period = 1.0 / float(fps)
    end = float(sorted_pts[-1] * stream.time_base) + period  # the tag is the track's end time
    if end < declared - 1.5 * period:
        raise CorruptFileError(
            f"truncated: the video track declares an end at {declared:.3f} s, its frames end at "
            f"{end:.3f} s ({len(sorted_pts)} frames)",
            str(path),
        )


def _parse_duration_tag(text: str | None) -> float | None:
    match = re.fullmatch(r"\s*(\d+):(\d+):(\d+(?:\.\d*)?)\s*", text or "")
    if not match:
        return None
    hours, minutes, secs = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def _frame_timing(container, stream, scan: _Scan, fps: Fraction | None) -> str:
    """``"decode_order"``, ``"constant"`` or ``"variable"`` (see the module docstring)."""
    if container.format.name in _DECODE_ORDER_FORMATS or scan.sorted_pts is None:
        return "decode_order"
    if fps is None or stream.start_time is None or scan.sorted_pts[0] != stream.start_time:
        return "variable"
    offsets = (scan.sorted_pts - stream.start_time).astype(np.float64) * float(stream.time_base * fps)
    on_grid = np.rint(offsets)
    if np.array_equal(on_grid, np.arange(scan.n_frames)) and np.abs(offsets - on_grid).max() < _GRID_TOLERANCE:
        return "constant"
    return "variable"


# ------------------------------------------------------------------- pts tables
_PTS_TABLES: OrderedDict = OrderedDict()


def _file_key(path: Path) -> tuple:
    stat = os.stat(path)
    return (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _remember_pts_table(path: Path, sorted_pts: np.ndarray) -> None:
    _PTS_TABLES[_file_key(path)] = sorted_pts
    _PTS_TABLES.move_to_end(_file_key(path))
    while len(_PTS_TABLES) > _PTS_TABLE_CACHE_SIZE:
        _PTS_TABLES.popitem(last=False)


def _pts_table(path: Path, container, stream) -> np.ndarray:
    key = _file_key(path)
    if key in _PTS_TABLES:
        _PTS_TABLES.move_to_end(key)
        return _PTS_TABLES[key]
    scan = _scan_packets(container, stream, path)
    container.seek(0)
    if scan.sorted_pts is None:
        raise CorruptFileError("some video packets carry no timestamp", str(path))
    _remember_pts_table(path, scan.sorted_pts)
    return scan.sorted_pts


class _Timing:
    """Maps between frame index and pts for one stream."""

    origin: int

    def index_of(self, pts: int | None) -> int | None:
        raise NotImplementedError

    def pts_of(self, index: int) -> int:
        raise NotImplementedError


class _ConstantRate(_Timing):
    def __init__(self, origin: int, time_base: Fraction, fps: Fraction):
        self.origin = int(origin)
        self.frames_per_tick = float(time_base * fps)
        self.ticks_per_frame = 1.0 / self.frames_per_tick

    def index_of(self, pts):
        if pts is None:
            return None
        offset = (pts - self.origin) * self.frames_per_tick
        index = round(offset)
        return index if abs(offset - index) < _GRID_TOLERANCE else None

    def pts_of(self, index):
        return self.origin + int(np.floor(index * self.ticks_per_frame + 1e-6))


class _PtsTable(_Timing):
    def __init__(self, sorted_pts: np.ndarray, time_base: Fraction):
        self.sorted_pts = sorted_pts
        self.origin = int(sorted_pts[0])

    def index_of(self, pts):
        if pts is None:
            return None
        index = int(np.searchsorted(self.sorted_pts, pts))
        return index if index < self.sorted_pts.size and self.sorted_pts[index] == pts else None

    def pts_of(self, index):
        return int(self.sorted_pts[index])


# ----------------------------------------------------------------------- decode
def _split_groups(wanted: np.ndarray, gap: int) -> list[np.ndarray]:
    """Sorted unique indices cut where consecutive ones are more than ``gap`` frames apart."""
    cuts = np.flatnonzero(np.diff(wanted) > gap) + 1
    return np.split(wanted, cuts)


def _decoded(container, stream, path: Path, where) -> Iterator:
    """Pictures of ``stream`` in output order from the current position, draining at the end.

    ``where()`` describes the position for an error message (called only on failure).
    """
    import av

    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # end of stream: drained below
                continue
            yield from _checked(packet.decode(), path, where)
        yield from _checked(stream.codec_context.decode(None), path, where)
    except av.error.FFmpegError as exc:
        raise _typed_av_error(exc, path, f"cannot decode the video near {where()}") from exc


def _checked(pictures, path: Path, where) -> list:
    """``pictures``, unless the decoder flagged one as corrupt (it decoded damaged data and hid
    the damage: FFmpeg conceals rather than fails)."""
    for picture in pictures:
        if getattr(picture, "is_corrupt", False):
            raise CorruptFileError(f"damaged data in the video stream near {where()}: the decoder had to "
                                   "conceal errors", str(path))
    return pictures


def _seek_targets(first: int, interval: int) -> list[int]:
    """Frame indices to seek to for ``first``, each further back, ending at frame 0.

    A seek may land after the wanted frame: the container's index can place a keyframe by its
    decoding time, which precedes its presentation time when there are B-frames.
    """
    targets: list[int] = []
    for target in (first, first - interval, first - 4 * interval, 0):
        target = max(target, 0)
        if not targets or target < targets[-1]:
            targets.append(target)
    return targets


def _decode_group(container, stream, timing: _Timing, group: np.ndarray, store, path: Path, interval: int):
    """Seek before ``group[0]`` and decode forward until ``group[-1]``, storing the wanted frames."""
    last = int(group[-1])
    todo = set(int(i) for i in group)
    reached = -1
    for target in _seek_targets(int(group[0]), interval):
        container.seek(timing.pts_of(target), stream=stream, backward=True)
        overshot = False
        for frame in _decoded(container, stream, path, lambda: f"frame {reached + 1}"):
            index = timing.index_of(frame.pts)
            if index is None:
                continue
            if reached < 0 and index > min(todo):
                overshot = True  # decoding starts after a wanted frame: seek further back
                break
            reached = index
            if index in todo:
                store(index, frame, float((frame.pts - timing.origin) * stream.time_base))
                todo.discard(index)
                if not todo:
                    return
            if index >= last:
                break
        if not overshot:
            break
        reached = -1
    raise CorruptFileError(
        f"frame {min(todo)} could not be decoded (missing or damaged in the video stream)", str(path)
    )


def _read_in_decode_order(container, stream, wanted: np.ndarray, intra_only: bool, store, path: Path):
    """Decode from the start, counting pictures; intra-only streams decode only wanted packets."""
    import av

    last = int(wanted[-1])
    todo = set(int(i) for i in wanted)
    ordinal = 0
    if intra_only:
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if ordinal in todo:
                    pictures = _checked(packet.decode(), path, lambda: f"frame {ordinal}")
                    if len(pictures) != 1:
                        raise CorruptFileError(f"frame {ordinal} could not be decoded", str(path))
                    store(ordinal, pictures[0], None)
                    todo.discard(ordinal)
                ordinal += 1
                if ordinal > last:
                    break
        except av.error.FFmpegError as exc:
            raise _typed_av_error(exc, path, f"cannot decode the video near frame {ordinal}") from exc
    else:
        for frame in _decoded(container, stream, path, lambda: f"frame {ordinal}"):
            if ordinal in todo:
                store(ordinal, frame, None)
                todo.discard(ordinal)
            ordinal += 1
            if ordinal > last:
                break
    if todo:
        raise CorruptFileError(
            f"frame {min(todo)} could not be decoded: the stream ends after {ordinal} frames", str(path)
        )


def _read_audio(container, stream, start_s: float, stop_s: float, sample_rate: int, path: Path) -> np.ndarray:
    """Samples over ``[start_s, stop_s)`` as float32 (channels, samples); zeros where there are none."""
    import av

    n_samples = int(round((stop_s - start_s) * sample_rate))
    channels = int(stream.codec_context.layout.nb_channels) or 1
    audio = np.zeros((channels, n_samples), dtype=np.float32)
    time_base = stream.time_base
    seek_s = start_s - _AUDIO_PREROLL_S
    stream_start_s = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
    try:
        if seek_s > stream_start_s:
            container.seek(int(seek_s / time_base), stream=stream, backward=True)
        else:
            container.seek(stream.start_time or 0, stream=stream, backward=True)
        stream.codec_context.flush_buffers()
        resampler = av.AudioResampler(format="fltp")  # keeps the layout and rate
        for packet in container.demux(stream):
            decoded = packet.decode() if packet.size else stream.codec_context.decode(None)
            for frame in decoded:
                if frame.pts is None:
                    continue
                frame_start_s = float(frame.pts * frame.time_base)
                if frame_start_s >= stop_s:
                    return audio
                for converted in resampler.resample(frame):
                    samples = converted.to_ndarray()  # (channels, n) for planar formats
                    offset = int(round((frame_start_s - start_s) * sample_rate))
                    lo, hi = max(offset, 0), min(offset + samples.shape[1], n_samples)
                    if hi > lo:
                        audio[:, lo:hi] = samples[:channels, lo - offset : hi - offset]
                    frame_start_s += samples.shape[1] / sample_rate
    except av.error.FFmpegError as exc:
        raise _typed_av_error(exc, path, f"cannot decode the audio track near {start_s:.3f} s") from exc
    return audio
