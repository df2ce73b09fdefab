"""Momentum encoder (EMA step, frozen, no graph) and key queue (FIFO, partial fill, checkpoint)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from ultrassl.models.momentum import KeyQueue, MomentumEncoder


def test_ema_step_is_the_analytic_blend_and_the_copy_is_frozen():
    online = nn.Linear(3, 2)
    ema = MomentumEncoder(online)
    start = ema.module.weight.clone()
    assert all(not p.requires_grad for p in ema.parameters())
    assert ema.module.weight.data_ptr() != online.weight.data_ptr()
    with torch.no_grad():
        online.weight.add_(1.0)
    ema.update(online, momentum=0.9)
    torch.testing.assert_close(ema.module.weight, 0.9 * start + 0.1 * online.weight)
    ema.update(online, momentum=1.0)  # m = 1: unchanged
    torch.testing.assert_close(ema.module.weight, 0.9 * start + 0.1 * online.weight)
    ema.update(online, momentum=0.0)  # m = 0: a copy
    torch.testing.assert_close(ema.module.weight, online.weight)
    out = ema(torch.randn(4, 3, requires_grad=True))
    assert not out.requires_grad
    with pytest.raises(ValueError, match="momentum"):
        ema.update(online, 1.5)
    with pytest.raises(ValueError, match="parameter tensors"):
        ema.update(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)), 0.9)


def test_queue_starts_with_random_unit_keys_as_moco():
    queue = KeyQueue(dim=16, size=5)
    assert queue.keys().shape == (5, 16)
    torch.testing.assert_close(queue.keys().norm(dim=1), torch.ones(5))
    queue.enqueue(torch.ones(2, 16))
    torch.testing.assert_close(queue.keys()[:2], torch.ones(2, 16))
    assert queue.keys().shape == (5, 16) and int(queue.pointer) == 2


def test_queue_is_fifo_and_holds_only_written_keys():
    queue = KeyQueue(dim=2, size=5, random_init=False)
    assert queue.keys().shape == (0, 2)
    queue.enqueue(torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    torch.testing.assert_close(queue.keys(), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    queue.enqueue(torch.tensor([[3.0, 3.0], [4.0, 4.0]]))
    queue.enqueue(torch.tensor([[5.0, 5.0], [6.0, 6.0]]))  # wraps: 6 overwrites 1
    assert queue.keys()[:, 0].tolist() == [6.0, 2.0, 3.0, 4.0, 5.0]
    assert int(queue.pointer) == 1 and int(queue.filled) == 5
    queue.enqueue(torch.arange(14.0).reshape(7, 2))  # more than fit: the newest 5
    assert sorted(queue.keys()[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]
    with pytest.raises(ValueError, match=r"keys \(N, 2\)"):
        queue.enqueue(torch.zeros(3, 4))


def test_queue_state_survives_a_weights_only_checkpoint():
    queue = KeyQueue(dim=3, size=4, random_init=False)
    queue.enqueue(torch.randn(3, 3))
    buffer = io.BytesIO()
    torch.save(queue.state_dict(), buffer)
    buffer.seek(0)
    restored = KeyQueue(dim=3, size=4)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored.keys(), queue.keys())
    assert int(restored.pointer) == 3
