"""Intensity clip transforms: analytic values, one draw per clip, records, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.transforms import Compose
from torch.utils.data import DataLoader, Dataset

from ultrassl.transforms.intensity import (
    NormalizeClip,
    NormalizeClipd,
    RandColorJitterClip,
    RandColorJitterClipd,
    RandGaussianBlurClip,
    RandGaussianBlurClipd,
    RandGrayscaleClip,
    RandGrayscaleClipd,
    RandSolarizeClip,
    RandSolarizeClipd,
    RandUltrasoundIntensity,
    RandUltrasoundIntensityd,
    ToFloatClip,
    adjust_contrast,
    adjust_hue,
    serial_mean,
)
from ultrassl.transforms.per_frame import PerFrame


def random_transforms():
    return [
        RandUltrasoundIntensity(prob=1.0),
        RandColorJitterClip(prob=1.0),
        RandGrayscaleClip(prob=1.0),
        RandGaussianBlurClip(prob=1.0),
        RandSolarizeClip(prob=1.0),
    ]


def name(t):
    return type(t).__name__


def static_clip(channels=3, n_frames=5, height=24, width=32, seed=0):
    frame = torch.rand(channels, 1, height, width, generator=torch.Generator().manual_seed(seed))
    return frame.expand(channels, n_frames, height, width).clone()


def moving_clip(channels=3, n_frames=5, height=24, width=32, seed=0):
    return torch.rand(channels, n_frames, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("transform", random_transforms(), ids=name)
def test_identical_frames_stay_identical_and_values_stay_in_range(transform, channels):
    clip = static_clip(channels)
    for seed in range(4):
        out = transform.set_random_state(seed)(clip)
        assert out.shape == clip.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        for t in range(1, out.shape[1]):
            assert torch.equal(out[:, t], out[:, 0])


@pytest.mark.parametrize("transform", random_transforms(), ids=name)
def test_apply_with_recorded_params_reproduces_and_seeds_control_draws(transform):
    clip = moving_clip()
    out = transform.set_random_state(11)(clip)
    params = dict(transform.params)
    transform.set_random_state(12)(clip)
    assert torch.equal(transform.apply(clip, params), out)
    assert torch.equal(transform.set_random_state(11)(clip), out)
    if params.keys() - {"applied"}:  # transforms with continuous parameters
        other = transform.set_random_state(12)(clip)
        assert not torch.equal(other, out)


@pytest.mark.parametrize("transform", random_transforms(), ids=name)
def test_not_firing_returns_the_clip_and_records_the_same_fields(transform):
    clip = moving_clip()
    transform.set_random_state(0)(clip)
    fired = set(transform.params)
    transform.prob = 0.0
    try:
        assert torch.equal(transform(clip), clip)
        assert set(transform.params) == fired and transform.params["applied"] is False
    finally:
        transform.prob = 1.0


def test_ultrasound_intensity_is_gain_then_contrast_then_gamma():
    clip = moving_clip(channels=1)
    transform = RandUltrasoundIntensity(brightness=0.3, contrast=0.3, gamma=0.4, prob=1.0).set_random_state(5)
    out = transform(clip)
    p = transform.params
    assert 0.7 <= p["brightness"] <= 1.3 and 0.7 <= p["contrast"] <= 1.3 and 0.6 <= p["gamma"] <= 1.4
    x = (clip * p["brightness"]).clamp(0, 1)
    x = (p["contrast"] * x + (1 - p["contrast"]) * x.mean()).clamp(0, 1)
    torch.testing.assert_close(out, x ** p["gamma"])


def test_color_jitter_order_and_values():
    clip = moving_clip()
    transform = RandColorJitterClip(prob=1.0)
    orders = set()
    for seed in range(30):
        transform.set_random_state(seed)(clip)
        p = transform.params
        assert sorted(p["order"]) == [0, 1, 2, 3]
        orders.add(tuple(p["order"]))
        assert 0.2 <= p["brightness"] <= 1.8 and 0.2 <= p["saturation"] <= 1.8 and -0.2 <= p["hue"] <= 0.2
    assert len(orders) > 10
    # brightness alone, by hand
    only_brightness = {"order": [0], "brightness": 1.5, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
    torch.testing.assert_close(transform.apply(clip, only_brightness), (clip * 1.5).clamp(0, 1))
    # saturation 0 gives the luminance in every channel
    grey = transform.apply(clip, {**only_brightness, "order": [2], "saturation": 0.0})
    luma = 0.299 * clip[0] + 0.587 * clip[1] + 0.114 * clip[2]
    for c in range(3):
        torch.testing.assert_close(grey[c], luma)


def test_color_jitter_saturation_and_hue_are_noops_on_one_channel():
    clip = moving_clip(channels=1)
    transform = RandColorJitterClip(prob=1.0)
    params = {"order": [3, 2, 0, 1], "brightness": 1.2, "contrast": 0.8, "saturation": 0.1, "hue": 0.4}
    neutral = {**params, "saturation": 1.0, "hue": 0.0}
    torch.testing.assert_close(transform.apply(clip, params), transform.apply(clip, neutral), rtol=0, atol=0)


def test_hue_shift_rotates_primaries():
    red = torch.zeros(3, 1, 2, 2)
    red[0] = 1.0
    green = adjust_hue(red, 1 / 3)
    torch.testing.assert_close(green, torch.roll(red, 1, dims=0), atol=1e-6, rtol=0)
    clip = moving_clip()
    torch.testing.assert_close(adjust_hue(adjust_hue(clip, 0.25), -0.25), clip, atol=1e-5, rtol=0)


def test_grayscale_keeps_channels():
    clip = moving_clip()
    out = RandGrayscaleClip(prob=1.0)(clip)
    assert out.shape == clip.shape
    luma = 0.299 * clip[0] + 0.587 * clip[1] + 0.114 * clip[2]
    for c in range(3):
        torch.testing.assert_close(out[c], luma)
    one = moving_clip(channels=1)
    assert torch.equal(RandGrayscaleClip(prob=1.0)(one), one)


def _reference_blur(clip, sigma, radius):
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).float()
    kernel_2d = torch.outer(kernel, kernel)[None, None]
    frames = clip.reshape(-1, 1, *clip.shape[-2:])
    padded = F.pad(frames, (radius,) * 4, mode="reflect")
    return F.conv2d(padded, kernel_2d).reshape(clip.shape)


def test_blur_is_a_spatial_gaussian_that_never_mixes_frames():
    clip = torch.zeros(1, 3, 40, 40)
    clip[0, 1, 20, 20] = 1.0  # an impulse in the middle frame only
    transform = RandGaussianBlurClip(sigma=(1.5, 1.5), prob=1.0, kernel_fraction=0.2)
    out = transform(clip)
    assert transform.params["sigma"] == 1.5
    assert torch.equal(out[:, 0], clip[:, 0]) and torch.equal(out[:, 2], clip[:, 2])
    assert out[0, 1].sum() == pytest.approx(1.0, abs=1e-5)
    radius = int(0.2 * 40) // 2
    torch.testing.assert_close(out, _reference_blur(clip, 1.5, radius), atol=1e-6, rtol=0)
    moving = moving_clip()
    torch.testing.assert_close(transform(moving), _reference_blur(moving, 1.5, max(1, int(0.2 * 24) // 2)), atol=1e-6, rtol=0)
    constant = torch.full((1, 2, 16, 16), 0.3)
    torch.testing.assert_close(RandGaussianBlurClip(prob=1.0)(constant), constant)


def test_solarize():
    clip = moving_clip()
    out = RandSolarizeClip(threshold=0.4, prob=1.0)(clip)
    torch.testing.assert_close(out, torch.where(clip >= 0.4, 1 - clip, clip), rtol=0, atol=0)


def test_normalize_and_to_float():
    clip = moving_clip()
    out = NormalizeClip(mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0])(clip)
    torch.testing.assert_close(out[1], (clip[1] - 0.2) / 0.25)
    torch.testing.assert_close(NormalizeClipd("clip", 0.5, 0.5)({"clip": clip})["clip"], clip * 2 - 1)
    with pytest.raises(ValueError, match="2 mean values for a clip of 3 channels"):
        NormalizeClip([0.1, 0.2], [1.0, 1.0])(clip)
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    as_clip = ToFloatClip()(frames)
    assert as_clip.shape == (3, 4, 6, 8) and as_clip.dtype == torch.float32
    torch.testing.assert_close(as_clip[2, 1], torch.from_numpy(frames[1, :, :, 2]).float() / 255)
    with pytest.raises(ValueError, match="uint8"):
        ToFloatClip()(frames.astype(np.float32))


def test_per_frame_jitter_draws_per_frame():
    clip = static_clip(channels=1, n_frames=6)
    transform = PerFrame(RandUltrasoundIntensity(prob=1.0)).set_random_state(0)
    out = transform(clip)
    gains = [p["brightness"] for p in transform.params["frames"]]
    assert len(set(gains)) == 6
    assert not torch.equal(out[:, 0], out[:, 1])
    assert torch.equal(transform.apply(clip, transform.params), out)


def test_dict_twins_share_one_draw_across_keys():
    clip = moving_clip()
    sample = {"view": clip, "copy": clip.clone()}
    for twin in [
        RandUltrasoundIntensityd(("view", "copy"), prob=1.0),
        RandColorJitterClipd(("view", "copy"), prob=1.0),
        RandGrayscaleClipd(("view", "copy"), prob=1.0),
        RandGaussianBlurClipd(("view", "copy"), prob=1.0),
        RandSolarizeClipd(("view", "copy"), prob=1.0),
    ]:
        out = twin.set_random_state(0)(sample)
        assert torch.equal(out["view"], out["copy"])
        assert out["view_params"] == out["copy_params"]
        assert "view_params" not in sample


class _Clips(Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.transform({"clip": moving_clip(seed=i)})


def test_records_collate_in_a_dataloader_batch():
    transform = Compose(
        [
            RandColorJitterClipd("clip", prob=0.8),
            RandGrayscaleClipd("clip", prob=0.2),
            RandGaussianBlurClipd("clip", prob=0.5),
            RandSolarizeClipd("clip", prob=0.2),
            RandUltrasoundIntensityd("clip", prob=0.8, per_frame=True),
            NormalizeClipd("clip", 0.5, 0.25),
        ]
    ).set_random_state(0)
    batch = next(iter(DataLoader(_Clips(transform), batch_size=4)))
    params = batch["clip_params"]
    assert batch["clip"].shape == (4, 3, 5, 24, 32)
    assert params["color_jitter"]["hue"].shape == (4,)
    assert len(params["color_jitter"]["order"]) == 4
    assert params["blur"]["sigma"].dtype == torch.float64
    assert params["intensity"]["frames"][4]["gamma"].shape == (4,)


def test_the_contrast_mean_is_the_same_on_any_number_of_threads():
    """Above 32,768 elements torch splits a mean over its threads, and the partial sums round
    differently: a plain ``mean()`` of such a clip may differ in the last bit between one thread
    (a loading worker) and two (the training process). ``serial_mean`` may not."""
    generator = torch.Generator().manual_seed(3)
    clips = [torch.rand(1, 8, 64, 80, generator=generator) for _ in range(10)]
    clips = [c * (c > 0.7) for c in clips]  # mostly dark, as a sector on black
    threads = torch.get_num_threads()
    results = {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results[count] = [(c.mean(), serial_mean(c), adjust_contrast(c, 0.5)) for c in clips]
            assert torch.get_num_threads() == count  # restored after the serial sum
    finally:
        torch.set_num_threads(threads)
    assert any(not torch.equal(one[0], two[0]) for one, two in zip(results[1], results[2]))  # the rounding guarded against
    for (one_plain, one_serial, one_contrast), (_, two_serial, two_contrast) in zip(results[1], results[2]):
        assert torch.equal(one_serial, two_serial) and torch.equal(one_serial, one_plain)
        assert torch.equal(one_contrast, two_contrast)
