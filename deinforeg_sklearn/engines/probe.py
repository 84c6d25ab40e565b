"""Measurements on a probe batch, before a fit, that decide or question how it runs.

Why apart from ``engines/setup.py``: the placement balance, the choice between CPU stages and one
device, and the check that CPU replicas pay all time real steps of the fit's own units on its
first batch (on copies: ``placement.measure_block_costs``), then apply a rule of
``engines/choice.py``. This module holds the probes and the replicas' check; ``setup.py`` acts on
what they find.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.distributed as dist

from deinforeg_sklearn._frames import user_stacklevel
from deinforeg_sklearn.engines.base import prepare_batch
from deinforeg_sklearn.engines.choice import REPLICA_SYNC_S, cpu_replicas_seconds, cpu_threads_per_stage
from deinforeg_sklearn.engines.placement import balance, measure_block_costs, stage_units
from deinforeg_sklearn.engines.processes import launched_by_torchrun
from deinforeg_sklearn.training.plan import FitPlan
from deinforeg_sklearn.training.protocols import UnitNetwork
from deinforeg_sklearn.training.replicas import synchronisations_per_step


def probe_batch(
    network: UnitNetwork, plan: FitPlan, device: torch.device, rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The first training batch (or its first ``rows``) on ``device``, with the network moved
    there (for measurements)."""
    network.to(device)
    index = plan.train_idx[: rows or plan.batch_size]
    return prepare_batch(plan.X, plan.y, index, device, plan.mask_fn, None)


def unit_costs(
    network: UnitNetwork,
    devices: list[torch.device],
    plan: FitPlan,
    repeats: int = 3,
    rows: int | None = None,
) -> list[float]:
    """Seconds of one step of each unit on a probe batch, with the threads each stage will get.

    Each unit's step runs once to warm up, then ``repeats`` times timed. ``devices``: every
    process's device (the threads are shared among them); ``rows``: the probe batch's rows
    (default: a whole batch).
    """
    x, y, mask = probe_batch(network, plan, devices[0], rows)
    saved = torch.get_num_threads()
    threads = cpu_threads_per_stage(devices)
    if threads:
        torch.set_num_threads(threads)
    try:
        return measure_block_costs(network.trainers, x, y, mask, repeats)
    finally:
        torch.set_num_threads(saved)


def probes_cpu_replicas(grid: Sequence[Sequence[torch.device]]) -> bool:
    """Whether a probe checks that the replicas of ``grid`` (per stage, each replica's device)
    beat one device: CPU replicas that this fit launches itself (under torchrun or a process
    group the ranks are given)."""
    return (
        all(d.type == "cpu" for stage in grid for d in stage)
        and not dist.is_initialized()
        and not launched_by_torchrun()
    )


def warn_if_cpu_replicas_do_not_pay(
    network: UnitNetwork,
    grid: Sequence[Sequence[torch.device]],
    counts: Sequence[int] | None,
    plan: FitPlan,
) -> None:
    """Warn when CPU replicas are predicted slower than one device (:func:`cpu_replicas_seconds`).

    Why: on a few cores, replicas split the threads that one device would use and wait for each
    other several times per batch (4 x Dense(256) on 2 cores: 0.24x one replica's samples/s,
    docs/results/data_parallel.md). The user asked for replicas, perhaps to rehearse a
    multi-GPU layout, and they train the same model, so they run; but the user is told, with
    the predicted times, that ``devices="cpu"`` is the shorter fit.
    """
    replicas = len(grid[0])
    sequential = unit_costs(network, [torch.device("cpu")], plan, repeats=1)
    share = min(plan.batch_size, max(2, math.ceil(plan.batch_size / replicas)))  # BatchNorm needs 2
    everyone = [d for stage in grid for d in stage]
    costs = unit_costs(network, everyone, plan, repeats=1, rows=share)
    counts = list(counts) if counts is not None else balance(costs, len(grid))
    stages = stage_units(counts)
    syncs = [synchronisations_per_step([network.trainers[u].unit for u in units]) for units in stages]
    replicated, one_device = cpu_replicas_seconds(
        sequential, costs, syncs, counts, plan.n_batches, plan.epochs
    )
    if replicated < one_device:
        return
    threads = cpu_threads_per_stage(everyone) or 1
    budget = cpu_threads_per_stage([torch.device("cpu")])
    warnings.warn(
        f"devices asks for {replicas} data-parallel replicas on the CPU, but a probe step of "
        f"each block predicts {replicated:.1f} s with them against {one_device:.1f} s on one "
        f"device: every batch synchronises the replicas {max(syncs)} times (twice per BatchNorm "
        "layer, once per block for its loss, once for the gradients), about "
        f"{REPLICA_SYNC_S * 1e3:.1f} ms each between CPU processes, and each replica computes "
        f"with {threads} torch thread(s), one device with {budget}. The fit runs on the replicas "
        "as asked (they train the model of one device); devices='cpu' is the shorter fit. "
        "Replicas pay where each has its own GPU, or where a step computes for long against its "
        "synchronisations.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
