"""Distributed helpers for the losses: gather across processes, world size, rank.

Every function works in a single process too (no process group, or ``torch.distributed``
unavailable): ``gather`` returns its input, ``world_size`` is 1 and ``rank`` 0.

Gradients through :func:`gather`. The gathered tensor's backward sums, over all processes,
the gradient each one computed for every slice and hands each process the sum for its own
slice. With a loss ``L_r`` per process, every process then holds ``d(sum_r L_r) / d(own
inputs)``; DDP's gradient averaging divides by the world size, so the parameters move
exactly as for one process computing ``mean_r L_r`` on the whole batch.

The autograd function is written here (as lightly's and solo-learn's ``GatherLayer``) because
torch's ``torch.distributed.nn.functional.all_gather`` is deprecated and its replacement lives
in a private module; it uses only ``all_gather`` and ``all_reduce``, which every backend
(gloo, NCCL) supports.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``(N, ...)`` from every process along dim 0: ``(world_size * N, ...)``.

    Rows ``[r * N, (r + 1) * N)`` come from rank ``r``. Differentiable (see the module
    docstring); every process must pass the same shape (train with ``drop_last=True`` so
    that the last batch is not smaller on some processes).
    """
    if not is_distributed():
        return tensor
    _check_equal_shapes(tensor)
    return _GatherWithGradient.apply(tensor)


@torch.no_grad()
def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """:func:`gather` without a backward (e.g. momentum keys entering a queue)."""
    if not is_distributed():
        return tensor.detach()
    _check_equal_shapes(tensor)
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGradient(torch.autograd.Function):
    """All-gather along dim 0; backward: the sum over processes of the gradient of this slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = rank() * ctx.rows
        return grad[start : start + ctx.rows]


def _check_equal_shapes(tensor: torch.Tensor) -> None:
    """Raise on every process when the shapes differ (a mismatched all_gather would hang)."""
    shape = torch.tensor(list(tensor.shape), dtype=torch.int64, device=tensor.device)
    shapes = [torch.empty_like(shape) for _ in range(world_size())]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(other, shape) for other in shapes):
        found = [tuple(s.tolist()) for s in shapes]
        raise ValueError(
            f"gather needs the same shape on every process, got {found} (one per rank); "
            "use drop_last=True in the training loader"
        )
