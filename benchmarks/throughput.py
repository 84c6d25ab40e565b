"""Training throughput of pipelined DeInfoReg, in the layout of the paper's Table 7.

Rows: BP on 1 device, DeInfoReg on 1 device, DeInfoReg on K stages (each engine), for each
batch size. Throughput is steady-state training samples per second: rows per epoch / median
training time of epochs 2..N (epoch 1 is warm-up; validation is off). The torch thread count of
each row is printed: on the CPU, a K-stage pipeline gives each stage cores // K threads.
``busy`` is the share of the epoch each stage spent computing block steps; the rest is waiting
(fill and drain of the pipeline, imbalance, transfers, or contention for the GIL).

Inputs are random tensors of the model's shape (throughput does not depend on the values).

CPU (default): python benchmarks/throughput.py                 (reduced VGG, batch 128; ~4 min)
               python benchmarks/throughput.py --batch-sizes 64 128 256
GPU:           python benchmarks/throughput.py --model vgg --device cuda:0 --stages 2 \\
                   --batch-sizes 256 512 1024 --samples 10240
2 GPUs:        python benchmarks/throughput.py --model vgg --device cuda:0 --stage-devices cuda:0 cuda:1 \\
                   --batch-sizes 256 512 1024 --samples 10240
Spawned stage processes re-import this script, hence the __main__ guard.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from models import MODELS  # benchmarks/models.py (this script's folder is on sys.path)

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier


def measure(cls, blocks, X, y, batch_size, epochs, threads, **kw) -> tuple[float, list[float]]:
    """Steady-state samples/s and mean per-stage busy fraction of one configuration."""
    torch.set_num_threads(threads)
    est = cls(
        blocks=blocks,
        input_shape=(3, 32, 32),
        batch_size=batch_size,
        max_iter=epochs,
        validation_fraction=0,
        random_state=0,
        **kw,
    ).fit(X, y)
    steady = est.history_[1:]
    rate = len(X) / statistics.median(r["time"] for r in steady)
    busy = np.mean([r["stage_busy"] for r in steady], axis=0).tolist()
    return rate, busy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="reduced-vgg")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--samples", type=int, default=3072, help="training rows per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stages", type=int, default=2, help="K, the pipeline stages")
    parser.add_argument("--device", default="cpu", help="'cpu' or a CUDA device; K stages use it K times")
    parser.add_argument("--cores", type=int, default=2, help="CPU cores to use in total (CPU runs)")
    parser.add_argument(
        "--stage-devices",
        nargs="+",
        help="one device per stage for the pipelined rows (e.g. cuda:0 cuda:1); default: --device K times",
    )
    parser.add_argument(
        "--precision", choices=["32", "bf16", "16"], default="32", help="every row, both methods alike"
    )
    args = parser.parse_args()

    blocks, projector = MODELS[args.model]
    rng = np.random.RandomState(0)
    X = rng.rand(args.samples, 3 * 32 * 32).astype(np.float32)
    y = rng.randint(0, 10, args.samples)
    cpu = args.device == "cpu"
    stage_devices = args.stage_devices or [args.device] * args.stages
    k, cores = len(stage_devices), args.cores
    per_stage = max(1, cores // k) if cpu else cores
    bp_name = f"BP, 1 device, {cores} threads"
    base_name = f"DeInfoReg, 1 device, {per_stage} thread(s)"  # what each stage of the pipeline gets
    one = {"devices": args.device}
    rows = [(bp_name, BackpropClassifier, cores, one)]
    rows += [(f"DeInfoReg, 1 device, {cores} threads", DeInfoRegClassifier, cores, one)]
    if cpu and per_stage != cores:
        rows += [(f"BP, 1 device, {per_stage} thread(s)", BackpropClassifier, per_stage, one)]
        rows += [(base_name, DeInfoRegClassifier, per_stage, one)]
    for engine in ("threads", "processes"):
        name = f"DeInfoReg, {k} stages, {engine}, {per_stage} thread(s)/stage"
        rows.append((name, DeInfoRegClassifier, cores, {"devices": stage_devices, "engine": engine}))

    print(
        f"model {args.model}, {args.samples} rows/epoch, median of epochs 2..{args.epochs}, "
        f"device {args.device}, precision {args.precision}, torch {torch.__version__}"
    )
    header = (
        f"{'configuration':<50}{'batch':>6}{'samples/s':>11}{'vs BP':>7}{'vs 1-stage':>12}  busy per stage"
    )
    print(header)
    print("-" * len(header))
    for batch_size in args.batch_sizes:
        rates: dict[str, float] = {}
        for name, cls, threads, kw in rows:
            rate, busy = measure(
                cls,
                blocks,
                X,
                y,
                batch_size,
                args.epochs,
                threads,
                projector=projector,
                precision=args.precision,
                **kw,
            )
            rates[name] = rate
            base = rates.get(base_name, rates.get(f"DeInfoReg, 1 device, {cores} threads"))
            vs_base = f"{rate / base:>12.2f}" if base else " " * 12
            busy_txt = " ".join(f"{b:.2f}" for b in busy)
            print(
                f"{name:<50}{batch_size:>6}{rate:>11.0f}{rate / rates[bp_name]:>7.2f}{vs_base}  {busy_txt}",
                flush=True,
            )


if __name__ == "__main__":
    main()
