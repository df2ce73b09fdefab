"""Which video decoder: PyAV (used by ultrassl) against torchcodec, timed on the same H.264 file.

Measures, on a long H.264 file made here with PyAV (default 1280x720, 600 frames, 30 fps,
a keyframe every 60 frames, B-frames):

(a) a full sequential decode to uint8 RGB arrays (torchcodec in 16-frame batches from one
    decoder: PyAV hands out one frame at a time);
(b) reading a 16-frame clip at random positions (a seek each), the file opened for every clip
    as a data loader does: ultrassl's ``VideoReader.read`` against torchcodec's
    ``VideoDecoder(...).get_frames_at`` in its exact and approximate seek modes.

Both run single-threaded (PyAV thread_type "NONE", torchcodec num_ffmpeg_threads=1) and with
FFmpeg's own threading (PyAV "AUTO", torchcodec num_ffmpeg_threads=0). torchcodec is optional:
without it only PyAV is timed. One run; numbers are medians over repeats.

Usage::

    python benchmarks/decoder_choice.py [--frames 600] [--clips 20] [--size 720x1280]

torchcodec 0.13 needs a system FFmpeg and a torch of the same release; keep it out of the
project's environment (e.g. a throwaway venv with torch==2.13.0 torchcodec==0.13.0 av numpy,
and PYTHONPATH pointing at this repository).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.io.video import VideoReader  # noqa: E402

CLIP_LENGTH = 16


def make_video(path: Path, n_frames: int, height: int, width: int, fps: int = 30, gop: int = 60) -> None:
    """Moving textured frames (hard enough to compress to give a realistic bit rate)."""
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height // 8, width // 8 * 2, 3), dtype=np.uint8)
    texture = texture.repeat(8, axis=0).repeat(8, axis=1)
    ramp = np.linspace(0, 80, width, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "veryfast", "crf": "23", "bf": "2", "sc_threshold": "0"}
        for index in range(n_frames):
            shift = (3 * index) % width
            image = texture[:, shift : shift + width].astype(np.float32) * 0.7 + ramp
            frame = av.VideoFrame.from_ndarray(image.clip(0, 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pyav_full_decode(path: Path, thread_type: str) -> int:
    import av

    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def torchcodec_full_decode(path: Path, threads: int) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads, seek_mode="approximate")
    count, total = 0, decoder.metadata.num_frames
    # In clips, as a loader would: one tensor of every 720p frame would weigh 1.7 GB.
    for start in range(0, total, CLIP_LENGTH):
        count += int(decoder.get_frames_in_range(start, min(start + CLIP_LENGTH, total)).data.shape[0])
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--clips", type=int, default=20, help="random clip positions per decoder")
    parser.add_argument("--size", default="720x1280", help="HEIGHTxWIDTH")
    parser.add_argument("--repeats", type=int, default=3, help="full decodes per decoder")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))

    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
        torchcodec = None
        print(f"torchcodec not available ({type(exc).__name__}: {exc}); timing PyAV only")
    import av

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.mp4"
        start = time.perf_counter()
        make_video(path, args.frames, height, width)
        print(f"test file: {width}x{height}, {args.frames} frames, H.264 gop 60 with B-frames, "
              f"{path.stat().st_size / 1e6:.1f} MB, encoded in {time.perf_counter() - start:.1f} s")
        print(f"PyAV {av.__version__} (FFmpeg {'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec)"
              + (f", torchcodec {torchcodec.__version__}" if torchcodec else ""))

        reader_threads = {"single": ("NONE", 1), "auto": ("AUTO", 0)}
        rng = np.random.default_rng(0)
        starts = rng.integers(0, args.frames - CLIP_LENGTH, args.clips)
        clips = [np.arange(s, s + CLIP_LENGTH) for s in starts]
        rows = []
        for label, (thread_type, tc_threads) in reader_threads.items():
            reader = VideoReader(thread_type=thread_type)
            info = reader.probe(path)
            # The decoders take turns within each repeat so that both see the same machine load.
            full = {"pyav": lambda: pyav_full_decode(path, thread_type)}
            clip = {"pyav": lambda c: reader.read(path, c, info).frames}
            if torchcodec:
                full["tc"] = lambda: torchcodec_full_decode(path, tc_threads)
                for mode in ("exact", "approximate"):
                    clip[f"tc_{mode}"] = lambda c, mode=mode: VideoDecoder(
                        str(path), dimension_order="NHWC", num_ffmpeg_threads=tc_threads, seek_mode=mode
                    ).get_frames_at(indices=c.tolist()).data.numpy()
            for decode in full.values():
                assert decode() == args.frames  # also warms the page cache
            full_times = {name: [] for name in full}
            for _ in range(args.repeats):
                for name, decode in full.items():
                    full_times[name].append(median_time(decode, 1))
            clip_times = {name: [] for name in clip}
            for c in clips:
                for name, read in clip.items():
                    clip_times[name].append(median_time(lambda: read(c), 1))
            row = {"threads": label}
            row.update({f"full_{name}": statistics.median(t) for name, t in full_times.items()})
            row.update({f"clip_{name}": statistics.median(t) for name, t in clip_times.items()})
            if torchcodec:
                ours, theirs = clip["pyav"](clips[0]), clip["tc_exact"](clips[0])
                row["max_abs_diff"] = int(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max())
            rows.append(row)

    print(f"\n(a) full sequential decode of {args.frames} frames to RGB, median of {args.repeats}")
    for row in rows:
        line = f"  {row['threads']:>6} threads: PyAV {row['full_pyav']:.2f} s"
        if "full_tc" in row:
            line += f", torchcodec {row['full_tc']:.2f} s, torchcodec/PyAV = {row['full_tc'] / row['full_pyav']:.2f}"
        print(line)
    print(f"\n(b) {CLIP_LENGTH}-frame clip at a random position, file opened per clip, median of {args.clips}")
    for row in rows:
        line = f"  {row['threads']:>6} threads: ultrassl VideoReader (PyAV) {1000 * row['clip_pyav']:.0f} ms"
        for mode in ("exact", "approximate"):
            key = f"clip_tc_{mode}"
            if key in row:
                line += (f", torchcodec {mode} {1000 * row[key]:.0f} ms "
                         f"(ratio {row[key] / row['clip_pyav']:.2f})")
        print(line)
        if "max_abs_diff" in row:
            print(f"         largest pixel difference between the two decoders' RGB: {row['max_abs_diff']}")


if __name__ == "__main__":
    main()
