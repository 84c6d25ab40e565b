"""One training step of a DeInfoReg block on 2 gloo replicas and on one process (for test_replicas)."""

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from deinforeg_sklearn.training.decoupled import LocalBlock
from deinforeg_sklearn.training.replicas import (
    ReplicaGroup,
    reduce_gradients,
    replicas_active,
    shard,
    use_global_batch_norm,
)
from deinforeg_sklearn.training.step import LossConfig

ROWS = 64


class _Encoder(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, h, mask=None):
        return self.net(h)

    def features(self, h, mask=None):
        return h.flatten(1)


def block(kind: str) -> LocalBlock:
    """The same block in every process: BatchNorm in the encoder and in the projector."""
    torch.manual_seed(0)
    if kind == "conv":
        net, width = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()), 8 * 64
    else:
        net, width = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU()), 32
    projector = nn.Sequential(nn.Linear(width, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64))
    return LocalBlock(_Encoder(net), projector, nn.Linear(64, 10), LossConfig(10))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(ROWS, 1, 8, 8, generator=g), torch.randint(0, 10, (ROWS,), generator=g)


def _gradients(unit: LocalBlock, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, float]:
    _, loss, _, _ = unit.block_loss(x, y, None)
    loss.backward()
    reduce_gradients(list(unit.parameters()))
    return {n: p.grad.clone() for n, p in unit.named_parameters()}, loss.item()


def one_device_step(kind: str) -> tuple[dict, float]:
    """The same step on all rows in this process (its random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        return _gradients(block(kind), *batch())


def replica_step(rank: int, kind: str, store: str) -> None:
    """Replica ``rank`` of 2: its half of the batch; rank 0 saves the summed gradients."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        unit = block(kind)
        use_global_batch_norm([unit], on=True)
        x, y = batch()
        rows = shard(np.arange(ROWS), 2, rank)
        group = ReplicaGroup(dist.group.WORLD, 2, rank)
        group.set_batch(ROWS)
        with replicas_active(group):
            result = _gradients(unit, x[rows], y[rows])
        if rank == 0:
            torch.save(result, store + ".out")
    finally:
        dist.destroy_process_group()
