"""FLOP ratio, operation ratio and time ratio against BP, side by side, per schedule.

For each model this runs BP, DeInfoReg with ``schedule="sequential"`` and DeInfoReg with
``schedule="wavefront"`` (what ``"auto"`` picks for these models) in one process, and prints:

* the matrix FLOPs of a 1-epoch fit's training (``torch.utils.flop_counter``), against BP's;
* the ATen operations per batch of that epoch (a ``TorchDispatchMode``; fill and drain included);
* the fit time, from the call to ``fit`` to its return, default parameters apart from
  ``blocks`` and ``validation_fraction=None`` (median of 3, after one warm-up fit), against BP's;
* the excess: time ratio / FLOP ratio (1.0: DeInfoReg's extra work done at BP's efficiency).

Models: the three dense models of the wavefront issue (synthetic data of their shapes: the
digits, a 1,400 x 56 make_classification set, a 3,500 x 784 one), the README demo's
(4 x Dense(256) on digits, 50 epochs, StandardScaler) and the first conv model (1,024 random
3 x 32 x 32 images, 1 epoch), both as ``benchmarks/fit_time.py`` builds them.

Run:  python benchmarks/wavefront.py [--threads 2] [--models dense4 tabular dense12 demo conv]
(about 5 minutes at 2 threads; run it alone). Results: docs/results/wavefront.md.
On a GPU:  python benchmarks/wavefront.py --device cuda:0 --models dense12w dense12 conv
(``dense12w``, 12 x Dense(512) at batch 128, is the GPU target's model; samples/s = rows x
epochs / fit s).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from fit_time import FIRST_CONV_MODEL
from op_count import _CountOps
from sklearn.datasets import load_digits, make_classification
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.flop_counter import FlopCounterMode

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training.loop import FitLoop


def _digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _synthetic(n: int, d: int):
    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=min(d, 20), n_classes=4, random_state=0
    )
    return X.astype(np.float32), y


def _conv_data():
    rng = np.random.RandomState(0)
    return rng.rand(1024, 3 * 32 * 32).astype(np.float32), rng.randint(0, 10, 1024)


#: name: (blocks, data, epochs, extra parameters, scaler in front)
MODELS = {
    "dense4": ("4 x Dense(256), digits", [Dense(256)] * 4, _digits, 10, {}, False),
    "tabular": ("4 x Dense(128), 1,400 x 56", [Dense(128)] * 4, lambda: _synthetic(1400, 56), 10, {}, True),
    "dense12": (
        "12 x Dense(128), 3,500 x 784",
        [Dense(128)] * 12,
        lambda: _synthetic(3500, 784),
        3,
        {},
        False,
    ),
    "demo": ("demo: 4 x Dense(256), digits, 50 epochs", [Dense(256)] * 4, _digits, 50, {}, True),
    "conv": (
        "first conv model, 1,024 x 3x32x32",
        FIRST_CONV_MODEL,
        _conv_data,
        1,
        {"input_shape": (3, 32, 32)},
        False,
    ),
}


#: Where the fits run (``--device``); None: the CPU.
DEVICE: str | None = None


def _estimator(method: str, blocks, epochs: int, extra: dict, scaler: bool, validation: bool):
    params = {"blocks": blocks, "max_iter": epochs, "random_state": 0, "devices": DEVICE, **extra}
    if not validation:
        params["validation_fraction"] = None
    est = BackpropClassifier(**params) if method == "BP" else DeInfoRegClassifier(schedule=method, **params)
    return make_pipeline(StandardScaler(), est) if scaler else est


def _first_epoch_counts(est, X, y) -> tuple[int, int, int]:
    """Matrix FLOPs and ATen operations of the first epoch's training, and its batches."""
    original = FitLoop._epoch
    seen: dict = {}

    def counted(self, network, engine, plan, history, reporter):
        if seen:
            return original(self, network, engine, plan, history, reporter)
        with FlopCounterMode(display=False) as flops, _CountOps() as ops:
            out = original(self, network, engine, plan, history, reporter)
        seen.update(flops=flops.get_total_flops(), ops=sum(ops.counts.values()), batches=plan.n_batches)
        return out

    FitLoop._epoch = counted
    try:
        est.fit(X, y)
    finally:
        FitLoop._epoch = original
    return seen["flops"], seen["ops"], seen["batches"]


def _fit_seconds(make, X, y, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        est = make()
        start = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(key: str, repeats: int) -> list[tuple[str, float, float, float, float]]:
    """Per method: FLOPs, operations per batch, fit seconds, and the same against BP."""
    _, blocks, data, epochs, extra, scaler = MODELS[key]
    X, y = data()
    rows = {}
    for method in ("BP", "sequential", "wavefront"):
        count_est = _estimator(method, blocks, 1, extra, scaler, validation=False)
        flops, ops, batches = _first_epoch_counts(count_est, X, y)
        make = lambda m=method: _estimator(m, blocks, epochs, extra, scaler, validation=False)  # noqa: E731
        make().fit(X, y)  # warm-up: imports, first optimiser step, allocator
        rows[method] = (flops, ops / batches, _fit_seconds(make, X, y, repeats))
    bp = rows["BP"]
    return [(m, f, o, s, s / bp[2] / (f / bp[0])) for m, (f, o, s) in rows.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--models", nargs="+", default=["dense4", "tabular", "dense12", "demo", "conv"], choices=list(MODELS)
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="e.g. cuda:0 (default: the CPU)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}; fit time median of {args.repeats}, validation_fraction=None")
    columns = ("MFLOP", "xBP", "ops/batch", "xBP", "fit s", "xBP", "excess")
    header = f"{'model':42s} {'method':11s} " + " ".join(f"{c:>9s}" for c in columns)
    print(header)
    for key in args.models:
        rows = measure(key, args.repeats)
        bp_flops, bp_ops, bp_s = rows[0][1], rows[0][2], rows[0][3]
        for method, flops, ops, seconds, excess in rows:
            print(
                f"{MODELS[key][0]:42s} {method:11s} {flops / 1e6:9.1f} {flops / bp_flops:8.2f}x "
                f"{ops:9.0f} {ops / bp_ops:8.2f}x {seconds:9.3f} {seconds / bp_s:8.2f}x {excess:9.2f}"
            )


if __name__ == "__main__":
    main()
