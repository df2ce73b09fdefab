"""Shared heads: layer layout and what the options change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ultrassl.models.heads import LinearHead, MLPHead


def _kinds(head: nn.Module) -> list[str]:
    return [type(m).__name__ for m in head]


def test_cvrl_projection_head_layout():
    head = MLPHead(32, 64, 16, num_layers=4)
    assert _kinds(head) == ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear"]
    assert head(torch.randn(5, 32)).shape == (5, 16)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [True, True, True, False]


def test_last_norm_and_layer_norm():
    head = MLPHead(8, 8, 4, num_layers=2, norm="layer", last_norm=True)
    assert _kinds(head) == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm"]
    out = head(torch.randn(3, 8))
    torch.testing.assert_close(out.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)


def test_single_layer_and_no_norm():
    assert _kinds(MLPHead(8, 99, 4, num_layers=1)) == ["Linear"]
    assert _kinds(MLPHead(8, 6, 4, num_layers=2, norm="none")) == ["Linear", "ReLU", "Linear"]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="num_layers"):
        MLPHead(8, 8, 4, num_layers=0)
    with pytest.raises(ValueError, match="norm must be"):
        MLPHead(8, 8, 4, norm="group")


def test_linear_head_input_norm_makes_the_probe_scale_free():
    torch.manual_seed(0)
    head = LinearHead(6, 3, input_norm=True).train()
    x = torch.randn(16, 6)
    torch.testing.assert_close(head(x), head(100.0 * x + 5.0), atol=1e-4, rtol=1e-4)
    assert _kinds(LinearHead(6, 3)) == ["Linear"]
