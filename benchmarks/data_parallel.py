"""Data-parallel replicas on the CPU: samples/s of 1 and 2 replicas, 1 torch thread each.

Rows, per model: one replica (``devices=None``, 1 thread) and two replicas of the one stage
(``devices=[["cpu", "cpu"]]``, two processes of 1 thread each, the batch split between them).
Throughput is steady state: training rows / median time of epochs 2..N (epoch 1 includes the
start of the replica processes; validation off). Both fits use the defaults otherwise.

"probe warned": whether the 2-replica fit warned that a probe predicts it slower than one
device (the caller runs 1 thread, so that one device has 1 thread too). The column "one
device, N threads" is what ``devices=None`` gets with all of torch's threads (N: a fresh
process's default), the fit a user of this machine would otherwise run.

The equality columns retrain each model for 2 epochs with ``optimizer="sgd"`` (see
tests/test_replicas.py for why not Adam) and give the largest relative gap of any state tensor:
between 2 replicas and one device, and, as the float32 floor of that model, between two
one-device fits that differ only in the order of the rows inside each batch (the same
arithmetic, summed in another order). Both use the sequential schedule on one device, as the
replicas do.

The last line measures what one synchronisation costs between two processes of 1 thread that
compute between their all-reduces (gloo, loopback): the floor under every replica step, which
synchronises twice per BatchNorm layer, once per unit for its loss and once for the gradients.

Models: the conv model of docs/pipeline.md (``reduced-vgg`` of benchmarks/models.py, batch 128,
3 x 32 x 32 random inputs) and 4 x Dense(256) on 14,336 rows of 64 features (as
benchmarks/cpu_stages.py). Run it alone: python benchmarks/data_parallel.py  (~4 min)
Spawned replica processes re-import this script, hence the __main__ guard.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from models import MODELS  # benchmarks/models.py (this script's folder is on sys.path)
from sklearn.datasets import make_classification

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

#: torch's threads in a fresh process (all cores): what a fit with devices=None gets by default
DEFAULT_THREADS = torch.get_num_threads()


def fit(blocks, X, y, devices, epochs, threads=1, **kw) -> tuple[DeInfoRegClassifier, float]:
    """One fit; ``threads`` 1: one replica on 1 thread, or replicas of 1 thread each."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    est = DeInfoRegClassifier(
        blocks=blocks, max_iter=epochs, validation_fraction=0, random_state=0, devices=devices, **kw
    ).fit(X, y)
    return est, time.perf_counter() - start


def replicas_fit(blocks, X, y, epochs, **kw) -> tuple[DeInfoRegClassifier, float, bool]:
    """Two replicas of 1 thread each, and whether the probe warned that they do not pay
    (against one device on the caller's 1 thread)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est, seconds = fit(blocks, X, y, [["cpu", "cpu"]], epochs, **kw)
    return est, seconds, any("data-parallel replicas on the CPU" in str(w.message) for w in caught)


def rate(est, n_rows: int) -> float:
    return n_rows / statistics.median(r["time"] for r in est.history_[1:])


def reversed_rows_fit(blocks, X, y, epochs, **kw) -> DeInfoRegClassifier:
    """One device, with the rows of every batch in reverse order: the same model, other sums."""
    import deinforeg_sklearn.engines.sequential as sequential

    real = sequential.prepare_batch
    sequential.prepare_batch = lambda X, y, index, *rest: real(X, y, index[::-1].copy(), *rest)
    try:
        return fit(blocks, X, y, None, epochs, **kw)[0]
    finally:
        sequential.prepare_batch = real


def _latency_rank(rank: int, path: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    t, a = torch.zeros(256), torch.randn(256, 256)
    comm = 0.0
    for _ in range(200):
        for _ in range(50):  # about 3 ms of work between two collectives, as in a conv step
            a @ a[:, :64]
        start = time.perf_counter()
        dist.all_reduce(t)
        comm += time.perf_counter() - start
    if rank == 0:
        with open(out, "w") as handle:
            handle.write(str(comm / 200))
    dist.destroy_process_group()


def collective_cost() -> float:
    """Seconds one all-reduce takes between 2 busy processes of 1 thread (gloo, loopback)."""
    import os
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "out")
        mp.spawn(_latency_rank, args=(os.path.join(folder, "store"), out), nprocs=2)
        with open(out) as handle:
            return float(handle.read())


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
        "conv (reduced VGG), batch 256": (conv_blocks, Xc, yc, dict(input_shape=(3, 32, 32), batch_size=256)),
        "4 x Dense(256), default batch_size": ([Dense(256)] * 4, Xd.astype(np.float32), yd, {}),
    }
    print(f"torch {torch.__version__}, 1 torch thread per process, {args.epochs} epochs")
    print(
        "| model | 1 replica samples/s | 2 replicas samples/s | scaling | fit s (1 / 2) "
        f"| probe warned | one device, {DEFAULT_THREADS} threads: samples/s "
        "| gap to one device (SGD) | floor: rows reordered |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (blocks, X, y, kw) in models.items():
        one, t1 = fit(blocks, X, y, None, args.epochs, **kw)
        two, t2, warned = replicas_fit(blocks, X, y, args.epochs, **kw)
        full = fit(blocks, X, y, None, args.epochs, threads=DEFAULT_THREADS, **kw)[0]
        r1, r2 = rate(one, len(X)), rate(two, len(X))
        sgd = dict(kw, optimizer="sgd", schedule="sequential")
        reference = fit(blocks, X, y, None, 2, **sgd)[0]
        gap = largest_gap(reference, fit(blocks, X, y, [["cpu", "cpu"]], 2, **sgd)[0])
        floor = largest_gap(reference, reversed_rows_fit(blocks, X, y, 2, **sgd))
        print(
            f"| {name} | {r1:.0f} | {r2:.0f} | {r2 / r1:.2f}x | {t1:.1f} / {t2:.1f} "
            f"| {'yes' if warned else 'no'} | {rate(full, len(X)):.0f} | {gap:.1e} | {floor:.1e} |"
        )
    print(f"one all-reduce between 2 busy 1-thread processes: {collective_cost() * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
