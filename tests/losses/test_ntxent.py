"""NT-Xent against hand-computed values and the definition written out one query at a time."""

from __future__ import annotations

import math

import pytest
import torch

from ultrassl.losses.ntxent import NTXentLoss

C = 1 / math.sqrt(2)


def test_orthogonal_pairs_at_tau_one():
    # Every query: positive at cosine 1, two negatives at cosine 0 -> -log(e / (e + 2)).
    out0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out1 = out0.clone()
    loss = NTXentLoss(temperature=1.0)(out0, out1)
    assert loss.item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)


def test_hand_computed_case_at_tau_point_one():
    # view 0: e1, e2; view 1: (1, 1)/sqrt2, (-1, 1)/sqrt2 (given unnormalised, scaled by 3).
    out0 = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    out1 = 3 * torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    tau = 0.1
    e = lambda cos: math.exp(cos / tau)  # noqa: E731
    # query e1: positive c, negatives -c (other view) and 0 (same view); and so on.
    per_query = [
        -math.log(e(C) / (e(C) + e(-C) + e(0))),  # view0 sample0
        -math.log(e(C) / (e(C) + e(C) + e(0))),  # view0 sample1
        -math.log(e(C) / (e(C) + e(C) + e(0))),  # view1 sample0
        -math.log(e(C) / (e(C) + e(-C) + e(0))),  # view1 sample1
    ]
    loss = NTXentLoss(temperature=tau)(out0, out1)
    assert loss.item() == pytest.approx(sum(per_query) / 4, rel=1e-6)


def reference_ntxent(out0: torch.Tensor, out1: torch.Tensor, tau: float) -> torch.Tensor:
    """The definition, one query at a time: 2N queries, positive = other view, 2N - 2 negatives."""
    z = torch.nn.functional.normalize(torch.cat([out0, out1]), dim=1)
    n = out0.shape[0]
    losses = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        denominator = torch.logsumexp(torch.stack([z[i] @ z[j] / tau for j in others]), dim=0)
        losses.append(denominator - z[i] @ z[positive] / tau)
    return torch.stack(losses).mean()


def test_matches_the_definition_with_its_gradients():
    generator = torch.Generator().manual_seed(0)
    out0 = torch.randn(6, 5, generator=generator, requires_grad=True)
    out1 = torch.randn(6, 5, generator=generator, requires_grad=True)
    loss = NTXentLoss(temperature=0.1)(out0, out1)
    grads = torch.autograd.grad(loss, (out0, out1))
    expected = reference_ntxent(out0, out1, 0.1)
    expected_grads = torch.autograd.grad(expected, (out0, out1))
    torch.testing.assert_close(loss, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


def test_logits_have_2n_minus_2_negatives_and_the_positive_column():
    out = torch.randn(5, 8)
    logits, labels = NTXentLoss().logits_and_labels(out, out + 0.01 * torch.randn(5, 8))
    assert logits.shape == (10, 9)  # one positive + 2N - 2 = 8 negatives
    torch.testing.assert_close(labels, torch.arange(5).repeat(2))
    assert (logits.argmax(dim=1) == labels).all()  # near-identical views win


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)
