"""Fit time from the call to ``fit`` to its return, default parameters, as a new user measures it.

Run one method per fresh process, so that each pays its own start-up (the imports, and the
``torch._dynamo`` import at a process's first optimiser step), and compare BP with DeInfoReg:

    for m in BP DeInfoReg; do python benchmarks/fit_time.py $m conv; done
    for m in BP DeInfoReg; do python benchmarks/fit_time.py $m demo; done

``conv``: the first conv model a new user writes (no ``head_pool``), 1,024 random 3 x 32 x 32
images, 1 epoch. ``demo``: the model and data of ``deinforeg demo`` (4 x Dense(256), digits,
StandardScaler, 50 epochs). Threads: torch's default for the machine, what a new user gets.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv, Dense

METHODS = {"BP": BackpropClassifier, "DeInfoReg": DeInfoRegClassifier}
FIRST_CONV_MODEL = [Conv([32, 32, "M"]), Conv([64, 64, "M"]), Conv([128, "M"]), Conv([128, "M"])]


def task(method: str, model: str):
    """The estimator and training data of one measurement."""
    cls = METHODS[method]
    if model == "conv":
        rng = np.random.RandomState(0)
        X = rng.rand(1024, 3 * 32 * 32).astype(np.float32)
        y = rng.randint(0, 10, 1024)
        return cls(blocks=FIRST_CONV_MODEL, input_shape=(3, 32, 32), max_iter=1, random_state=0), X, y
    X, y = load_digits(return_X_y=True)
    X, _, y, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    estimator = make_pipeline(StandardScaler(), cls(blocks=[Dense(256)] * 4, max_iter=50, random_state=0))
    return estimator, X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("model", choices=["conv", "demo"])
    args = parser.parse_args()
    estimator, X, y = task(args.method, args.model)
    start = time.perf_counter()
    estimator.fit(X, y)
    print(f"{args.method} {args.model}: fit {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
