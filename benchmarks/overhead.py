"""Training throughput of DeInfoReg vs back-propagation on one device (issue: overhead).

Both methods train the same blocks; DeInfoReg adds a projector, classifier and local loss per
block. Throughput is steady-state training samples per second: the median time of epochs
2..N (the first epoch is warm-up), with no validation split so that an epoch is training only.
Inputs are random tensors of the model's shape: throughput does not depend on the values.

Rows: one device with 1 and with 2 threads, and DeInfoReg as 2 CPU stages sharing the 2
threads (1 each; BP cannot pipeline, so its row there is its best one-device number, 2 threads).
Models: dense 4 x Dense(256); the reduced VGG; the first conv model a new user writes (no
``head_pool``, so its first block flattens to 8,192 features); a 2-block BiLSTM over
embedded tokens (sequence length 64).

``--csv FILE`` writes the rows; ``--before FILE`` (a CSV of an earlier version, run the same
way) adds "before" columns to the page ``docs/results/overhead_table.md``.

Run:  python benchmarks/overhead.py --csv after.csv [--before before.csv]   (~10 min, 2 cores)
      python benchmarks/overhead.py --quick    (a smoke run)
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import statistics

import numpy as np
import torch
from models import REDUCED_VGG  # benchmarks/models.py
from report import machine

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Embedding

#: Token ids of the text model: a vocabulary of 5,000 (ids from 2: 0 pads, 1 is unknown).
TEXT_VOCAB, TEXT_LENGTH = 5000, 64

MODELS = {
    # name: (blocks, input_shape, n_samples); input_shape "tokens" = rows of token ids
    "dense 4x256": ([Dense(256)] * 4, (64,), 4096),
    "reduced VGG (3x32x32)": (REDUCED_VGG, (3, 32, 32), 1024),
    "first conv model (3x32x32)": (
        [Conv([32, 32, "M"]), Conv([64, 64, "M"]), Conv([128, "M"]), Conv([128, "M"])],
        (3, 32, 32),
        1024,
    ),
    "BiLSTM text (64 tokens)": (
        [Embedding(64), LSTM(64, bidirectional=True), LSTM(64, bidirectional=True)],
        "tokens",
        2048,
    ),
}


def model_data(shape, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    if shape == "tokens":
        X = rng.randint(2, TEXT_VOCAB, size=(n, TEXT_LENGTH)).astype(np.int64)
    else:
        X = rng.randn(n, int(np.prod(shape))).astype(np.float32)
    return X, rng.randint(0, 10, n)


def throughput(cls, blocks, shape, n, epochs, batch_size, device, **params) -> float:
    X, y = model_data(shape, n)
    est = cls(
        **params,
        blocks=blocks,
        input_shape=shape if shape != "tokens" and len(shape) > 1 else None,
        batch_size=batch_size,
        max_iter=epochs,
        validation_fraction=0,
        random_state=0,
        devices=device,
    ).fit(X, y)
    times = [record["time"] for record in est.history_[1:]]
    return n / statistics.median(times)


def loss_share(width: int, batch_size: int, repeats: int = 200) -> tuple[float, float]:
    """Milliseconds of (block step without the local loss, local loss) for a Dense block."""
    import time

    import torch.nn.functional as F

    from deinforeg_sklearn.heads import build_classifier
    from deinforeg_sklearn.losses import info_regularization_loss

    x, y = torch.randn(batch_size, width), torch.randint(0, 10, (batch_size,))
    encoder = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.BatchNorm1d(width), torch.nn.ReLU())
    classifier = build_classifier(width, 10, sequence=False)

    def timed(with_loss: bool) -> float:
        for i in range(repeats + 20):
            if i == 20:
                start = time.perf_counter()
            h = encoder(x)
            loss = 1e-3 * F.cross_entropy(classifier(h), y)
            if with_loss:
                loss = loss + info_regularization_loss(h, y, 10)
            loss.backward()
        return (time.perf_counter() - start) / repeats * 1e3

    base = timed(False)
    return base, timed(True) - base


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 epochs on fewer samples")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default=None, help="e.g. cuda:0 (default: CPU)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-stages", action="store_true", help="skip the 2 CPU stages rows")
    parser.add_argument("--compile", action="store_true", help="DeInfoReg with compile=True (BP eager)")
    parser.add_argument("--csv", default=None, help="write the rows to this CSV")
    parser.add_argument("--before", default=None, help="CSV of an earlier version: before/after page")
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs
    print(
        f"batch size {args.batch_size}, {epochs} epochs (median of epochs 2..{epochs}), "
        f"device {args.device or 'cpu'}"
    )
    print(f"{'model':<28}{'setting':>26}{'BP samples/s':>15}{'DeInfoReg samples/s':>21}{'ratio':>8}")
    rows = []
    extra = {"compile": True} if args.compile else {}
    for name in args.models:
        blocks, shape, n = MODELS[name]
        n = n // 4 if args.quick else n
        best_bp = 0.0
        for threads in args.threads:
            torch.set_num_threads(threads)
            bp = throughput(BackpropClassifier, blocks, shape, n, epochs, args.batch_size, args.device)
            di = throughput(
                DeInfoRegClassifier, blocks, shape, n, epochs, args.batch_size, args.device, **extra
            )
            best_bp = max(best_bp, bp)
            rows.append(
                {"model": name, "setting": f"one device, {threads} thread(s)", "bp": bp, "deinforeg": di}
            )
            print(f"{name:<28}{rows[-1]['setting']:>22}{bp:>15.0f}{di:>21.0f}{di / bp:>8.2f}", flush=True)
        if not args.no_stages and args.device is None:
            torch.set_num_threads(2)  # the two stages split these: one thread each
            di = throughput(
                DeInfoRegClassifier, blocks, shape, n, epochs, args.batch_size, ["cpu", "cpu"], **extra
            )
            rows.append(
                {"model": name, "setting": "2 CPU stages (2 threads)", "bp": best_bp, "deinforeg": di}
            )
            print(
                f"{name:<28}{rows[-1]['setting']:>22}{best_bp:>15.0f}{di:>21.0f}{di / best_bp:>8.2f}",
                flush=True,
            )
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["model", "setting", "bp", "deinforeg"])
            writer.writeheader()
            writer.writerows(rows)
    if args.before:
        write_before_after(rows, args.before, args.batch_size, epochs)
    print(
        "\nWhere a Dense(256) block step goes (forward + backward, batch "
        f"{args.batch_size}, {torch.get_num_threads()} threads):"
    )
    base, loss = loss_share(256, args.batch_size)
    print(f"  encoder + classifier + cross-entropy: {base:.3f} ms   local loss: {loss:.3f} ms")


def report_row(model: str, setting: str, bp: float, deinforeg: float) -> dict:
    """Print one result line and return it as a CSV row."""
    print(f"{model:<28}{setting:>26}{bp:>15.0f}{deinforeg:>21.0f}{deinforeg / bp:>8.2f}", flush=True)
    return {"model": model, "setting": setting, "bp": bp, "deinforeg": deinforeg}


def write_before_after(rows: list[dict], before_csv: str, batch_size: int, epochs: int) -> None:
    """docs/results/overhead_table.md: samples/s of BP and DeInfoReg, before and after."""
    with open(before_csv, newline="") as handle:
        before = {(r["model"], r["setting"]): r for r in csv.DictReader(handle)}
    lines = [
        "| model | setting | BP samples/s | DeInfoReg before | DeInfoReg after | "
        "DeInfoReg / BP before | DeInfoReg / BP after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        old = before.get((r["model"], r["setting"]))
        old_di = float(old["deinforeg"]) if old else float("nan")
        old_bp = float(old["bp"]) if old else float("nan")
        lines.append(
            f"| {r['model']} | {r['setting']} | {r['bp']:,.0f} | {old_di:,.0f} | {r['deinforeg']:,.0f} | "
            f"{old_di / old_bp:.2f} | **{r['deinforeg'] / r['bp']:.2f}** |"
        )
    path = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results" / "overhead_table.md"
    path.write_text(
        "# One-device throughput and 2 CPU stages: DeInfoReg against BP, before and after\n\n"
        f"Command: `python benchmarks/overhead.py --csv after.csv --before before.csv` (before: the "
        f"same script on the earlier version). Batch {batch_size}, median epoch of epochs "
        f"2..{epochs}, no validation split, random inputs.\n{machine()}\n\n" + "\n".join(lines) + "\n"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
