"""BP vs DeInfoReg from 4 to 14 blocks, and encoder gradients per block (Table 5, Figure 3).

Each depth L stacks L identical LSTM blocks. Accuracy: early stopping on validation, test scored
once. Gradients: the mean absolute gradient of each block's encoder parameters, averaged over the
training steps of each epoch (``record_gradients=True``), for the ``--gradient-depth`` network; the
figure shows the first epoch and the mean over all epochs, per block, for both methods.
Results: docs/results/depth_<task>.*

Quick (CI, digits as 8-step sequences, ~1.5 min): python benchmarks/depth.py --quick
CPU (< 30 min):  python benchmarks/depth.py --task vader-lstm --depths 4 8 14
Paper scale:     python benchmarks/depth.py --task agnews-lstm --data-dir DATA --device cuda:0 \\
                     --depths 4 6 8 10 12 14 --gradient-depth 10 --max-iter 50 --patience 5
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from experiment import parser, run, setup
from paper_numbers import DEPTH
from report import grouped, mean_std, out_dir, save_figure, table, write_csv, write_page

METHODS = ("BP", "DeInfoReg")


def main() -> None:
    p = parser(__doc__, default_task="vader-lstm", quick_task="digits-lstm", max_iter=15, patience=3)
    p.add_argument(
        "--depths", type=int, nargs="+", default=None, help="default 4 8 14 (paper: 4 6 8 10 12 14)"
    )
    p.add_argument("--gradient-depth", type=int, default=None, help="default: the largest depth <= 10")
    args = p.parse_args()
    if args.depths is None:
        # the CPU default keeps 3 depths to stay under 30 minutes on 2 cores
        args.depths = [4, 10] if args.quick else [4, 8, 14]
    grad_depth = args.gradient_depth or max([d for d in args.depths if d <= 10] or args.depths[:1])
    task, data, budget = setup(args)

    rows, gradients = [], {m: [] for m in METHODS}
    for depth in args.depths:
        for method in METHODS:
            for seed in args.seeds:
                record = depth == grad_depth
                row = run(method, task, data, depth, seed, budget, args.device, record_gradients=record)
                if record:
                    history = row["estimator"].history_
                    per_epoch = np.array([r["encoder_gradients"] for r in history])  # epochs x blocks
                    gradients[method].append(per_epoch)
                rows.append(row)
                print(f"{method:<10} depth {depth:<3} seed {seed}: {row['test_accuracy']:.4f}", flush=True)

    folder = out_dir(args.quick, args.out)
    stem = f"depth_{task.name}"
    write_csv(folder / f"{stem}.csv", rows)
    by = grouped(rows, "method", "depth")
    header = ["method", *[f"L = {d}" for d in args.depths]]
    ours = [[m, *[mean_std([r["test_accuracy"] for r in by[(m, d)]]) for d in args.depths]] for m in METHODS]
    paper = [[m, *[DEPTH[d][i] if d in DEPTH else "" for d in args.depths]] for i, m in enumerate(METHODS)]
    first = {m: np.mean([g[0] for g in gradients[m]], axis=0) for m in METHODS}
    overall = {m: np.mean([g.mean(axis=0) for g in gradients[m]], axis=0) for m in METHODS}
    grad_rows = [
        [f"block {b + 1}", *[f"{first[m][b]:.2e} / {overall[m][b]:.2e}" for m in METHODS]]
        for b in range(grad_depth)
    ]
    ratio = {m: overall[m][0] / overall[m][-1] for m in METHODS}
    write_csv(
        folder / f"{stem}_gradients.csv",
        [
            {"method": m, "block": b + 1, "first_epoch": first[m][b], "all_epochs": overall[m][b]}
            for m in METHODS
            for b in range(grad_depth)
        ],
    )
    write_page(
        folder / f"{stem}.md",
        f"Depth and encoder gradients: {task.name}",
        f"Task: {task.about}; L identical blocks. Epochs chosen on a 10 % validation split.",
        [
            f"## Test accuracy (%), mean ± std over seeds {args.seeds}\n\n{table(header, ours)}",
            f"## The paper (Table 5: AG News, LSTM)\n\n{table(header, paper)}",
            f"## Mean |gradient| of each encoder, L = {grad_depth} (first epoch / mean over epochs)\n\n"
            + table(["block (1 = input side)", *METHODS], grad_rows)
            + "\n\nBlock 1 / block L gradient ratio (mean over epochs): "
            + ", ".join(f"{m} {ratio[m]:.3g}" for m in METHODS)
            + ". Figure: "
            + f"`{stem}.png`.",
        ],
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, m in enumerate(METHODS):
        colour = f"C{i}"
        axes[0].errorbar(
            args.depths,
            [np.mean([r["test_accuracy"] for r in by[(m, d)]]) * 100 for d in args.depths],
            yerr=[np.std([r["test_accuracy"] for r in by[(m, d)]]) * 100 for d in args.depths],
            marker="o",
            capsize=3,
            label=m,
            color=colour,
        )
        blocks = range(1, grad_depth + 1)
        axes[1].plot(blocks, overall[m], marker="o", color=colour, label=f"{m}, mean over epochs")
        axes[1].plot(blocks, first[m], linestyle="--", color=colour, label=f"{m}, first epoch")
    axes[0].set(xlabel="blocks L", ylabel="test accuracy (%)", title=f"{task.name}: accuracy vs depth")
    axes[1].set(
        xlabel="block (1 = input side)",
        ylabel="mean |gradient| of encoder",
        yscale="log",
        title=f"encoder gradients, L = {grad_depth}",
    )
    axes[0].legend()
    axes[1].legend(fontsize=8)
    save_figure(fig, folder / f"{stem}.png")


if __name__ == "__main__":
    main()
