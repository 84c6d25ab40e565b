"""BP vs DeInfoReg when a fraction of the training labels is wrong (the paper's Table 6).

A fraction theta of the training rows gets a label drawn uniformly from all classes (symmetric
noise, drawn per seed; a drawn label can equal the true one, so with K classes a fraction
theta * (K - 1) / K of the labels ends up wrong, and the true class stays the most frequent label
of its rows for every theta < 1). The validation split that early stopping uses comes from the
same noisy training data, as it would in practice; the test labels stay clean.
Results: docs/results/noisy_labels_<task>.*

Quick (CI, digits, ~1 min): python benchmarks/noisy_labels.py --quick
CPU (< 30 min):             python benchmarks/noisy_labels.py --task vader-lstm
Paper scale:                python benchmarks/noisy_labels.py --task imdb-lstm --data-dir DATA --device cuda:0
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from experiment import parser, run, setup
from paper_numbers import NOISE
from report import grouped, mean_std, out_dir, save_figure, table, write_csv, write_page

METHODS = ("BP", "DeInfoReg")


def corrupt(y: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """``y`` with round(ratio * n) rows relabelled uniformly at random among all classes."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    noisy = y.copy()
    rows = rng.choice(len(y), size=round(ratio * len(y)), replace=False)
    noisy[rows] = rng.choice(classes, size=len(rows))
    return noisy


def main() -> None:
    p = parser(__doc__, default_task="vader-lstm", quick_task="digits-conv", max_iter=12, patience=3)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8])
    args = p.parse_args()
    task, (X, y, X_test, y_test), budget = setup(args)
    if args.quick:
        args.ratios = [0.0, 0.4, 0.8]

    rows = []
    for ratio in args.ratios:
        for method in METHODS:
            for seed in args.seeds:
                data = (X, corrupt(y, ratio, seed), X_test, y_test)
                row = run(method, task, data, task.depth, seed, budget, args.device)
                row["noise"] = ratio
                rows.append(row)
                print(f"{method:<10} noise {ratio:.1f} seed {seed}: {row['test_accuracy']:.4f}", flush=True)

    folder = out_dir(args.quick, args.out)
    stem = f"noisy_labels_{task.name}"
    write_csv(folder / f"{stem}.csv", rows)
    by = grouped(rows, "method", "noise")
    header = ["method", *[f"θ = {r}" for r in args.ratios]]
    ours = [[m, *[mean_std([r["test_accuracy"] for r in by[(m, t)]]) for t in args.ratios]] for m in METHODS]
    gap = [
        np.mean([r["test_accuracy"] for r in by[("DeInfoReg", t)]])
        - np.mean([r["test_accuracy"] for r in by[("BP", t)]])
        for t in args.ratios
    ]
    ours.append(["DeInfoReg - BP", *[f"{100 * g:+.2f}" for g in gap]])
    paper = [[m, *[NOISE[t][i] if t in NOISE else "" for t in args.ratios]] for i, m in enumerate(METHODS)]
    paper.append(
        ["DeInfoReg - BP", *[f"{NOISE[t][1] - NOISE[t][0]:+.2f}" if t in NOISE else "" for t in args.ratios]]
    )
    write_page(
        folder / f"{stem}.md",
        f"Noisy labels: {task.name}",
        f"Task: {task.about}. A fraction θ of the training rows is relabelled uniformly at random "
        "(so θ(K-1)/K of the labels are wrong); clean test labels. "
        "Epochs chosen on a (noisy) 10 % validation split.",
        [
            f"## Test accuracy (%), mean ± std over seeds {args.seeds}\n\n{table(header, ours)}",
            f"## The paper (Table 6: IMDB, LSTM)\n\n{table(header, paper)}",
        ],
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in METHODS:
        ax.errorbar(
            args.ratios,
            [np.mean([r["test_accuracy"] for r in by[(m, t)]]) * 100 for t in args.ratios],
            yerr=[np.std([r["test_accuracy"] for r in by[(m, t)]]) * 100 for t in args.ratios],
            marker="o",
            capsize=3,
            label=m,
        )
    ax.set(xlabel="noisy label ratio θ", ylabel="test accuracy (%)", title=task.name)
    ax.legend()
    save_figure(fig, folder / f"{stem}.png")


if __name__ == "__main__":
    main()
