"""GridSearchCV over a DeInfoRegClassifier with n_jobs=1 and n_jobs=2, on the same machine.

joblib's worker processes (loky) cap each worker's OpenMP/MKL threads at cores // n_jobs; torch
reads that cap, so 2 workers on 2 cores use 1 torch thread each instead of 2 (no
oversubscription). The script prints the wall time of each search and the threads the
workers used.

Run: python benchmarks/parallel_search.py     (about 1 minute on 2 cores)
"""

from __future__ import annotations

import time

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense


def worker_threads(_: int) -> int:
    return torch.get_num_threads()


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32) / 16
    grid = {"alpha": [1e-3, 1e-2, 1e-1, 1.0], "batch_size": [64, 128]}
    base = DeInfoRegClassifier(blocks=[Dense(128)] * 3, max_iter=10, random_state=0)
    print(
        f"{len(grid['alpha']) * len(grid['batch_size'])} candidates x 3 folds, digits, "
        "3 x Dense(128), 10 epochs"
    )
    print(f"main process: {torch.get_num_threads()} torch threads")
    threads = joblib.Parallel(n_jobs=2)(joblib.delayed(worker_threads)(i) for i in range(2))
    print(f"n_jobs=2 workers: {threads} torch threads")
    for n_jobs in (1, 2):
        start = time.perf_counter()
        search = GridSearchCV(base, grid, cv=3, n_jobs=n_jobs).fit(X, y)
        seconds = time.perf_counter() - start
        print(
            f"n_jobs={n_jobs}: {seconds:6.1f} s   best {search.best_params_} score {search.best_score_:.4f}"
        )


if __name__ == "__main__":
    main()
