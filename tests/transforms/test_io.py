"""LoadClipd: one read of the union of the views' frames, each view in its order, audio per view."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from torch.utils.data import DataLoader, Dataset

import ultrassl.transforms.io as transforms_io
from ultrassl.errors import ClipReadError, FrameCountMismatchError
from ultrassl.io import read_clip
from ultrassl.transforms.intensity import RandUltrasoundIntensityd
from ultrassl.transforms.io import LoadClipd
from ultrassl.transforms.spatial import RandResizedCropClipd
from ultrassl.transforms.temporal import PairSampler, SampleFramesd
from tests.media import decode_frame_index, write_test_video

FPS = 25.0
N_FRAMES = 30


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("load") / "clip.mp4"
    write_test_video(path, n_frames=N_FRAMES, size=(48, 64), fps=int(FPS), gop=6)
    return path


@pytest.fixture(scope="module")
def video_with_audio(tmp_path_factory):
    path = tmp_path_factory.mktemp("load_audio") / "clip.mp4"
    write_test_video(path, n_frames=N_FRAMES, size=(48, 64), fps=int(FPS), with_audio=True)
    return path


def decoded_indices(clip: torch.Tensor) -> list[int]:
    frames = (clip.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
    return [decode_frame_index(frame) for frame in frames]


@pytest.fixture
def counted_reads(monkeypatch):
    calls = []

    def counting_read_clip(path, frame_indices=None, **kwargs):
        calls.append(np.asarray(frame_indices).copy())
        return read_clip(path, frame_indices, **kwargs)

    monkeypatch.setattr(transforms_io, "read_clip", counting_read_clip)
    return calls


def test_views_are_cut_from_one_read_of_their_union(video, counted_reads):
    sample = {
        "path": str(video),
        "n_frames": N_FRAMES,
        "a_frame_indices": np.array([3, 5, 7, 9]),
        "b_frame_indices": np.array([9, 7, 11, 29]),  # overlaps a, not sorted
        "c_frame_indices": np.array([28, 29, 29, 29]),  # a padded view repeats its last frame
    }
    original = copy.deepcopy(sample)
    out = LoadClipd(("a", "b", "c"))(sample)

    assert len(counted_reads) == 1
    np.testing.assert_array_equal(counted_reads[0], [3, 5, 7, 9, 11, 28, 29])
    reference = read_clip(video, np.arange(N_FRAMES)).frames
    for view in ("a", "b", "c"):
        indices = sample[f"{view}_frame_indices"]
        clip = out[view]
        assert clip.shape == (3, 4, 48, 64) and clip.dtype == torch.float32
        assert 0 <= clip.min() and clip.max() <= 1
        assert decoded_indices(clip) == list(indices)
        expected = torch.from_numpy(reference[indices]).permute(3, 0, 1, 2).float() / 255
        assert torch.equal(clip, expected)
        meta = out[f"{view}_meta"]
        np.testing.assert_allclose(meta["timestamps_s"], indices / FPS, atol=1e-9)
        assert meta["fps"] == FPS
        assert np.isnan(meta["spacing_mm"]).all() and len(meta["spacing_mm"]) == 2
    # the input sample is untouched
    assert sample.keys() == original.keys()
    for key, value in original.items():
        np.testing.assert_array_equal(sample[key], value)


def test_sample_then_load_pipeline_in_a_dataloader(video, counted_reads):
    class Videos(Dataset):
        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return self.transform({"path": str(video), "n_frames": N_FRAMES, "fps": FPS})

    transform = Compose(
        [
            SampleFramesd(PairSampler(4, 2), ("view1", "view2")),
            LoadClipd(("view1", "view2")),
            RandResizedCropClipd("view1", 32),
            RandResizedCropClipd("view2", 32),
            RandUltrasoundIntensityd(("view1", "view2"), prob=0.0),
        ]
    ).set_random_state(0)
    batch = next(iter(DataLoader(Videos(transform), batch_size=3)))
    assert len(counted_reads) == 3
    assert batch["view1"].shape == (3, 3, 4, 32, 32)
    temporal = batch["view2_params"]["temporal"]
    assert temporal["gap_frames"].shape == (3,)
    assert torch.equal(batch["view1_frame_indices"][:, 0], batch["view1_params"]["temporal"]["start_frame"])
    assert len(batch["view1_meta"]["timestamps_s"]) == 4


def test_each_view_gets_the_audio_of_its_own_time_span(video_with_audio):
    sample = {
        "path": str(video_with_audio),
        "n_frames": N_FRAMES,
        "a_frame_indices": np.array([3, 5, 7, 9]),
        "b_frame_indices": np.array([14, 16, 18, 20]),
    }
    out = LoadClipd(("a", "b"), with_audio=True)(sample)
    for view in ("a", "b"):
        indices = sample[f"{view}_frame_indices"]
        audio = out[f"{view}_audio"]
        rate = out[f"{view}_meta"]["audio_sample_rate"]
        assert rate == 16000.0 and audio.dtype == torch.float32
        # [t_first, t_last + 1 / fps): 7 frame periods of 0.04 s
        assert audio.shape == (1, round((indices[-1] - indices[0] + 1) / FPS * rate))
        alone = read_clip(video_with_audio, indices, with_audio=True).audio
        np.testing.assert_allclose(audio.numpy(), alone, atol=1e-4)
        # and it is the sine written at those times
        t = indices[0] / FPS + np.arange(audio.shape[1]) / rate
        np.testing.assert_allclose(audio[0].numpy(), 0.5 * np.sin(2 * np.pi * 440.0 * t), atol=0.01)


def test_errors_name_the_file(video):
    with pytest.raises(ClipReadError, match="no audio track") as info:
        LoadClipd(with_audio=True)({"path": str(video), "clip_frame_indices": np.array([0, 1])})
    assert str(video) in str(info.value)
    with pytest.raises(FrameCountMismatchError, match="expected 31 frames"):
        LoadClipd()({"path": str(video), "n_frames": 31, "clip_frame_indices": np.array([0, 1])})
    with pytest.raises(KeyError, match="clip_frame_indices"):
        LoadClipd()({"path": str(video)})
