"""Geometry regression loss against analytic smooth-L1 values."""

from __future__ import annotations

import pytest
import torch

from ultrassl.losses.geometry import GeometryRegressionLoss


def test_values_in_the_quadratic_and_linear_zones():
    loss = GeometryRegressionLoss(beta=1.0)
    prediction = torch.tensor([[0.5, -2.0]])
    target = torch.zeros(1, 2)
    # 0.5 * 0.5^2 / 1 = 0.125 ; |-2| - 0.5 = 1.5 ; mean = 0.8125
    assert loss(prediction, target).item() == pytest.approx(0.8125)
    assert GeometryRegressionLoss(beta=0.25)(torch.tensor([[0.5]]), torch.zeros(1, 1)).item() == pytest.approx(0.375)


def test_gradient_reaches_the_prediction_and_shapes_must_match():
    prediction = torch.zeros(2, 3, requires_grad=True)
    GeometryRegressionLoss()(prediction, torch.ones(2, 3)).backward()
    assert prediction.grad is not None and (prediction.grad < 0).all()
    with pytest.raises(ValueError, match="same shape"):
        GeometryRegressionLoss()(torch.zeros(2, 3), torch.zeros(2, 2))
