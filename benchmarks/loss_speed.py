"""The local loss alone, forward + backward: D x D column form, N x N Gram form, closed-form backward.

All three compute the same terms (tests/test_losses.py checks values and gradients). The
column form costs D^2 N for the covariance plus N^2 D for the row similarity; the Gram form
N^2 D in all. Both run through autograd. The closed-form one (``losses/fused.py``, what
``info_regularization_loss`` runs) is one autograd node with a hand-written backward: the same
Gram form with a third of the tensor operations. The variance term is included in all three.
The batch is random: cost does not depend on the values.

Threads: torch.set_num_threads(1), so that the two forms are compared kernel for kernel on one
core (run alone: a second torch job on the machine skews the timings).

It then fits the first conv model a new user writes (issue: speed on the user's own machine),
``[Conv([32, 32, "M"]), Conv([64, 64, "M"]), Conv([128, "M"]), Conv([128, "M"])]`` on 1,024
random 3 x 32 x 32 images, one epoch, default parameters: fit time from the call to ``fit`` to
its return, BP and DeInfoReg in the same run. Its first block flattens to D = 8,192 features.

Run:  python benchmarks/loss_speed.py            (about a minute on 2 CPU cores)
      python benchmarks/loss_speed.py --quick    (smaller shapes, a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from report import out_dir, table, write_csv, write_page

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv
from deinforeg_sklearn.losses.fused import InfoRegularization
from deinforeg_sklearn.losses.info_regularization import (
    _column_terms,
    _gram_terms,
    _label_similarity,
    _variance,
)

SHAPES = [(128, 256), (128, 2048), (128, 8192), (256, 65536)]
QUICK_SHAPES = [(32, 64), (32, 1024)]
#: Above this many bytes the D x D covariance (with its gradient) is not attempted on this machine.
COLUMN_LIMIT_BYTES = 4 * 2**30


def autograd_loss(terms):
    """The loss through autograd, with ``terms`` the column or the Gram form."""

    def loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        normed = F.normalize(z, dim=1)
        centred = normed - normed.mean(dim=0)
        inv, cov = terms(normed, centred, y, 10, True, True)
        return _variance(centred) + inv + cov

    return loss


def closed_form_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss as ``info_regularization_loss`` runs it: one node, closed-form backward."""
    return InfoRegularization.apply(z, _label_similarity(y, 10, torch.float64), (1.0, 1.0, 1.0))[0]


def seconds(loss, n: int, d: int, repeats: int) -> float:
    """Median seconds of one forward + backward of ``loss`` on a (n, d) batch."""
    z = torch.randn(n, d, requires_grad=True)
    y = torch.randint(0, 10, (n,))
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss(z, y).backward()
        z.grad = None
        if i:  # the first run is warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit_seconds(cls, n_images: int) -> float:
    """Seconds of one default ``fit`` (1 epoch) of the first conv model on random images."""
    blocks = [Conv([32, 32, "M"]), Conv([64, 64, "M"]), Conv([128, "M"]), Conv([128, "M"])]
    rng = np.random.RandomState(0)
    X = rng.rand(n_images, 3 * 32 * 32).astype(np.float32)
    y = rng.randint(0, 10, n_images)
    start = time.perf_counter()
    cls(blocks=blocks, input_shape=(3, 32, 32), max_iter=1, random_state=0).fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n, d in QUICK_SHAPES if args.quick else SHAPES:
        gram = seconds(autograd_loss(_gram_terms), n, d, args.repeats)
        closed = seconds(closed_form_loss, n, d, args.repeats)
        column = None
        if 3 * d * d * 4 <= COLUMN_LIMIT_BYTES:  # C, its gradient and a temporary, float32
            column = seconds(autograd_loss(_column_terms), n, d, args.repeats)
        rows.append(
            {
                "N": n,
                "D": d,
                "column_ms": column and column * 1e3,
                "gram_ms": gram * 1e3,
                "closed_ms": closed * 1e3,
            }
        )
        print(rows[-1], flush=True)
    n_images = 128 if args.quick else 1024
    fits = {cls.__name__: fit_seconds(cls, n_images) for cls in (BackpropClassifier, DeInfoRegClassifier)}
    print(fits, flush=True)
    folder = out_dir(args.quick, args.out)
    write_csv(folder / "loss_speed.csv", rows)
    body = table(
        [
            "N",
            "D",
            "column form (ms)",
            "Gram form, autograd (ms)",
            "Gram form, closed-form backward (ms)",
            "column / closed-form",
        ],
        [
            [
                r["N"],
                r["D"],
                "not run (D x D too large)" if r["column_ms"] is None else f"{r['column_ms']:.2f}",
                f"{r['gram_ms']:.2f}",
                f"{r['closed_ms']:.2f}",
                "" if r["column_ms"] is None else f"{r['column_ms'] / r['closed_ms']:.1f}x",
            ]
            for r in rows
        ],
    )
    write_page(
        folder / "loss_speed.md",
        "The local loss alone: column form, Gram form, closed-form backward",
        __doc__.split("\n\n")[0] + f" Median of {args.repeats} runs after one warm-up, 1 torch thread.",
        [
            body,
            f"## The first conv model, {n_images} images, 1 epoch, default parameters\n\n"
            + table(
                ["method", "fit time (s)", "against BP"],
                [[name, f"{t:.2f}", f"{t / fits['BackpropClassifier']:.2f}x"] for name, t in fits.items()],
            ),
        ],
    )


if __name__ == "__main__":
    main()
