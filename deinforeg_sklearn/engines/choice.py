"""Which engine runs a pipeline, and how many torch threads each CPU stage gets."""

from __future__ import annotations

import os
from collections.abc import Sequence

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


def auto_devices(n_blocks: int) -> list[torch.device]:
    """The stages ``devices="auto"`` may use, before measuring whether a CPU pipeline pays.

    One stage per visible GPU, up to the number of blocks. Without CUDA: one CPU stage per
    core of the caller's thread budget (``min(cores, torch.get_num_threads())``), up to the
    number of blocks; one device when that is 1.
    """
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return [torch.device("cuda", i) for i in range(min(torch.cuda.device_count(), n_blocks))]
    budget = min(available_cores(), torch.get_num_threads())
    return [torch.device("cpu")] * max(1, min(budget, n_blocks))


#: What a CPU pipeline costs beyond one device, once per fit (seconds, 2 cores, 2 stages, in
#: docs/results/startup.md): stage processes import torch, receive the network, and their first
#: optimiser step imports torch._dynamo; threads only start.
PIPELINE_START_S = {"threads": 0.1, "processes": 3.0}

#: ... and per batch (seconds): handing a batch to the next stage (gloo through host memory for
#: processes, a queue and the GIL for threads) and waiting on neighbours. Measured on 2 cores,
#: 2 stages, batch 128, digits: 4 x Dense(64) (slowest stage 2.5 ms) 3.8-6 ms per batch and
#: 4 x Dense(256) (3.8 ms) 5.9 ms under processes, 5.8 ms under threads.
PIPELINE_BATCH_S = {"threads": 0.002, "processes": 0.0025}


#: The pipeline must predict a fit at least this much shorter (the probe's timings are noisy).
PIPELINE_MARGIN = 0.9


def cpu_pipeline_seconds(
    sequential: Sequence[float],
    stage_costs: Sequence[float],
    counts: Sequence[int],
    batches: int,
    epochs: int,
) -> tuple[float, float, str]:
    """Predicted seconds of a fit on CPU stages and on one device, and the stages' engine.

    Parameters
    ----------
    sequential : sequence of float
        Seconds of each unit's step on one device with the whole thread budget.
    stage_costs : sequence of float
        The same with the threads each stage would get.
    counts : sequence of int
        Units per stage (given, or balanced on ``stage_costs``).
    batches : int
        Batches per epoch.
    epochs : int
        Epochs the fit will run at most.

    The rule: one device takes ``batches x epochs x sum(sequential)``. The pipeline takes
    ``batches x epochs x (slowest stage + PIPELINE_BATCH_S)``, plus, every epoch, the time to
    fill and drain its stages (``(stages - 1) x slowest stage``: the stages meet at each epoch's
    end), plus ``PIPELINE_START_S``, for the engine ``engine="auto"`` would pick. One device is
    predicted from its sequential steps, so the prediction favours the pipeline wherever the
    wavefront step (``engines/wavefront.py``) beats them.
    """
    slowest, start = 0.0, 0
    for count in counts:
        slowest = max(slowest, sum(stage_costs[start : start + count]))
        start += count
    kind = default_engine([torch.device("cpu")] * len(counts), slowest)
    one_device = sum(sequential) * batches * epochs
    fill = (len(counts) - 1) * slowest
    piped = ((slowest + PIPELINE_BATCH_S[kind]) * batches + fill) * epochs + PIPELINE_START_S[kind]
    return piped, one_device, kind


def cpu_pipeline_pays(
    sequential: Sequence[float],
    stage_costs: Sequence[float],
    counts: Sequence[int],
    batches: int,
    epochs: int,
) -> tuple[bool, str]:
    """Whether CPU stages beat one device over a whole fit, and the engine they would use.

    The stages are chosen when :func:`cpu_pipeline_seconds` (same parameters) predicts a fit
    shorter than ``PIPELINE_MARGIN`` times one device's.
    """
    piped, one_device, kind = cpu_pipeline_seconds(sequential, stage_costs, counts, batches, epochs)
    return piped < PIPELINE_MARGIN * one_device, kind


#: One synchronisation of CPU replicas (seconds): an all-reduce between two processes of 1
#: thread that compute between their collectives, gloo over loopback, 2 cores: 1.5 ms
#: (docs/results/data_parallel.md; 0.6 ms between idle processes: each also waits for the
#: other's step).
REPLICA_SYNC_S = 0.0015


def cpu_replicas_seconds(
    sequential: Sequence[float],
    replica_costs: Sequence[float],
    syncs: Sequence[int],
    counts: Sequence[int],
    batches: int,
    epochs: int,
) -> tuple[float, float]:
    """Predicted seconds of a fit on CPU data-parallel replicas, and on one device.

    Parameters
    ----------
    sequential : sequence of float
        Seconds of each unit's step on one device with the whole thread budget, on a batch.
    replica_costs : sequence of float
        The same on one replica's share of a batch, with the threads each replica gets.
    syncs : sequence of int
        Per stage, the synchronisations of its replicas in one step
        (:func:`~deinforeg_sklearn.training.replicas.synchronisations_per_step`).
    counts : sequence of int
        Units per stage.
    batches, epochs : int
        Batches per epoch, and the epochs the fit will run at most.

    The rule: one device takes ``batches x epochs x sum(sequential)``. Each stage of replicas
    takes, per batch, its units' steps on a share plus ``syncs x REPLICA_SYNC_S``; the stages
    run as processes, so several of them add the pipeline's hand-over per batch and its fill
    per epoch (as :func:`cpu_pipeline_seconds`), and the processes' start-up once.
    """
    slowest, start = 0.0, 0
    for count, n_syncs in zip(counts, syncs, strict=True):
        step = sum(replica_costs[start : start + count]) + n_syncs * REPLICA_SYNC_S
        slowest = max(slowest, step)
        start += count
    one_device = sum(sequential) * batches * epochs
    per_batch = slowest + (PIPELINE_BATCH_S["processes"] if len(counts) > 1 else 0.0)
    fill = (len(counts) - 1) * slowest
    replicated = (per_batch * batches + fill) * epochs + PIPELINE_START_S["processes"]
    return replicated, one_device
