"""Schedules that drive a network's step trainers over the batches of an epoch.

``sequential``: one device, block after block. ``threads``: one thread per stage in this
process. ``processes``: one process per stage over torch.distributed.
"""

from __future__ import annotations

import os

import torch

from deinforeg_sklearn.engines.base import Engine
from deinforeg_sklearn.engines.placement import balance, check_placement, measure_block_costs, stage_units
from deinforeg_sklearn.engines.processes import Boundary, ProcessEngine
from deinforeg_sklearn.engines.sequential import SequentialEngine, evaluate_logits
from deinforeg_sklearn.engines.threads import ThreadEngine

__all__ = [
    "Boundary",
    "Engine",
    "ProcessEngine",
    "SequentialEngine",
    "ThreadEngine",
    "available_cores",
    "balance",
    "check_placement",
    "default_engine",
    "evaluate_logits",
    "measure_block_costs",
    "stage_units",
]


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_engine(devices: list[torch.device]) -> str:
    """The engine ``engine="auto"`` picks (measurements behind it: docs/pipeline.md).

    CUDA stages: threads, since kernels run outside the GIL, streams overlap on the device
    and activations move device to device without a trip through host memory. CPU stages:
    processes, since each stage's Python work (dozens of small operations per block step)
    then runs in parallel instead of taking turns on one GIL.
    """
    return "threads" if any(d.type == "cuda" for d in devices) else "processes"
