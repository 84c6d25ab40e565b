"""The weight alpha of the cross-entropy term, chosen by GridSearchCV (the paper's Table 10).

For each seed, ``GridSearchCV`` fits DeInfoReg with every alpha on the training rows minus a
validation fold (``PredefinedSplit``, 20 % of the training data) and scores it on that fold; the
best alpha is refit on all training rows and the test split is scored once. The table reports each
alpha's validation accuracy (the selection criterion), how often each alpha was chosen, and the
chosen models' test accuracy. Results: docs/results/alpha_<task>.*

Quick (CI, digits, ~1.5 min): python benchmarks/alpha.py --quick
CPU (< 30 min):               python benchmarks/alpha.py --task fashion-vgg
Paper scale:                  python benchmarks/alpha.py --task cifar100-vgg --data-dir DATA --device cuda:0
"""

from __future__ import annotations

from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from experiment import make_estimator, parser, setup
from paper_numbers import ALPHA
from report import mean_std, out_dir, save_figure, table, write_csv, write_page
from sklearn.model_selection import GridSearchCV, PredefinedSplit, train_test_split

ALPHAS = [1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5]


def main() -> None:
    p = parser(__doc__, default_task="fashion-vgg", quick_task="digits-conv", max_iter=12, patience=3)
    p.add_argument("--alphas", type=float, nargs="+", default=ALPHAS)
    p.add_argument(
        "--n-jobs", type=int, default=1, help="GridSearchCV workers (threads are split between them)"
    )
    args = p.parse_args()
    task, (X, y, X_test, y_test), budget = setup(args)

    rows, chosen, test_scores = [], [], []
    for seed in args.seeds:
        fold = np.zeros(len(y), dtype=int)
        train_part, _ = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y)
        fold[train_part] = -1  # -1: always in training; 0: the validation fold
        search = GridSearchCV(
            make_estimator("DeInfoReg", task, task.depth, seed, budget, args.device),
            {"alpha": args.alphas},
            cv=PredefinedSplit(fold),
            n_jobs=args.n_jobs,
        ).fit(X, y)
        best = search.best_params_["alpha"]
        score = search.score(X_test, y_test)
        chosen.append(best)
        test_scores.append(score)
        for alpha, val in zip(
            search.cv_results_["param_alpha"], search.cv_results_["mean_test_score"], strict=True
        ):
            rows.append(
                {
                    "seed": seed,
                    "alpha": float(alpha),
                    "validation_accuracy": float(val),
                    "chosen": alpha == best,
                }
            )
        rows.append({"seed": seed, "alpha": best, "test_accuracy_of_chosen": score})
        print(f"seed {seed}: chose alpha={best:g}, test accuracy {score:.4f}", flush=True)

    folder = out_dir(args.quick, args.out)
    stem = f"alpha_{task.name}"
    write_csv(folder / f"{stem}.csv", rows)
    counts = Counter(chosen)
    val = {
        a: [r["validation_accuracy"] for r in rows if r.get("alpha") == a and "validation_accuracy" in r]
        for a in args.alphas
    }
    body = [
        [f"{a:g}", mean_std(val[a]), counts.get(a, 0), f"{ALPHA[a]:.2f}" if a in ALPHA else ""]
        for a in args.alphas
    ]
    best_val = max(args.alphas, key=lambda a: np.mean(val[a]))
    write_page(
        folder / f"{stem}.md",
        f"Alpha by GridSearchCV: {task.name}",
        f"Task: {task.about}. GridSearchCV over alpha with a predefined 20 % validation fold of the "
        "training data; the chosen alpha is refit on all training rows and scored once on the test split.",
        [
            table(
                [
                    "alpha",
                    f"validation accuracy (%), seeds {args.seeds}",
                    "times chosen",
                    "paper (Table 10, test %)",
                ],
                body,
            ),
            f"Highest mean validation accuracy: alpha = **{best_val:g}**. Test accuracy of the chosen "
            f"models: {mean_std(test_scores)} % (alphas chosen: {', '.join(f'{a:g}' for a in chosen)}).",
        ],
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(
        args.alphas,
        [np.mean(val[a]) * 100 for a in args.alphas],
        yerr=[np.std(val[a]) * 100 for a in args.alphas],
        marker="o",
        capsize=3,
        label="ours (validation)",
    )
    ax.plot(
        list(ALPHA), list(ALPHA.values()), marker="s", linestyle="--", label="paper (CIFAR-100 VGG, test)"
    )
    ax.set(xscale="log", xlabel="alpha", ylabel="accuracy (%)", title=f"{task.name}: alpha")
    ax.legend()
    save_figure(fig, folder / f"{stem}.png")


if __name__ == "__main__":
    main()
