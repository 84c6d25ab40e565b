"""A grid search whose fits share one checkpoint template, in its own process so that a test
can kill it (and its workers) mid-search.

Usage: python tests/search_job.py OUT.json [CHECKPOINT]
Runs GridSearchCV(n_jobs=2) over two learning rates with 2 folds on the digits and writes the
test scores of every candidate and fold to OUT.json.
"""

import json
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

PARAMS = {"blocks": [Dense(128), Dense(128)], "max_iter": 8, "batch_size": 16, "random_state": 0}
GRID = {"learning_rate": [1e-3, 3e-3]}


def scores(search) -> dict:
    results = search.cv_results_
    keys = [k for k in results if k.startswith("split") and k.endswith("_test_score")]
    return {k: np.asarray(results[k]).tolist() for k in sorted(keys)}


if __name__ == "__main__":
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = (X[:900] / 16.0).astype(np.float32)
    checkpoint = sys.argv[2] if len(sys.argv) > 2 else None
    search = GridSearchCV(DeInfoRegClassifier(checkpoint=checkpoint, **PARAMS), GRID, cv=2, n_jobs=2)
    search.fit(X, y[:900])
    with open(sys.argv[1], "w") as out:
        json.dump(scores(search), out)
