"""A grid search across a Dask cluster gives the search of one process.

Invariant: ``GridSearchCV(n_jobs=-1)`` under ``joblib.parallel_config(backend="dask")`` on a
``dask.distributed.LocalCluster`` (2 worker processes, loopback) gives the same
``best_params_`` and the same ``cv_results_`` scores, split by split, as ``n_jobs=1`` in this
process, when both run torch with one thread (thread counts change the last bits of sums).
"""

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

distributed = pytest.importorskip(
    "dask.distributed", reason='Dask search needs the extra: pip install "deinforeg-sklearn[dask]"'
)


def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    )
    with cluster, distributed.Client(cluster) as dask_client:
        dask_client.run(_one_thread)
        yield dask_client


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_grid_search_on_a_dask_cluster_equals_one_process(client, cls):
    X, y = load_digits(return_X_y=True)
    X, y = X[:500] / 16, y[:500]
    grid = {"learning_rate": [1e-3, 3e-3], "batch_size": [32, 64]}
    est = cls(blocks=[Dense(32)] * 2, max_iter=8, random_state=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
    finally:
        torch.set_num_threads(threads)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X, y)
    assert remote.best_params_ == local.best_params_
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert local.cv_results_["mean_test_score"].max() > 0.5  # the candidates learned something
    # the cluster's workers fitted the 4 candidates x 2 folds (the refit runs here)
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 1 and workers <= set(client.scheduler_info()["workers"])
