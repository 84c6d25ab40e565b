"""Matrix FLOPs of one training step, BP against DeInfoReg, on the demo's network.

Time on narrow dense blocks is mostly per-operation overhead, but the matrix products set a
floor under it: a fit cannot be faster than BP by more than their ratio at equal efficiency.
This counts them with ``torch.utils.flop_counter.FlopCounterMode`` over one batch of 128 rows
(forward, backward and every block's local loss) for BP, for DeInfoReg with its defaults, and
for DeInfoReg with the identity projector (the paper's text setting, the old default), and for
one steady-state tick of the wavefront schedule (every block steps once, all four stacked:
the same matrix work in batched kernels, plus the first block's zero-padded input columns,
64 -> 256, which its first layer multiplies like real ones).

Run:  python benchmarks/flops.py   (a few seconds; counts, not timings, so threads do not matter)
"""

from __future__ import annotations

import numpy as np
import torch
from fit_time import task
from torch.utils.flop_counter import FlopCounterMode

from deinforeg_sklearn.engines import wavefront
from deinforeg_sklearn.engines.base import step_units
from deinforeg_sklearn.training.stats import EpochStats

BATCH = 128


def step_flops(method: str, **params) -> int:
    """Matrix FLOPs of one training step of ``method`` on the demo's model and data."""
    estimator, X, y = task(method, "demo")
    estimator[-1].set_params(max_iter=1, **params)
    estimator.fit(X, y)  # builds the network on the demo's data
    clf = estimator[-1]
    xb = torch.tensor(estimator[0].transform(X[:BATCH]), dtype=torch.float32)
    yb = torch.tensor(np.searchsorted(clf.classes_, y[:BATCH]))
    network = clf.network_
    network.train()
    units = list(range(len(network.trainers)))
    with FlopCounterMode(display=False) as counter:
        step_units(network.trainers, units, xb, yb, None, 0, EpochStats(len(units)))
    return counter.get_total_flops()


def wavefront_tick_flops() -> int:
    """Matrix FLOPs of one steady-state wavefront tick of the demo's model (batch 128)."""
    estimator, X, y = task("DeInfoReg", "demo")
    estimator[-1].set_params(max_iter=1, schedule="wavefront", batch_size=BATCH, validation_fraction=None)
    original = wavefront._tick
    counted: list[int] = []

    def tick(trainers, pending, *args):
        if counted or not all(item is not None and len(item[1].y) == BATCH for item in pending.values()):
            return original(trainers, pending, *args)
        with FlopCounterMode(display=False) as counter:
            out = original(trainers, pending, *args)
        counted.append(counter.get_total_flops())
        return out

    wavefront._tick = tick
    try:
        estimator.fit(X, y)
    finally:
        wavefront._tick = original
    return counted[0]


def main() -> None:
    bp = step_flops("BP")
    rows = [
        ("BP", bp),
        ("DeInfoReg, defaults (one-layer projector)", step_flops("DeInfoReg")),
        ("DeInfoReg, identity projector", step_flops("DeInfoReg", projector=None)),
        ("DeInfoReg, defaults, a wavefront tick", wavefront_tick_flops()),
    ]
    print(f"4 x Dense(256) on digits, one step of {BATCH} rows: matrix MFLOP, and against BP")
    for name, flops in rows:
        print(f"  {name:45s} {flops / 1e6:8.1f}  {flops / bp:.2f}x")


if __name__ == "__main__":
    main()
