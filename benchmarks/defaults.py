"""The defaults study: candidates scored on validation, the chosen defaults judged once on test.

Sub-commands (rows are appended to CSV files, so an interrupted run resumes where it stopped):

    python benchmarks/defaults.py study  --sets digits fashion ... --seeds 0 1 2
    python benchmarks/defaults.py final  --seeds 0 1 2          # BP and DeInfoReg, defaults, test
    python benchmarks/defaults.py depth  --sets digits fashion --depths 2 4 8 12 16
    python benchmarks/defaults.py selection --sets digits fashion breast_cancer wine tabular
    python benchmarks/defaults.py report                         # docs/results/defaults.md + plot

``study`` fits DeInfoReg with each candidate of its block kind (projector x alpha, then learning
rate, schedule and early stopping) on the *train* split and scores every block's classifier on
the *validation* split; one fit gives all three ``inference`` modes (the inference mode does not
change training without early stopping). ``final`` and ``depth`` score on *test*, with the
package's defaults apart from ``blocks``: they are run once, after the choice. ``selection``
compares rules that pick ``inference="best"``'s block from the estimator's own validation split
(:data:`SELECTION_RULES`), scored on the study's validation split at several depths.

Threads: ``torch.set_num_threads(2)`` (the machine's 2 cores); run alone.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from dev_suite import SUITE, split

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier

RESULTS = Path(__file__).parent.parent / "docs" / "results"
STUDY_CSV = RESULTS / "defaults_study.csv"
FINAL_CSV = RESULTS / "defaults_final.csv"
DEPTH_CSV = RESULTS / "defaults_depth.csv"
SELECTION_CSV = RESULTS / "defaults_selection.csv"


#: The widths a projector candidate names, per block kind: the block's own feature width for
#: dense and sequence blocks; for conv blocks, whose flattened maps are thousands wide, 256.
#: Stage "width": how much lower (accuracy, mean over sets and seeds) a narrower projector may
#: score on validation than the full width and still be chosen for its speed.
WIDTH_TOLERANCE = 0.0025


def _width(kind: str, dev) -> int:
    spec = dev.blocks(1)[0]
    if kind == "dense":
        return spec.units
    if kind == "recurrent":
        return spec.hidden * (2 if spec.bidirectional else 1)
    if kind == "transformer":
        return spec.d_model
    return 256


def candidates(kind: str, dev, stage: str) -> list[dict]:
    """The study's candidates for one block kind (estimator parameters besides the data's).

    Stage "heads": projector (none, one or two hidden layers of the block's width) x alpha on
    dense blocks; on the slower conv and sequence blocks, the old defaults (identity, 1e-3),
    alpha = 1, and alpha = 1 with one hidden layer.
    Stage "width" (dense blocks, after the choice): the chosen defaults with a projector of the
    block's width, half of it and a quarter of it. Decided before it ran: the narrowest whose
    mean validation score (best block) over the dense sets and seeds is at most
    :data:`WIDTH_TOLERANCE` below the full width's becomes the dense blocks' default, for its
    speed (a quarter width cuts a Dense(256) block's matrix work about in half); otherwise the
    full width stays.
    Stage "training": learning rate, cosine schedule and early stopping, at the projector and
    alpha named by ``DEINFOREG_STUDY_HEADS`` (``projector=<hidden layers>;alpha=<...>``, the
    stage-one choice); on the slower kinds only the dense sets' winner. Stage "epochs": that
    winner with 20 and 30 epochs instead of 50.
    """
    w = _width(kind, dev)
    if stage == "width":
        if kind != "dense":
            return []
        schedule = {"alpha": 1.0, "learning_rate": 3e-3, "final_learning_rate": 0.0}
        return [{**schedule, "projector": (width,)} for width in (w, w // 2, w // 4)]
    if stage == "heads":
        reference = [{"method": "BP"}]  # BP's validation score, to read the gaps against
        if kind != "dense":  # slower fits: the old defaults, alpha = 1 alone, then with a projector
            # residual stages differ in width: their projector is the "auto" rule itself
            projector = "auto" if kind == "residual" else (w,)
            return reference + [
                {"projector": p, "alpha": a} for p, a in ((None, 1e-3), (None, 1.0), (projector, 1.0))
            ]
        projectors = (None, (w,), (w, w))
        return reference + [{"projector": p, "alpha": a} for p in projectors for a in (1e-3, 1e-2, 1e-1, 1.0)]
    chosen = _parse(os.environ["DEINFOREG_STUDY_HEADS"], w)
    if stage == "epochs":  # the dense winner with fewer epochs: what does half the fit time cost?
        return [
            {**chosen, "learning_rate": 3e-3, "final_learning_rate": 0.0, "max_iter": m} for m in (20, 30)
        ]
    if kind != "dense":  # the dense sets' winner, checked on the slower kinds
        return [{**chosen, "learning_rate": 3e-3, "final_learning_rate": 0.0}]
    return [
        {**chosen, "learning_rate": 3e-3},
        {**chosen, "final_learning_rate": 0.0},
        {**chosen, "learning_rate": 3e-3, "final_learning_rate": 0.0},
        {**chosen, "early_stopping": True},
    ]


#: Rules for ``inference="best"``: which block predicts, from each block's accuracy and mean
#: log-loss on the estimator's own validation split. "deeper" is the rule of the study's stages
#: above. Decided before the selection run: the rule with the highest mean accuracy on the
#: study's validation split (dense sets x seeds x depths 4, 8 and 12) replaces "deeper" if it
#: scores at least :data:`SELECTION_MARGIN` above it; otherwise "deeper" stays.
SELECTION_RULES = {
    # the highest accuracy; ties to the deeper block
    "deeper": lambda acc, loss: int(len(acc) - 1 - np.argmax(acc[::-1])),
    # the highest accuracy; ties to the shallower block
    "shallower": lambda acc, loss: int(np.argmax(acc)),
    # the highest accuracy; ties to the lower log-loss
    "tie_log_loss": lambda acc, loss: int(np.lexsort((loss, -acc))[0]),
    # the lowest log-loss
    "log_loss": lambda acc, loss: int(np.argmin(loss)),
}
SELECTION_MARGIN = 0.0025
SELECTION_DEPTHS = (4, 8, 12)


def _parse(text: str, w: int) -> dict:
    out: dict = {}
    for item in text.split(";"):
        key, value = item.split("=")
        if key == "projector":
            out[key] = None if value == "none" else tuple(w for _ in range(int(value)))
        else:
            out[key] = float(value)
    return out


def _block_accuracies(clf, X, y) -> list[float]:
    return [float(np.mean(clf.classes_[p.argmax(1)] == y)) for p in clf.staged_predict_proba(X)]


def _append(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    with path.open() as f:
        # a stage's rows are its own: a later stage may rerun a configuration on newer code
        return {(r["set"], r["seed"], r.get("stage", ""), r["config"]) for r in csv.DictReader(f)}


def _describe(params: dict) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"


def study(args) -> None:
    done = _done(STUDY_CSV)
    for name in args.sets:
        dev = SUITE[name]
        depth, max_iter = dev.depth, args.max_iter or dev.max_iter or 50
        for seed in args.seeds:
            X_tr, y_tr, X_va, y_va, _, _ = split(dev, seed)
            for params in candidates(dev.kind, dev, args.stage):
                config = _describe(params)
                if (name, str(seed), args.stage, config) in done:
                    continue
                cls = BackpropClassifier if params.get("method") == "BP" else DeInfoRegClassifier
                fit_params = {k: v for k, v in params.items() if k not in ("method", "max_iter")}
                epochs = params.get("max_iter", max_iter)
                clf = cls(
                    blocks=dev.blocks(depth),
                    random_state=seed,
                    max_iter=epochs,
                    **dev.params,
                    **fit_params,
                )
                start = time.perf_counter()
                clf.fit(X_tr, y_tr)
                seconds = time.perf_counter() - start
                blocks = _block_accuracies(clf, X_va, y_va)
                best = (
                    blocks[int(np.argmax(clf.block_scores_))] if clf.block_scores_ is not None else blocks[-1]
                )
                if cls is DeInfoRegClassifier:
                    clf.inference_ = "adaptive"
                adaptive = float(clf.score(X_va, y_va))
                row = {
                    "set": name,
                    "kind": dev.kind,
                    "seed": seed,
                    "stage": args.stage,
                    "config": config,
                    "val_last": blocks[-1],
                    "val_best": best,
                    "val_adaptive": adaptive,
                    "val_blocks": " ".join(f"{a:.4f}" for a in blocks),
                    "epochs": clf.n_iter_,
                    "depth": depth,
                    "max_iter": epochs,
                    "fit_s": round(seconds, 2),
                }
                _append(STUDY_CSV, row)
                print(row, flush=True)


def _inner_validation(clf, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of X and y that ``clf``'s fit held out as its own validation split.

    The estimator's rule (``data/split.py``, seeded as ``_fit`` seeds it), rebuilt here so that the
    benchmark can score them with other metrics; checked against ``block_scores_`` by the caller.
    """
    from sklearn.utils import check_random_state

    from deinforeg_sklearn.data.split import validation_split

    seed = int(check_random_state(clf.random_state).randint(np.iinfo(np.int32).max))
    _, val = validation_split(np.searchsorted(clf.classes_, y), clf.validation_fraction, seed)
    return X[val], y[val]


def _log_loss(probs: np.ndarray, rows: np.ndarray) -> float:
    """Mean negative log-probability of the true classes (``rows``: class indices)."""
    return float(-np.log(np.clip(probs[np.arange(len(rows)), rows], 1e-15, 1.0)).mean())


def selection(args) -> None:
    """Per-block scores of DeInfoReg (defaults) at several depths, for :data:`SELECTION_RULES`."""
    done = _done(SELECTION_CSV)
    for name in args.sets:
        dev = SUITE[name]
        if dev.kind != "dense":
            continue
        for seed in args.seeds:
            X_tr, y_tr, X_va, y_va, _, _ = split(dev, seed)
            for depth in args.depths:
                config = f"depth={depth}"
                if (name, str(seed), "selection", config) in done:
                    continue
                clf = DeInfoRegClassifier(blocks=dev.blocks(depth), random_state=seed, **dev.params)
                start = time.perf_counter()
                clf.fit(X_tr, y_tr)
                seconds = time.perf_counter() - start
                X_in, y_in = _inner_validation(clf, X_tr, y_tr)
                inner_acc = _block_accuracies(clf, X_in, y_in)
                if not np.allclose(inner_acc, clf.block_scores_):
                    raise RuntimeError("the rebuilt validation split is not the one the fit used")
                rows = np.searchsorted(clf.classes_, y_in)
                inner_loss = [_log_loss(p, rows) for p in clf.staged_predict_proba(X_in)]
                row = {
                    "set": name,
                    "kind": dev.kind,
                    "seed": seed,
                    "stage": "selection",
                    "config": config,
                    "depth": depth,
                    "inner_n": len(y_in),
                    "inner_acc": " ".join(f"{a:.4f}" for a in inner_acc),
                    "inner_loss": " ".join(f"{v:.5f}" for v in inner_loss),
                    "val_blocks": " ".join(f"{a:.4f}" for a in _block_accuracies(clf, X_va, y_va)),
                    "fit_s": round(seconds, 2),
                }
                _append(SELECTION_CSV, row)
                print(row, flush=True)


#: BP with DeInfoReg's learning-rate defaults: is the gap the method's, or the schedule's?
BP_WITH_DEINFOREG_SCHEDULE = {"learning_rate": 3e-3, "final_learning_rate": 0.0}


def _estimator(method: str, dev, depth: int, seed: int, max_iter: int | None):
    cls = DeInfoRegClassifier if method == "DeInfoReg" else BackpropClassifier
    max_iter = max_iter or dev.max_iter
    extra = {} if max_iter is None else {"max_iter": max_iter}
    if method == "BP_cosine":
        extra.update(BP_WITH_DEINFOREG_SCHEDULE)
    return cls(blocks=dev.blocks(depth), random_state=seed, **dev.params, **extra)


def final(
    args, path: Path = FINAL_CSV, depths: tuple[int, ...] = (), methods=("BP", "DeInfoReg", "BP_cosine")
) -> None:
    done = _done(path)
    for name in args.sets:
        dev = SUITE[name]
        for seed in args.seeds:
            X_tr, y_tr, _, _, X_te, y_te = split(dev, seed)
            for depth in depths or (dev.depth,):
                for method in methods:
                    config = f"{method} depth={depth}"
                    if (name, str(seed), "", config) in done:  # final and depth rows have no stage
                        continue
                    clf = _estimator(method, dev, depth, seed, args.max_iter)
                    start = time.perf_counter()
                    clf.fit(X_tr, y_tr)
                    seconds = time.perf_counter() - start
                    row = {
                        "set": name,
                        "kind": dev.kind,
                        "seed": seed,
                        "config": config,
                        "method": method,
                        "depth": depth,
                        "test": float(clf.score(X_te, y_te)),
                        "epochs": clf.n_iter_,
                        "fit_s": round(seconds, 2),
                        "resolved": _resolved(clf),
                    }
                    _append(path, row)
                    print(row, flush=True)


def _resolved(clf) -> str:
    if isinstance(clf, BackpropClassifier):
        return ""
    return f"projector_={clf.projector_[0]} inference_={clf.inference_} block={clf.inference_block_ + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["study", "final", "depth", "selection", "report"])
    parser.add_argument("--sets", nargs="+", default=list(SUITE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--stage", choices=["heads", "training", "epochs", "width"], default="heads")
    parser.add_argument("--depths", nargs="+", type=int, help="default: 2 to 16; selection: 4 8 12")
    parser.add_argument("--max-iter", type=int, default=None, help="epochs (default: the set's budget)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.command == "study":
        study(args)
    elif args.command == "final":
        final(args)
    elif args.command == "depth":
        final(args, DEPTH_CSV, tuple(args.depths or (2, 4, 8, 12, 16)), methods=("BP", "DeInfoReg"))
    elif args.command == "selection":
        args.depths = args.depths or list(SELECTION_DEPTHS)
        selection(args)
    else:
        from defaults_report import write_report

        write_report(STUDY_CSV, FINAL_CSV, DEPTH_CSV, RESULTS / "defaults.md", SELECTION_CSV, SELECTION_RULES)


if __name__ == "__main__":
    main()
