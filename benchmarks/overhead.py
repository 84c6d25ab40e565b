"""Training throughput of DeInfoReg vs back-propagation on one device (issue: overhead).

Both methods train the same blocks; DeInfoReg adds a projector, classifier and local loss per
block. Throughput is steady-state training samples per second: the median time of epochs
2..N (the first epoch is warm-up), with no validation split so that an epoch is training only.
Inputs are random tensors of the model's shape: throughput does not depend on the values.

Run:  python benchmarks/overhead.py            (about 3 minutes on 2 CPU cores)
      python benchmarks/overhead.py --quick    (a smoke run)
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from models import REDUCED_VGG  # benchmarks/models.py

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

MODELS = {
    # name: (blocks, input_shape, n_samples)
    "dense 4x256": ([Dense(256)] * 4, (64,), 4096),
    "reduced VGG (3x32x32)": (REDUCED_VGG, (3, 32, 32), 1024),
}


def throughput(cls, blocks, shape, n, epochs, batch_size, device) -> float:
    rng = np.random.RandomState(0)
    X = rng.randn(n, int(np.prod(shape))).astype(np.float32)
    y = rng.randint(0, 10, n)
    est = cls(
        blocks=blocks,
        input_shape=shape if len(shape) > 1 else None,
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
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs
    print(
        f"batch size {args.batch_size}, {epochs} epochs (median of epochs 2..{epochs}), "
        f"device {args.device or 'cpu'}"
    )
    print(f"{'model':<24}{'threads':>8}{'BP samples/s':>15}{'DeInfoReg samples/s':>21}{'ratio':>8}")
    for name, (blocks, shape, n) in MODELS.items():
        n = n // 4 if args.quick else n
        for threads in args.threads:
            torch.set_num_threads(threads)
            bp = throughput(BackpropClassifier, blocks, shape, n, epochs, args.batch_size, args.device)
            di = throughput(DeInfoRegClassifier, blocks, shape, n, epochs, args.batch_size, args.device)
            print(f"{name:<24}{threads:>8}{bp:>15.0f}{di:>21.0f}{di / bp:>8.2f}")
    print(
        "\nWhere a Dense(256) block step goes (forward + backward, batch "
        f"{args.batch_size}, {torch.get_num_threads()} threads):"
    )
    base, loss = loss_share(256, args.batch_size)
    print(f"  encoder + classifier + cross-entropy: {base:.3f} ms   local loss: {loss:.3f} ms")


if __name__ == "__main__":
    main()
