"""Choosing and building the engine of a multi-device (pipelined) DeInfoReg fit."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import torch
import torch.distributed as dist
from sklearn.base import clone

from deinforeg_sklearn.data.inputs import token_mask
from deinforeg_sklearn.engines import Engine, ProcessEngine, ThreadEngine, cpu_threads_per_stage
from deinforeg_sklearn.engines.launch import dumps, spawned_group
from deinforeg_sklearn.engines.processes import env_group, launched_by_torchrun


def pipeline_engine(
    estimator,  # a DeInfoRegClassifier
    network: torch.nn.Module,
    stages: list[list[int]],
    devices: list[torch.device],
    plan,  # FitPlan
    history: list[dict],
    kind: str,
) -> Engine:
    """The engine that trains ``network`` as a pipeline of ``stages`` on ``devices``.

    CPU stages share the thread budget: see :func:`~deinforeg_sklearn.engines.cpu_threads_per_stage`.
    """
    n = len(stages)
    cpu_threads = cpu_threads_per_stage(devices)
    if kind == "threads":
        return ThreadEngine(network.trainers, stages, devices, cpu_threads=cpu_threads)
    mask_steps = plan.X.shape[1] if plan.mask_fn is token_mask else None
    if dist.is_initialized():
        launcher = None  # the caller's own process group: this process is one rank of it
    elif launched_by_torchrun():
        launcher = env_group
    else:
        child = clone(estimator).set_params(verbose=0)
        # Ranks > 0 never read training batches from X; they evaluate the validation rows and
        # receive everything else from the previous stage. Augmentation runs on rank 0 only.
        child_plan = dataclasses.replace(plan, augment=None)
        payload = dumps((child, network, child_plan, list(history), stages, devices, mask_steps))
        payloads = dict.fromkeys(range(1, n), payload)
        launcher = functools.partial(spawned_group, n, payloads, run_stage_process, cpu_threads or 1)
    return ProcessEngine(network, stages, devices, mask_steps, launcher=launcher, cpu_threads=cpu_threads)


def run_stage_process(rank: int, payload: tuple) -> None:
    """Body of a spawned rank: the same epoch loop as rank 0, on its own stage."""
    estimator, network, plan, history, stages, devices, mask_steps = payload
    engine = ProcessEngine(network, stages, devices, mask_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank 0 reports warnings to the user
        with engine:
            estimator._train(network, engine, plan, history)
