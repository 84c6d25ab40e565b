"""Grouping blocks into pipeline stages, balanced by the measured cost of a block step."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch

from deinforeg_sklearn.training.step import StepTrainer


def balance(costs: Sequence[float], n_stages: int) -> list[int]:
    """Blocks per stage: contiguous groups, each non-empty, minimising the costliest stage.

    A pipeline runs at the pace of its slowest stage, so the partition that minimises the
    maximum stage cost maximises throughput. Exact dynamic programme, O(n^2 k).
    """
    n = len(costs)
    if not 1 <= n_stages <= n:
        raise ValueError(f"Cannot split {n} blocks into {n_stages} stages.")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[k][i]: the smallest max-stage cost of the first i blocks in k stages
    best = [[inf] * (n + 1) for _ in range(n_stages + 1)]
    cut = [[0] * (n + 1) for _ in range(n_stages + 1)]
    best[0][0] = 0.0
    for k in range(1, n_stages + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                value = max(best[k - 1][j], prefix[i] - prefix[j])
                if value < best[k][i]:
                    best[k][i], cut[k][i] = value, j
    counts, i = [], n
    for k in range(n_stages, 0, -1):
        j = cut[k][i]
        counts.append(i - j)
        i = j
    return counts[::-1]


def check_placement(placement: Sequence[int], n_blocks: int, n_stages: int) -> list[int]:
    """Validate an explicit ``placement`` (blocks per stage)."""
    counts = list(placement)
    if (
        len(counts) != n_stages
        or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in counts)
        or sum(counts) != n_blocks
    ):
        raise ValueError(
            f"placement={list(placement)!r} must give a positive number of blocks for each of the "
            f"{n_stages} devices, adding up to the {n_blocks} blocks "
            f"(e.g. {balance([1.0] * n_blocks, n_stages)})."
        )
    return counts


def stage_units(counts: Sequence[int]) -> list[list[int]]:
    """Block indices of each stage from blocks-per-stage counts."""
    units, start = [], 0
    for c in counts:
        units.append(list(range(start, start + c)))
        start += c
    return units


def place_units(
    trainers: Sequence[StepTrainer], stages: Sequence[Sequence[int]], devices: Sequence[torch.device]
) -> None:
    """Move the units of each stage to that stage's device (modules and their parameters)."""
    for units, device in zip(stages, devices, strict=True):
        for u in units:
            trainers[u].unit.to(device)


def measure_block_costs(
    trainers: Sequence[StepTrainer],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    repeats: int = 3,
) -> list[float]:
    """Seconds of one whole step (forward, loss, backward, optimiser) of each block on a probe batch.

    The steps run on deep copies, inside a forked RNG, so that profiling changes neither the
    weights, the optimiser state, the schedule nor the random stream of the real fit.
    """
    copies = copy.deepcopy(list(trainers))
    costs = []
    with torch.random.fork_rng(devices=[]):
        h = x
        for trainer in copies:
            trainer.unit.train()
            out, _ = trainer.step(h, y, mask)  # warm-up (allocations, kernel selection)
            if _leading(out).is_cuda:  # time these steps' kernels, not the warm-up's
                torch.cuda.synchronize(_leading(out).device)
            start = time.perf_counter()
            for _ in range(repeats):
                out, _ = trainer.step(h, y, mask)
            if _leading(out).is_cuda:
                torch.cuda.synchronize(_leading(out).device)
            costs.append((time.perf_counter() - start) / repeats)
            h = out
    return costs


def _leading(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The tensor that says where a unit's output lives (AL's units hand on a pair)."""
    return out if isinstance(out, torch.Tensor) else out[0]
