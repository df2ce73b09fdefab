"""Gathered NT-Xent on 2 processes (gloo, CPU) trains exactly like 1 process on the whole batch.

Each of 2 processes holds half of a fixed batch, runs a DistributedDataParallel model on it
and the NT-Xent loss whose negatives are gathered from both; DDP averages the parameter
gradients. They must equal the gradients of one process computing the loss on the whole
batch. The gradient on each process's own inputs is the sum over both processes' losses,
so it equals world_size x the single-process one. The key queue, filled on both
processes, must hold the same keys in the same order on each.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ultrassl.losses.ntxent import NTXentLoss
from ultrassl.models.momentum import KeyQueue

WORLD = 2
N, D_IN, D_OUT = 8, 6, 4


def _model() -> nn.Module:
    torch.manual_seed(0)
    # float64, so that 1e-6 tests the arithmetic and not float32 rounding
    return nn.Sequential(nn.Linear(D_IN, 16), nn.Tanh(), nn.Linear(16, D_OUT)).double()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shape = (N, D_IN)
    return (torch.randn(*shape, generator=generator, dtype=torch.float64),
            torch.randn(*shape, generator=generator, dtype=torch.float64))


def _gradients(model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, gather: bool):
    x0, x1 = x0.clone().requires_grad_(True), x1.clone().requires_grad_(True)
    z0, z1 = model(torch.cat([x0, x1])).chunk(2)  # one forward, as the objectives do
    loss = NTXentLoss(temperature=0.1, gather_distributed=gather)(z0, z1)
    loss.backward()
    params = [p.grad.detach().clone() for p in model.parameters()]
    return loss.detach(), params, x0.grad.detach(), x1.grad.detach()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x0, x1 = _batch()
        rows = slice(rank * N // WORLD, (rank + 1) * N // WORLD)
        results = {}
        for gather in (True, False):
            model = nn.parallel.DistributedDataParallel(_model())
            results[gather] = _gradients(model, x0[rows], x1[rows], gather)

        queue = KeyQueue(dim=D_OUT, size=6, random_init=False)
        for step in range(2):  # 2 steps x 2 processes x 2 keys = 8 keys into 6 slots
            queue.enqueue(torch.full((2, D_OUT), float(10 * step + rank)) + torch.arange(2.0)[:, None])

        unequal_error = ""
        try:
            from ultrassl import distributed

            distributed.gather(torch.zeros(rank + 1, 2))
        except ValueError as exc:
            unequal_error = str(exc)
        torch.save({"results": results, "queue": queue.state_dict(), "unequal_error": unequal_error},
                   f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    # Leave without running destructors: freeing the DDP reducers after the group is gone can
    # deadlock in torch (the gloo thread waits for the GIL that the destructor joining it
    # holds), which hangs the test now and then. The results are on disk.
    os._exit(0)


def test_gathered_ntxent_gradients_equal_on_one_and_two_processes(tmp_path):
    x0, x1 = _batch()
    single_loss, single_params, single_x0, single_x1 = _gradients(_model(), x0, x1, gather=True)

    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    # the mean of the per-process losses is the whole-batch loss
    losses = torch.stack([r["results"][True][0] for r in ranks])
    torch.testing.assert_close(losses.mean(), single_loss, atol=1e-6, rtol=0)
    for r, rank_result in enumerate(ranks):
        _, params, grad_x0, grad_x1 = rank_result["results"][True]
        for got, want in zip(params, single_params):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)  # DDP's average
        rows = slice(r * N // WORLD, (r + 1) * N // WORLD)
        torch.testing.assert_close(grad_x0 / WORLD, single_x0[rows], atol=1e-6, rtol=0)
        torch.testing.assert_close(grad_x1 / WORLD, single_x1[rows], atol=1e-6, rtol=0)

    # Without gathering each process sees only its own negatives: a different objective.
    _, local_params, _, _ = ranks[0]["results"][False]
    assert max((a - b).abs().max().item() for a, b in zip(local_params, single_params)) > 1e-3

    # The queue: identical on both processes, newest 6 of the 8 gathered keys, FIFO order.
    queue0, queue1 = ranks[0]["queue"], ranks[1]["queue"]
    for name in ("queue", "pointer", "filled"):
        torch.testing.assert_close(queue0[name], queue1[name])
    firsts = queue0["queue"][:, 0].tolist()
    # step 0 wrote rows 0-3 (rank 0: 0, 1; rank 1: 1, 2); step 1 wrote rows 4, 5, 0, 1
    assert firsts == [11.0, 12.0, 1.0, 2.0, 10.0, 11.0]
    assert int(queue0["pointer"]) == 2 and int(queue0["filled"]) == 6

    assert all("same shape on every process" in r["unequal_error"] for r in ranks)
