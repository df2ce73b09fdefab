"""MoCo-style InfoNCE against hand-computed values: queue, extra negatives, masks, several positives."""

from __future__ import annotations

import math

import pytest
import torch

from ultrassl.losses.infonce import InfoNCELoss

C = 1 / math.sqrt(2)


def test_hand_computed_queue_and_extra_negative():
    # q = e1; k+ = e1 (cos 1); queue e2, -e1 (cos 0, -1); extra (1, 1)/sqrt2 (cos c); tau 0.5.
    query = torch.tensor([[3.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    extra = torch.tensor([[1.0, 1.0]])
    loss = InfoNCELoss(temperature=0.5)(query, positive, queue, extra)
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2) + math.exp(2 * C)))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_masked_extra_negative_is_left_out():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    extra = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    mask = torch.tensor([True, False])
    loss = InfoNCELoss(temperature=1.0)(query, positive, extra_negatives=extra, extra_mask=mask)
    first = -math.log(math.e / (math.e + 1.0))  # positive 1, extra 0
    second = 0.0  # only the positive is left: -log(1)
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-6)
    assert torch.isfinite(torch.autograd.functional.jacobian(
        lambda q: InfoNCELoss(1.0)(q, positive, extra_negatives=extra, extra_mask=mask), query
    )).all()


def test_without_negatives_the_loss_is_zero_and_logits_put_the_positive_first():
    query, positive = torch.randn(3, 4), torch.randn(3, 4)
    assert InfoNCELoss()(query, positive).item() == pytest.approx(0.0, abs=1e-7)
    logits = InfoNCELoss(temperature=0.07).logits(query, positive, torch.randn(7, 4), torch.randn(3, 2, 4))
    assert logits.shape == (3, 1 + 7 + 2)
    cos = torch.nn.functional.cosine_similarity(query, positive)
    torch.testing.assert_close(logits[:, 0], cos / 0.07)


def test_several_positives_average_single_positive_terms():
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(4, 3, 8, generator=generator)  # e.g. CEP's past/current/future
    key = torch.randn(4, 8, generator=generator)
    queue = torch.randn(10, 8, generator=generator)
    loss = InfoNCELoss()(queries, key, queue)
    separate = torch.stack([InfoNCELoss()(queries[:, p], key, queue) for p in range(3)]).mean()
    torch.testing.assert_close(loss, separate)
    keys = torch.randn(4, 3, 8, generator=generator)
    loss = InfoNCELoss()(key, keys, queue)
    separate = torch.stack([InfoNCELoss()(key, keys[:, p], queue) for p in range(3)]).mean()
    torch.testing.assert_close(loss, separate)


def test_shape_mistakes_are_named():
    with pytest.raises(ValueError, match="queue must be"):
        InfoNCELoss()(torch.randn(2, 4), torch.randn(2, 4), queue=torch.randn(5, 3))
    with pytest.raises(ValueError, match="extra_negatives"):
        InfoNCELoss()(torch.randn(2, 4), torch.randn(2, 4), extra_negatives=torch.randn(3, 4))
    with pytest.raises(ValueError, match="do not match"):
        InfoNCELoss()(torch.randn(2, 3, 4), torch.randn(2, 2, 4))
