"""Where a wavefront fit's time goes: wall time per phase of its ticks, without a profiler.

Why a benchmark of its own: on small CPU kernels ``torch.profiler`` adds a cost per recorded
operation that is not small against the operations themselves (on one 2-core VM it reported
0.4 ms for a 49k-element multiply that takes 25 us alone), so its split between phases misleads.
This wraps the engine's phase functions in wall-clock timers instead (``time.perf_counter``
around each call; nothing inside a phase is instrumented) and fits the demo's model as the
README's user does: 4 x Dense(256) on the standardised digits training split, defaults
otherwise, validation on.

Phases (per call, and their share of the ticks' time):

* ``unstacked forward``: a block outside every stacked group (``StepTrainer.forward``:
  encoder, heads, local loss with its closed-form gradient, cross-entropy). Since a narrower
  first block joins the group with its input zero-padded (``training/stacked.py``), the demo's
  model has none, and the line reads 0;
* ``stacked forward`` of the same-shaped blocks, split into its layers and its batched local
  loss (``BatchedInfoRegularization``, which computes its gradient in the forward);
* ``backward``: the tick's one backward;
* ``optimiser steps``: every block's own step.

The phases do not add up to the ticks' time: the rest is a group's blocks run one by one in
fill and drain (and on the epoch's short last batch), stacking their inputs, and the stats.

Run:  python benchmarks/tick_phases.py [--threads 2] [--epochs 20]   (run alone; about 30 s)
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable
from typing import Any

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import deinforeg_sklearn.engines.wavefront as wavefront
import deinforeg_sklearn.training.stacked as stacked
import deinforeg_sklearn.training.step as step
from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

SECONDS: collections.defaultdict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter[str] = collections.Counter()
_OPEN: set[str] = set()  # phases being timed now: a nested call of the same phase is not counted again


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if name in _OPEN:  # e.g. a group's optimiser step that falls back to a block's own
            return fn(*args, **kwargs)
        _OPEN.add(name)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _OPEN.discard(name)
            SECONDS[name] += time.perf_counter() - start
            CALLS[name] += 1

    return wrapper


def _instrument() -> None:
    wavefront._tick = _timed("tick (all)", wavefront._tick)
    step.StepTrainer.forward = _timed("unstacked forward", step.StepTrainer.forward)
    step.StepTrainer.update = _timed("optimiser steps", step.StepTrainer.update)
    stacked.StackedGroup.update = _timed("optimiser steps", stacked.StackedGroup.update)
    stacked.StackedGroup.forward = _timed("stacked forward", stacked.StackedGroup.forward)
    stacked.StackedGroup._run = _timed("  its layers", stacked.StackedGroup._run)
    loss = stacked.BatchedInfoRegularization.apply
    stacked.BatchedInfoRegularization = type(
        "TimedLoss", (), {"apply": staticmethod(_timed("  its local loss", loss))}
    )
    torch.Tensor.backward = _timed("backward", torch.Tensor.backward)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    X_train = StandardScaler().fit_transform(X_train)
    model = dict(blocks=[Dense(256)] * 4, max_iter=args.epochs, random_state=0)
    DeInfoRegClassifier(**{**model, "max_iter": 1}).fit(X_train, y_train)  # the one-off start-up
    _instrument()
    start = time.perf_counter()
    DeInfoRegClassifier(**model).fit(X_train, y_train)
    fit = time.perf_counter() - start
    ticks = SECONDS["tick (all)"]
    print(f"4 x Dense(256), demo split, {args.epochs} epochs, {args.threads} threads: fit {fit:.2f} s")
    print(f"{'phase':<22}{'calls':>7}{'ms/call':>10}{'s':>8}{'of ticks':>10}")
    order = ["tick (all)", "unstacked forward", "stacked forward", "  its layers", "  its local loss"]
    order += ["backward", "optimiser steps"]
    for name in order:
        seconds = SECONDS[name]
        per_call = seconds / CALLS[name] * 1e3 if CALLS[name] else 0.0
        print(f"{name:<22}{CALLS[name]:>7}{per_call:>10.3f}{seconds:>8.3f}{seconds / ticks:>10.0%}")


if __name__ == "__main__":
    main()
