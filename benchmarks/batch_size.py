"""Accuracy of BP, AL, SCPL and DeInfoReg across batch sizes (the paper's Tables 1-4).

Each (method, batch size, seed) is one fit: early stopping on a 10 % validation split of the
training data keeps the best epoch, DeInfoReg predicts with the block that scored best on
validation, and the test split is scored once at the end. Results: docs/results/batch_size_<task>.*

Quick (CI, digits, ~1.5 min):  python benchmarks/batch_size.py --quick
CPU (one task, < 30 min each): python benchmarks/batch_size.py --task fashion-vgg
                               python benchmarks/batch_size.py --task fashion-resnet
                               python benchmarks/batch_size.py --task vader-lstm  (after --fetch)
                               python benchmarks/batch_size.py --task vader-transformer  (64-256)
The same number of training steps at every batch size (epoch cap and patience scaled by
batch / smallest batch), to tell "larger batch" from "fewer steps under an epoch cap":
                               python benchmarks/batch_size.py --task fashion-resnet --equal-steps
Rerun one method and keep the others' rows of an earlier run (after a change to that method only):
                               python benchmarks/batch_size.py --task fashion-vgg --methods AL \\
                                   --keep-rows docs/results/batch_size_fashion-vgg.csv
Paper scale (GPU):             python benchmarks/batch_size.py --task cifar100-vgg --data-dir DATA \\
                                   --device cuda:0 --max-iter 200 --patience 20 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from experiment import AL_NOTE, METHODS, Budget, parser, run, setup
from paper_numbers import BATCH_SIZE_TABLES, PAPER_SETTING, table_batch_sizes
from report import grouped, mean_std, out_dir, read_csv, save_figure, table, write_csv, write_page


def step_budget(budget: Budget, batch_size: int, smallest: int) -> Budget:
    """``budget`` (set for the smallest batch) with its epochs scaled to the same number of steps.

    An epoch at batch b has 1/b as many steps, so the epoch cap and the patience grow by
    b / smallest: a method then gets as many updates at batch 512 as at batch 64.
    """
    scale = batch_size / smallest
    return Budget(
        math.ceil(budget.max_iter * scale), math.ceil(budget.patience * scale), budget.validation_fraction
    )


def kept_rows(path: str, rerun: list[str], batch_sizes: list[int], seeds: list[int]) -> list[dict]:
    """Rows of the methods not in ``rerun`` from an earlier CSV, each batch size and seed present."""
    rows = [r for r in read_csv(path) if r["method"] not in rerun]
    for method in dict.fromkeys(r["method"] for r in rows):
        have = {(r["batch_size"], r["seed"]) for r in rows if r["method"] == method}
        missing = sorted({(b, s) for b in batch_sizes for s in seeds} - have)
        if missing:
            raise SystemExit(
                f"{path} has no {method} rows for (batch size, seed) {missing}: rerun {method} too "
                "(add it to --methods), or give the batch sizes and seeds of that run"
            )
    return [r for r in rows if r["batch_size"] in batch_sizes and r["seed"] in seeds]


def main() -> None:
    p = parser(__doc__, default_task="fashion-vgg", quick_task="digits-conv", max_iter=12, patience=3)
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help="default: the paper table's (64-512; 64-256 for Transformers)",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument(
        "--keep-rows",
        metavar="CSV",
        default=None,
        help="run only --methods; the other methods' rows come from this earlier CSV of the same setting",
    )
    p.add_argument(
        "--equal-steps",
        action="store_true",
        help="scale the epoch cap and patience by batch / smallest batch (same steps at every size)",
    )
    args = p.parse_args()
    task, data, budget = setup(args)
    setting = PAPER_SETTING.get(task.name)
    paper_sizes = table_batch_sizes(setting)
    if args.batch_sizes is None:
        args.batch_sizes = [64, 256] if args.quick else list(paper_sizes)
    methods = [m for m in args.methods if not (m == "AL" and task.tokens)]
    kept = kept_rows(args.keep_rows, methods, args.batch_sizes, args.seeds) if args.keep_rows else []

    smallest = min(args.batch_sizes)
    budgets = {b: step_budget(budget, b, smallest) if args.equal_steps else budget for b in args.batch_sizes}
    rows = []
    for batch_size, cap in budgets.items():  # cap: this batch size's epoch cap and patience
        for method in methods:
            for seed in args.seeds:
                row = run(method, task, data, task.depth, seed, cap, args.device, batch_size=batch_size)
                row["batch_size"] = batch_size
                rows.append(row)
                print(
                    f"{method:<10} batch {batch_size:<4} seed {seed}: {row['test_accuracy']:.4f} "
                    f"({row['epochs_run']} epochs, {row['fit_seconds']} s)",
                    flush=True,
                )

    rerun = methods
    methods = [m for m in METHODS if m in methods or any(r["method"] == m for r in kept)]
    order = {(b, m): i for i, (b, m) in enumerate((b, m) for b in args.batch_sizes for m in methods)}
    rows = sorted(kept + rows, key=lambda r: order[(r["batch_size"], r["method"])])
    folder = out_dir(args.quick, args.out)
    stem = f"batch_size_{task.name}" + ("_equal_steps" if args.equal_steps else "")
    write_csv(folder / f"{stem}.csv", rows)
    by = grouped(rows, "method", "batch_size")
    paper = BATCH_SIZE_TABLES.get(setting, {})
    header = ["method", *[f"batch {b}" for b in args.batch_sizes]]
    ours = [
        [m, *[mean_std([r["test_accuracy"] for r in by[(m, b)]]) for b in args.batch_sizes]] for m in methods
    ]
    theirs = [
        [m, *[paper[m][paper_sizes.index(b)] if b in paper_sizes else "" for b in args.batch_sizes]]
        for m in methods
        if m in paper
    ]
    epochs = [
        [m, *[f"{np.mean([r['epochs_run'] for r in by[(m, b)]]):.1f}" for b in args.batch_sizes]]
        for m in methods
    ]
    cap_text = (
        "epoch cap / patience per batch size, the same steps at each: "
        + ", ".join(f"{b}: {budgets[b].max_iter} / {budgets[b].patience}" for b in args.batch_sizes)
        if args.equal_steps
        else f"cap {budget.max_iter}"
    )
    sections = [
        f"## Test accuracy (%), mean ± std over seeds {args.seeds}\n\n{table(header, ours)}",
        f"## The paper ({' / '.join(setting)}), for comparison\n\n{table(header, theirs)}" if paper else "",
        f"## Epochs run (early stopping on validation; {cap_text})\n\n{table(header, epochs)}",
    ]
    if kept:
        sections.append(
            f"Rerun here: {', '.join(rerun)}. The rows of {', '.join(m for m in methods if m not in rerun)} "
            f"come from an earlier run of the same setting ({args.keep_rows})."
        )
    if task.tokens:
        sections.append("AL is left out: ALClassifier does not read token ids.")
    elif "AL" in methods:
        sections.append(AL_NOTE)
    write_page(
        folder / f"{stem}.md",
        f"Accuracy across batch sizes: {task.name}",
        f"Task: {task.about}. Every choice (epoch, DeInfoReg's inference block) is made on a 10 % "
        "validation split of the training data; the test split is scored once.",
        sections,
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        acc = [np.mean([r["test_accuracy"] for r in by[(m, b)]]) * 100 for b in args.batch_sizes]
        err = [np.std([r["test_accuracy"] for r in by[(m, b)]]) * 100 for b in args.batch_sizes]
        ax.errorbar(args.batch_sizes, acc, yerr=err, marker="o", capsize=3, label=m)
    ax.set_xscale("log", base=2)
    ax.set_xticks(args.batch_sizes, [str(b) for b in args.batch_sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(task.name)
    ax.legend()
    save_figure(fig, folder / f"{stem}.png")


if __name__ == "__main__":
    main()
