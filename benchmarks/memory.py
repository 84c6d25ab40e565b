"""Peak training memory of BP, AL, SCPL and DeInfoReg (the paper's Table 8).

DeInfoReg runs twice: ``backward="per_block"`` (each block's graph freed after its own step, the
paper's setting) and ``backward="per_stage"`` (one backward over all blocks of the device: every
graph lives until then), with the fit time of each, so the memory rule of ``backward="auto"``
can be read off.

Each (method, seed) trains in a fresh Python process, so that one method's peak cannot hide
another's. On a GPU the number is ``torch.cuda.max_memory_allocated`` during the fit; on the CPU
it is the process's peak resident memory (``ru_maxrss``) minus its resident memory just before
the fit, after a one-epoch warm-up fit of the same model on 256 rows (interpreter, torch, its
one-off allocations and the data set are thus left out). Trainable parameters are
counted too. Results: docs/results/memory_<task>.* (CPU) or memory_<task>_cuda.* (GPU)

Memory against data size (uint8 X read in place, see data_memory.py):
                            python benchmarks/memory.py --data --sizes-mib 256 1024
Quick (CI, digits, ~1 min): python benchmarks/memory.py --quick
CPU (< 10 min):             python benchmarks/memory.py --task vader-lstm
GPU, paper-like:            python benchmarks/memory.py --task vader-lstm --device cuda:0
A GPU host without internet reads the VADER task from a copy (text_sentiment.py --offline-copy):
    python benchmarks/memory.py --task vader-lstm --device cuda:0 --data-dir gpu-data \
        --vectors gpu-data/vader-words.glove-50d.txt.gz
"""

from __future__ import annotations

import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from experiment import current_rss_mib, make_estimator, parser, peak_rss_mib, reset_peak_rss, setup
from paper_numbers import MEMORY_MIB
from report import child_result, grouped, mean_std, out_dir, save_figure, table, write_csv, write_page
from sklearn.base import clone

CPU_MEASURE = (
    "CPU: peak resident memory (ru_maxrss, reset before the fit) minus the resident memory just "
    "before the fit, after a one-epoch warm-up fit of the same model on 256 rows, so the "
    "interpreter, torch, its one-off allocations and the data set are left out; fit seconds "
    "are then those of a warmed-up process."
)


def uses_cuda(device: str | None) -> bool:
    return device is not None and device.startswith("cuda")


#: The rows: (label, method, extra estimator parameters).
VARIANTS = [
    ("BP", "BP", {}),
    ("AL", "AL", {}),
    ("SCPL", "SCPL", {}),
    ("DeInfoReg", "DeInfoReg", {"backward": "per_block"}),
    ("DeInfoReg, one backward per device", "DeInfoReg", {"backward": "per_stage"}),
]


def child(args) -> None:
    """Train one method once and print its numbers as JSON (runs in its own process)."""
    import time

    import torch

    label, method, params = next(v for v in VARIANTS if v[0] == args.child)
    task, (X, y, _, _), budget = setup(args)
    est = make_estimator(method, task, task.depth, args.seeds[0], budget, args.device, **params)
    est.set_params(
        batch_size=args.batch_size, max_iter=args.epochs, early_stopping=False, validation_fraction=0
    )
    if method == "DeInfoReg":
        est.set_params(inference="last")  # "best" needs a validation split
    cuda = uses_cuda(args.device)
    if cuda:
        # name the device: the current one is cuda:0 whatever --device says
        device = torch.device(args.device)
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(device)
    # torch's one-off allocations (its lazy imports, the first kernels of each layer type)
    # would otherwise be most of a small model's number: one short fit of the same model first
    clone(est).set_params(max_iter=1).fit(X[:256], y[:256])
    reset_peak_rss()  # the data's loading and the warm-up may have peaked higher than the fit will
    before = current_rss_mib()
    start = time.perf_counter()
    est.fit(X, y)
    seconds = time.perf_counter() - start
    result = {
        "method": label,
        "fit_seconds": round(seconds, 2),
        "seed": args.seeds[0],
        "parameters": sum(p.numel() for p in est.network_.parameters() if p.requires_grad),
        "cpu_peak_mib": round(peak_rss_mib() - before, 1),
    }
    if cuda:
        result["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = parser(__doc__, default_task="vader-lstm", quick_task="digits-lstm", max_iter=2, patience=1)
    p.add_argument("--batch-size", type=int, default=256, help="the paper's Table 8 uses 256")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    p.add_argument("--data", action="store_true", help="peak memory against the size of uint8 data")
    p.add_argument("--sizes-mib", type=int, nargs="+", default=[256, 1024])
    args = p.parse_args()
    if args.data:
        import data_memory

        data_memory.run(args.sizes_mib, out_dir(args.quick, args.out))
        return
    if args.child:
        child(args)
        return
    task_name = args.task or (args.quick_task if args.quick else args.default_task)
    rows = []
    labels = [label for label, _, _ in VARIANTS]
    for method in labels:
        for seed in args.seeds:
            command = [sys.executable, sys.argv[0], *sys.argv[1:], "--child", method, "--seeds", str(seed)]
            row = child_result(command, method)
            rows.append(row)
            print(row, flush=True)

    folder = out_dir(args.quick, args.out)
    on_gpu = uses_cuda(args.device)
    stem = f"memory_{task_name}_cuda" if on_gpu else f"memory_{task_name}"  # CPU and GPU pages apart
    write_csv(folder / f"{stem}.csv", rows)
    by = grouped(rows, "method")
    key = "gpu_peak_mib" if on_gpu else "cpu_peak_mib"
    body = [
        [
            m,
            f"{by[(m,)][0]['parameters']:,}",
            mean_std([r[key] for r in by[(m,)]], scale=1.0, digits=1),
            mean_std([r["fit_seconds"] for r in by[(m,)]], scale=1.0, digits=2),
            MEMORY_MIB[next(method for label, method, _ in VARIANTS if label == m)],
        ]
        for m in labels
    ]
    what = "GPU max allocated (MiB)" if key == "gpu_peak_mib" else "CPU peak RSS during fit (MiB)"
    write_page(
        folder / f"{stem}.md",
        f"Training memory: {task_name}",
        f"Batch size {args.batch_size}, {args.epochs} epoch(s), one fresh process per run. "
        + ("GPU: torch.cuda.max_memory_allocated." if key == "gpu_peak_mib" else CPU_MEASURE),
        [
            table(
                [
                    "method",
                    "trainable parameters",
                    f"{what}, seeds {args.seeds}",
                    "fit seconds",
                    "paper (GPU MiB, IMDB LSTM)",
                ],
                body,
            )
        ],
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(labels, [np.mean([r[key] for r in by[(m,)]]) for m in labels])
    ax.tick_params(axis="x", labelrotation=20)
    ax.set(ylabel=what, title=f"{task_name}: training memory")
    save_figure(fig, folder / f"{stem}.png")


if __name__ == "__main__":
    main()
