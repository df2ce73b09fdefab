"""Frame-order pretext transform: order classes merged under time reversal, one permutation per clip."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
import torch

from ultrassl.transforms.pretext import (
    RandPermuteFrames,
    RandPermuteFramesd,
    permutation_class,
    permutation_classes,
    time_reversed,
)

# The documented numbering for N = 4: representatives p with p[0] < N - 1 - p[0] (the smaller
# of each time-reversed pair), in lexicographic order.
CLASSES_4 = [
    (0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 1, 3), (0, 2, 3, 1), (0, 3, 1, 2), (0, 3, 2, 1),
    (1, 0, 2, 3), (1, 0, 3, 2), (1, 2, 0, 3), (1, 2, 3, 0), (1, 3, 0, 2), (1, 3, 2, 0),
]


def _frame_coded_clip(channels: int = 3, frames: int = 4, size: int = 5) -> torch.Tensor:
    """(C, T, H, W) clip whose every pixel holds 10 * channel + frame."""
    c = torch.arange(channels, dtype=torch.float32)[:, None, None, None]
    t = torch.arange(frames, dtype=torch.float32)[None, :, None, None]
    return (10 * c + t).expand(channels, frames, size, size).clone()


def test_twelve_classes_for_four_frames_with_stable_ids():
    assert permutation_classes(4) == CLASSES_4
    assert [permutation_class(p) for p in CLASSES_4] == list(range(12))


@pytest.mark.parametrize("n", [3, 4, 5])
def test_every_permutation_and_its_time_reversed_partner_share_one_class(n):
    classes = permutation_classes(n)
    assert len(classes) == math.factorial(n) // 2
    members = {k: [] for k in range(len(classes))}
    for perm in permutations(range(n)):
        k = permutation_class(perm)
        assert k == permutation_class(time_reversed(perm))
        members[k].append(perm)
    # All n! permutations covered, exactly two per class, the representative among them.
    assert all(len(m) == 2 and m[0] == time_reversed(m[1]) and classes[k] in m for k, m in members.items())


@pytest.mark.parametrize("perm", list(permutations(range(4))))
def test_a_clip_and_the_same_clip_played_backwards_show_the_same_frames_in_one_class(perm):
    # The ambiguity the classes remove: a sweep seen forwards and shuffled by perm shows exactly
    # the frames the backward sweep shows when shuffled by the partner, so the two must share a
    # class; the frames alone carry no more than that.
    clip = _frame_coded_clip()
    backwards = clip.flip(1)
    partner = time_reversed(perm)
    assert torch.equal(clip[:, list(perm)], backwards[:, list(partner)])
    assert permutation_class(perm) == permutation_class(partner)


def test_reversing_positions_is_not_merged():
    # positions are visible to the model: (1, 0, 2, 3) and its position reversal (3, 2, 0, 1)
    # are different frame sequences from either sweep direction
    assert permutation_class((1, 0, 2, 3)) != permutation_class((3, 2, 0, 1))


def test_non_permutations_are_refused():
    with pytest.raises(ValueError, match="not a permutation"):
        permutation_class([0, 1, 1, 3])


def test_same_permutation_on_every_channel_and_replay():
    transform = RandPermuteFrames(num_frames=4).set_random_state(3)
    clip = _frame_coded_clip()
    out = transform(clip)
    params = transform.params
    perm = params["permutation"]
    assert sorted(perm) == [0, 1, 2, 3] and params["applied"]
    assert params["index"] == permutation_class(perm)
    for c in range(3):
        for i in range(4):
            assert torch.all(out[c, i] == 10 * c + perm[i])
    torch.testing.assert_close(transform.apply(clip, params), out)
    torch.testing.assert_close(clip, _frame_coded_clip())  # input untouched


def test_draws_cover_all_classes_evenly():
    transform = RandPermuteFrames(num_frames=4).set_random_state(0)
    clip = _frame_coded_clip(channels=1, size=1)
    counts = np.zeros(12)
    for _ in range(2400):
        transform(clip)
        counts[transform.params["index"]] += 1
    # 200 expected per class; 5 standard deviations (~70) of slack.
    assert np.all(np.abs(counts - 200) < 70), counts


def test_dict_twin_records_params_and_moves_masks_with_the_clip():
    clip = _frame_coded_clip()
    mask = _frame_coded_clip(channels=1)
    static = torch.rand(1, 1, 5, 5)
    sample = {"clip": clip, "mask": mask, "static": static}
    out = RandPermuteFramesd(["clip", "mask", "static"], num_frames=4).set_random_state(7)(sample)
    record = out["clip_params"]["permutation"]
    assert out["mask_params"]["permutation"] == record
    perm = record["permutation"]
    torch.testing.assert_close(out["clip"], clip[:, perm])
    torch.testing.assert_close(out["mask"], mask[:, perm])
    torch.testing.assert_close(out["static"], static)
    assert record["index"] == permutation_class(perm)
    assert set(sample) == {"clip", "mask", "static"}  # the input sample was not edited
    again = RandPermuteFramesd(["clip"], num_frames=4).set_random_state(7)({"clip": clip})
    assert again["clip_params"]["permutation"] == record


def test_not_firing_records_the_identity():
    out = RandPermuteFramesd("clip", num_frames=4, prob=0.0)({"clip": _frame_coded_clip()})
    assert out["clip_params"]["permutation"] == {"applied": False, "permutation": [0, 1, 2, 3], "index": 0}
    torch.testing.assert_close(out["clip"], _frame_coded_clip())


def test_wrong_frame_count_and_too_few_frames_are_refused():
    with pytest.raises(ValueError, match="got a clip of 5 frames"):
        RandPermuteFrames(num_frames=4)(_frame_coded_clip(frames=5))
    with pytest.raises(ValueError, match="num_frames >= 3"):
        RandPermuteFrames(num_frames=2)
