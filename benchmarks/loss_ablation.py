"""DeInfoReg with each of the seven combinations of its local-loss terms (the paper's Table 9).

``loss_weights`` = (variance, invariance, covariance), each 1 or 0; the cross-entropy term
(alpha) stays on. Early stopping and the inference block are chosen on validation.
Results: docs/results/loss_ablation_<task>.*

Quick (CI, digits, ~1.5 min): python benchmarks/loss_ablation.py --quick
CPU (< 30 min):               python benchmarks/loss_ablation.py --task vader-lstm
                              python benchmarks/loss_ablation.py --task fashion-vgg
Paper scale:                  python benchmarks/loss_ablation.py --task cifar100-vgg --data-dir DATA \\
                                  --device cuda:0
"""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from experiment import parser, run, setup
from paper_numbers import LOSS_TERMS
from report import grouped, mean_std, out_dir, save_figure, table, write_csv, write_page

TERMS = ("variance", "invariance", "covariance")
COMBINATIONS = sorted(
    (c for c in itertools.product((1, 0), repeat=3) if any(c)), key=lambda c: (sum(c), [-v for v in c])
)


def name(weights: tuple[int, ...]) -> str:
    used = [t for t, w in zip(TERMS, weights, strict=True) if w]
    return "all three" if len(used) == 3 else " + ".join(used)


def main() -> None:
    p = parser(__doc__, default_task="vader-lstm", quick_task="digits-conv", max_iter=12, patience=3)
    args = p.parse_args()
    task, data, budget = setup(args)

    rows = []
    for weights in COMBINATIONS:
        for seed in args.seeds:
            row = run("DeInfoReg", task, data, task.depth, seed, budget, args.device, loss_weights=weights)
            row["loss_terms"] = name(weights)
            rows.append(row)
            print(f"{name(weights):<35} seed {seed}: {row['test_accuracy']:.4f}", flush=True)

    folder = out_dir(args.quick, args.out)
    stem = f"loss_ablation_{task.name}"
    write_csv(folder / f"{stem}.csv", rows)
    by = grouped(rows, "loss_terms")
    means = {name(w): np.mean([r["test_accuracy"] for r in by[(name(w),)]]) for w in COMBINATIONS}
    best = max(means, key=means.get)
    body = [
        [
            name(w),
            mean_std([r["test_accuracy"] for r in by[(name(w),)]]),
            f"{LOSS_TERMS[w][0]:.2f}",
            f"{LOSS_TERMS[w][1]:.2f}",
        ]
        for w in COMBINATIONS
    ]
    write_page(
        folder / f"{stem}.md",
        f"Local-loss terms: {task.name}",
        f"Task: {task.about}. DeInfoReg with loss_weights set to 1 for the terms used and 0 for the others.",
        [
            table(
                ["loss terms", f"ours (%), seeds {args.seeds}", "paper VGG CIFAR-100", "paper LSTM IMDB"],
                body,
            ),
            f"Best here: **{best}**; all three: {100 * means['all three']:.2f} %.",
        ],
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [name(w) for w in COMBINATIONS]
    ax.barh(
        labels,
        [means[n] * 100 for n in labels],
        xerr=[np.std([r["test_accuracy"] for r in by[(n,)]]) * 100 for n in labels],
        capsize=3,
    )
    low = min(means.values()) * 100
    ax.set_xlim(max(0.0, low - 5), 100 * max(means.values()) + 2)
    ax.set(xlabel="test accuracy (%)", title=f"{task.name}: local-loss terms")
    save_figure(fig, folder / f"{stem}.png")


if __name__ == "__main__":
    main()
