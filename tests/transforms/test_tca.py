"""Temporal consistent augmentation: time differences only scaled, one static frame per clip, recorded."""

from __future__ import annotations

import pytest
import torch

from ultrassl.transforms.tca import RandTemporalConsistentAugment, RandTemporalConsistentAugmentd


def _clip(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 6, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_every_time_derivative_is_scaled_by_one_minus_lambda():
    clip = _clip()
    tca = RandTemporalConsistentAugment(lam_max=0.1).set_random_state(3)
    for _ in range(5):
        out = tca(clip)
        lam, k = tca.params["lam"], tca.params["frame_index"]
        assert 0.0 <= lam < 0.1 and 0 <= k < clip.shape[1]
        torch.testing.assert_close(out[:, 1:] - out[:, :-1], (1 - lam) * (clip[:, 1:] - clip[:, :-1]))
        torch.testing.assert_close(out, (1 - lam) * clip + lam * clip[:, k : k + 1])
        assert lam > 0 and not torch.allclose(out, clip)  # it did change the appearance


def test_frame_and_weight_are_drawn_per_clip_and_recorded():
    sample = {"anchor": _clip(1), "positive": _clip(2)}
    tca = RandTemporalConsistentAugmentd("anchor", lam_max=0.5).set_random_state(0)
    draws = set()
    for _ in range(20):
        out = tca(sample)
        record = out["anchor_params"]["tca"]
        assert set(record) == {"applied", "lam", "frame_index"}
        draws.add((round(record["lam"], 6), record["frame_index"]))
        torch.testing.assert_close(out["positive"], sample["positive"])  # only the keys given
        assert "tca" not in sample.get("anchor_params", {})  # input not modified
    assert len({k for _, k in draws}) > 1 and len(draws) == 20


def test_not_fired_is_identity_and_bad_lambda_refused():
    clip = _clip()
    out = RandTemporalConsistentAugment(prob=0.0)(clip)
    assert out is clip
    with pytest.raises(ValueError, match="lam_max"):
        RandTemporalConsistentAugment(lam_max=1.0)
