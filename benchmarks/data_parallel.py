"""Data-parallel replicas on the CPU: samples/s of 1 and 2 replicas, 1 torch thread each.

Rows, per model: one replica (``devices=None``, 1 thread) and two replicas of the one stage
(``devices=[["cpu", "cpu"]]``, two processes of 1 thread each, the batch split between them).
Throughput is steady state: training rows / median time of epochs 2..N (epoch 1 includes the
start of the replica processes; validation off). Both fits use the defaults otherwise.

The equality column compares the two fits of each model retrained with ``optimizer="sgd"``
(see tests/test_replicas.py for why not Adam): the largest relative gap of any state tensor.

Models: the conv model of docs/pipeline.md (``reduced-vgg`` of benchmarks/models.py, batch 128,
3 x 32 x 32 random inputs) and 4 x Dense(256) on 14,336 rows of 64 features (as
benchmarks/cpu_stages.py). Run it alone: python benchmarks/data_parallel.py  (~4 min)
Spawned replica processes re-import this script, hence the __main__ guard.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from models import MODELS  # benchmarks/models.py (this script's folder is on sys.path)
from sklearn.datasets import make_classification

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense


def fit(blocks, X, y, devices, epochs, **kw) -> tuple[DeInfoRegClassifier, float]:
    torch.set_num_threads(1)  # one replica: 1 thread; two replicas: 1 thread in each process
    start = time.perf_counter()
    est = DeInfoRegClassifier(
        blocks=blocks, max_iter=epochs, validation_fraction=0, random_state=0, devices=devices, **kw
    ).fit(X, y)
    return est, time.perf_counter() - start


def rate(est, n_rows: int) -> float:
    return n_rows / statistics.median(r["time"] for r in est.history_[1:])


def largest_gap(a, b) -> float:
    sa, sb = a.network_.state_dict(), b.network_.state_dict()
    return max(
        float((sa[k] - sb[k]).norm() / sa[k].norm().clamp_min(1e-12)) for k in sa if sa[k].is_floating_point()
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--conv-rows", type=int, default=3072)
    parser.add_argument("--dense-rows", type=int, default=14336)
    args = parser.parse_args()

    rng = np.random.RandomState(0)
    conv_blocks, _ = MODELS["reduced-vgg"]
    Xc = rng.rand(args.conv_rows, 3 * 32 * 32).astype(np.float32)
    yc = rng.randint(0, 10, args.conv_rows)
    Xd, yd = make_classification(
        n_samples=args.dense_rows, n_features=64, n_informative=20, n_classes=4, random_state=0
    )
    models = {
        "conv (reduced VGG), batch 128": (conv_blocks, Xc, yc, dict(input_shape=(3, 32, 32), batch_size=128)),
        "4 x Dense(256), default batch_size": ([Dense(256)] * 4, Xd.astype(np.float32), yd, {}),
    }
    print(f"torch {torch.__version__}, 1 torch thread per process, {args.epochs} epochs")
    print("| model | 1 replica samples/s | 2 replicas samples/s | scaling | fit s (1 / 2) | equality (SGD) |")
    print("|---|---|---|---|---|---|")
    for name, (blocks, X, y, kw) in models.items():
        one, t1 = fit(blocks, X, y, None, args.epochs, **kw)
        two, t2 = fit(blocks, X, y, [["cpu", "cpu"]], args.epochs, **kw)
        r1, r2 = rate(one, len(X)), rate(two, len(X))
        sgd = dict(kw, optimizer="sgd")
        gap = largest_gap(
            fit(blocks, X, y, None, 2, **sgd)[0], fit(blocks, X, y, [["cpu", "cpu"]], 2, **sgd)[0]
        )
        print(f"| {name} | {r1:.0f} | {r2:.0f} | {r2 / r1:.2f}x | {t1:.1f} / {t2:.1f} | {gap:.1e} |")


if __name__ == "__main__":
    main()
