"""Fit time of explicit CPU stages against one device, as a user gets them.

The wavefront issue's pipeline target: ``devices=["cpu", "cpu"]`` must never be slower than
one device. This times, from the call to ``fit`` to its return, default parameters apart from
``blocks`` and ``max_iter``:

* one device (``devices=None``);
* ``devices=["cpu", "cpu"]`` with the default ``engine="auto"``, which runs the stages only
  when a probe predicts that they pay, and otherwise warns and trains on one device;
* the same stages forced with ``engine="threads"`` and ``engine="processes"`` (each stage
  trains its blocks as a wavefront where the schedule rule says so), and both again with
  ``schedule="sequential"`` (each stage's blocks in turn, as before stages ran wavefronts).

Model: 4 x Dense(256) on 14,336 rows of 64 features (``make_classification``), 3 epochs, the
issue's case. Each configuration is fitted ``--repeats`` times, round robin, after one warm-up fit
of the one-device model; the median is printed, with its ratio ``one device / configuration``
(above 1: faster than one device).

Run:  python benchmarks/cpu_stages.py [--threads 2] [--repeats 3]   (about 2 minutes; alone)
Spawned stage processes re-import this script, hence the __main__ guard.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import make_classification

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

CONFIGURATIONS = {
    "one device": {},
    'devices=["cpu", "cpu"] (engine="auto")': {"devices": ["cpu", "cpu"]},
    'devices=["cpu", "cpu"], engine="threads"': {"devices": ["cpu", "cpu"], "engine": "threads"},
    'devices=["cpu", "cpu"], engine="processes"': {"devices": ["cpu", "cpu"], "engine": "processes"},
    # the stages as they ran before each stage trained as a wavefront (its blocks in turn)
    '  the same, schedule="sequential"': {
        "devices": ["cpu", "cpu"],
        "engine": "processes",
        "schedule": "sequential",
    },
    'devices=["cpu", "cpu"], engine="threads", sequential': {
        "devices": ["cpu", "cpu"],
        "engine": "threads",
        "schedule": "sequential",
    },
}


def fit_seconds(X, y, epochs: int, **params) -> tuple[float, list, bool]:
    """Seconds from the call to ``fit`` to its return, the devices used, and whether it warned."""
    est = DeInfoRegClassifier(blocks=[Dense(256)] * 4, max_iter=epochs, random_state=0, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    merged = any("CPU stages" in str(w.message) for w in caught)
    return seconds, est.devices_, merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=14336)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y = make_classification(
        n_samples=args.rows, n_features=64, n_informative=20, n_classes=4, random_state=0
    )
    X = X.astype(np.float32)
    print(f"4 x Dense(256), {args.rows} x 64, {args.epochs} epochs, torch threads {args.threads}")
    fit_seconds(X, y, 1)  # warm-up
    # round robin, so that drift in the machine's speed falls on every configuration alike
    runs: dict[str, list] = {name: [] for name in CONFIGURATIONS}
    for _ in range(args.repeats):
        for name, params in CONFIGURATIONS.items():
            runs[name].append(fit_seconds(X, y, args.epochs, **params))
    baseline = statistics.median(r[0] for r in runs["one device"])
    print(f"{'configuration':<46}{'fit s':>8}{'one device / it':>17}  devices_")
    for name, results in runs.items():
        seconds = statistics.median(r[0] for r in results)
        devices, merged = results[-1][1], results[-1][2]
        note = " (warned: merged)" if merged else ""
        print(f"{name:<46}{seconds:>8.2f}{baseline / seconds:>17.2f}  {len(devices)} stage(s){note}")


if __name__ == "__main__":
    main()
