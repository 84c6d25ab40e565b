"""Blocks that fail on purpose, importable by spawned stage processes."""

import os
import signal

from torch import nn


class FailOnBatch(nn.Module):
    """Linear layer that raises (or kills its own process) on its ``k``-th training batch.

    ``rank``: fail in that spawned rank only, read from the variable every spawned rank has (the
    caller's process, rank 0, has none), so data-parallel replicas of one block can fail one at
    a time; None: wherever the block trains.
    """

    def __init__(self, width: int, k: int, kill: bool = False, rank: int | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.k, self.kill, self.rank, self.calls = k, kill, rank, 0

    def forward(self, x):
        here = self.rank is None or os.environ.get("DEINFOREG_STAGE_RANK") == str(self.rank)
        if self.training and here:
            self.calls += 1
            if self.calls == self.k:
                if self.kill:
                    os.kill(os.getpid(), signal.SIGKILL)
                where = "" if self.rank is None else f" in rank {self.rank}"
                raise RuntimeError(f"boom{where} on training batch {self.k}")
        return self.linear(x)


def raise_on_third(shape):
    return FailOnBatch(shape[0], 3)


def killed_on_third(shape):
    return FailOnBatch(shape[0], 3, kill=True)


def wait_for_peers(rank, payload):
    """A spawned rank that only waits for the others (used to test start-up failures)."""
    import torch.distributed as dist

    dist.barrier()


def stage_processes():
    """Stage processes this process started that still exist, zombies included (Linux /proc).

    A stage process runs ``python -m deinforeg_sklearn.engines.stage_main``; one that ended
    but was never reaped is a zombie child of ours, whose command line is empty.
    """
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue  # gone meanwhile
        state, parent = fields[0], int(fields[1])
        if parent == me and (b"deinforeg_sklearn.engines.stage_main" in command or state == "Z"):
            found.append(int(entry))
    return found


def dropout_block(shape):
    """A dense block that draws a dropout mask on every training batch."""
    import math

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 24), nn.ReLU(), nn.Dropout(0.3))


def raise_in_rank_1(shape):
    return FailOnBatch(shape[0], 3, rank=1)


def killed_in_rank_1(shape):
    return FailOnBatch(shape[0], 3, kill=True, rank=1)
