"""Which engine runs a pipeline, and how many torch threads each CPU stage gets."""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_threads_per_stage(devices: list[torch.device]) -> int | None:
    """torch threads of each stage when every stage is on the CPU, else None.

    The caller's thread budget, ``min(cores, torch.get_num_threads())``, is shared evenly (at
    least 1 each): a caller that limited torch to 1 thread (a GridSearchCV worker, a test that
    needs exact sums) keeps 1 thread per stage rather than getting every core of the machine.
    """
    if all(d.type == "cpu" for d in devices):
        budget = min(available_cores(), torch.get_num_threads())
        return max(1, budget // len(devices))
    return None


#: On CPU stages, a stage step shorter than this (seconds, per batch) is dominated by many small
#: operations, whose Python work takes turns on the GIL in the thread engine.
SMALL_STEP_S = 0.02


def default_engine(devices: list[torch.device], stage_step_seconds: float | None = None) -> str:
    """The engine ``engine="auto"`` picks, from the devices and the measured stage step time.

    CUDA stages: threads. Kernels run outside the GIL, streams overlap on the device, and
    activations move device to device without a trip through host memory.

    CPU stages: processes when the costliest stage's step (on the probe batch) is shorter than
    ``SMALL_STEP_S``, threads otherwise. Measured on 2 cores, 2 stages (docs/pipeline.md):
    4 x Dense(256), ~3 ms per block step: processes 1.84x one stage, threads 1.42x (the stages'
    Python work takes turns on the GIL); reduced VGG, 40-125 ms per block step: threads 1.81x,
    processes 1.65x (the process engine copies every activation through gloo).
    """
    if any(d.type == "cuda" for d in devices):
        return "threads"
    if stage_step_seconds is not None and stage_step_seconds < SMALL_STEP_S:
        return "processes"
    return "threads"
