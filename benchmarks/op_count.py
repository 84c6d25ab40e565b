"""Tensor operations per training step, BP against DeInfoReg, and the step time beside them.

On narrow dense blocks a CPU step is bound by per-operation dispatch, not by arithmetic
(``docs/results/overhead.md``), so the number of ATen operations a step runs predicts its
time better than its FLOPs (``benchmarks/flops.py``). This counts every operation dispatched in
one training step (forwards, local losses, backwards and optimiser steps) with a
``TorchDispatchMode``, and times the same step (median of 5 runs of 20 steps, after a warm-up)
for BP and DeInfoReg with their defaults, on two dense networks: the demo's (4 x Dense(256) on
64 features) and a deep narrow one (12 x Dense(128) on 784 features, random data).

DeInfoReg is measured under both schedules. "sequential": one batch through every block in
turn. "wavefront": one steady-state tick of ``engines/wavefront.py``, where every block trains
on its own batch at once and the same-shaped blocks run stacked: the same work as one
sequential step (every block steps once), counted on a tick between fill and drain, timed as
the median tick of the steady state.

Run:  python benchmarks/op_count.py   (about a minute; 1 torch thread, set here; run alone)
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.engines import wavefront
from deinforeg_sklearn.engines.base import step_units
from deinforeg_sklearn.training.stats import EpochStats

BATCH = 128
MODELS = {
    "4 x Dense(256), 64 features": ([Dense(256)] * 4, 64),
    "12 x Dense(128), 784 features": ([Dense(128)] * 12, 784),
}


class _CountOps(TorchDispatchMode):
    """Counts the ATen operations dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _network(cls, blocks, n_features: int):
    rng = np.random.RandomState(0)
    X = rng.rand(4 * BATCH, n_features).astype(np.float32)
    y = rng.randint(0, 10, 4 * BATCH)
    clf = cls(blocks=blocks, max_iter=1, batch_size=BATCH, random_state=0).fit(X, y)
    xb, yb = torch.tensor(X[:BATCH]), torch.tensor(y[:BATCH])
    clf.network_.train()
    return clf.network_, xb, yb


def _step(network, xb, yb) -> None:
    units = list(range(len(network.trainers)))
    step_units(network.trainers, units, xb, yb, None, 0, EpochStats(len(units)))


def measure(cls, blocks, n_features: int) -> tuple[int, float]:
    """ATen operations in one step, and the median seconds per step."""
    network, xb, yb = _network(cls, blocks, n_features)
    for _ in range(5):
        _step(network, xb, yb)
    with _CountOps() as counter:
        _step(network, xb, yb)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            _step(network, xb, yb)
        runs.append((time.perf_counter() - start) / 20)
    return sum(counter.counts.values()), statistics.median(runs)


def measure_wavefront(blocks, n_features: int, n_batches: int = 40) -> tuple[int, float]:
    """ATen operations in one steady-state wavefront tick, and the median seconds per tick."""
    rng = np.random.RandomState(0)
    X = rng.rand(n_batches * BATCH, n_features).astype(np.float32)
    y = rng.randint(0, 10, n_batches * BATCH)
    original = wavefront._tick
    ticks: list[float] = []
    counted: dict[str, int] = {}

    def tick(trainers, pending, *args):
        steady = all(item is not None for item in pending.values())
        if steady and not counted and len(ticks) > 3:
            with _CountOps() as counter:
                out = original(trainers, pending, *args)
            counted["ops"] = sum(counter.counts.values())
            return out
        start = time.perf_counter()
        out = original(trainers, pending, *args)
        if steady:
            ticks.append(time.perf_counter() - start)
        return out

    wavefront._tick = tick
    try:
        params = {"max_iter": 2, "batch_size": BATCH, "random_state": 0, "schedule": "wavefront"}
        DeInfoRegClassifier(blocks=blocks, **params).fit(X, y)
    finally:
        wavefront._tick = original
    return counted["ops"], statistics.median(ticks[len(ticks) // 4 :])


def main() -> None:
    torch.set_num_threads(1)
    print(f"one training step of {BATCH} rows, 1 torch thread")
    print("DeInfoReg: a sequential step; wavefront: a steady-state tick (every block steps once)")
    print(f"{'network':32s} {'method':10s} {'ops':>6s} {'ms':>7s} {'ops vs BP':>10s} {'time vs BP':>11s}")
    for name, (blocks, n_features) in MODELS.items():
        bp_ops, bp_s = measure(BackpropClassifier, blocks, n_features)
        rows = [("BP", bp_ops, bp_s), ("DeInfoReg", *measure(DeInfoRegClassifier, blocks, n_features))]
        rows.append(("wavefront", *measure_wavefront(blocks, n_features)))
        for method, ops, s in rows:
            print(f"{name:32s} {method:10s} {ops:6d} {1e3 * s:7.2f} {ops / bp_ops:9.2f}x {s / bp_s:10.2f}x")


if __name__ == "__main__":
    main()
