"""ToChannelsClip: RGB to luma (ITU-R BT.601) and grayscale to RGB."""

from __future__ import annotations

import pytest
import torch

from ultrassl.transforms.intensity import ToChannelsClip, ToChannelsClipd


def test_rgb_to_gray_is_bt601_luma():
    clip = torch.rand(3, 2, 4, 5)
    gray = ToChannelsClip(1)(clip)
    expected = 0.299 * clip[0] + 0.587 * clip[1] + 0.114 * clip[2]
    assert gray.shape == (1, 2, 4, 5)
    torch.testing.assert_close(gray[0], expected)
    pure = torch.zeros(3, 1, 1, 1)
    pure[1] = 1.0  # pure green
    assert ToChannelsClip(1)(pure).item() == pytest.approx(0.587)


def test_gray_to_rgb_repeats_and_equal_counts_pass():
    clip = torch.rand(1, 3, 4, 4)
    rgb = ToChannelsClip(3)(clip)
    assert rgb.shape == (3, 3, 4, 4) and all(torch.equal(rgb[c], clip[0]) for c in range(3))
    rgb[0] += 1  # a real copy, not a view of the input
    assert torch.equal(rgb[1], clip[0])
    assert ToChannelsClip(1)(clip) is clip


def test_dictionary_twin_and_bad_input():
    sample = {"a": torch.rand(3, 2, 4, 4), "b": torch.rand(1, 2, 4, 4), "mask": torch.ones(1, 1, 4, 4)}
    out = ToChannelsClipd(("a", "b"), channels=1)(sample)
    assert out["a"].shape[0] == out["b"].shape[0] == 1 and out["mask"] is sample["mask"]
    assert sample["a"].shape[0] == 3  # input not modified
    with pytest.raises(ValueError, match="1 or 3"):
        ToChannelsClip(2)
    with pytest.raises(ValueError, match="between 1 and 3"):
        ToChannelsClip(3)(torch.rand(2, 1, 4, 4))
