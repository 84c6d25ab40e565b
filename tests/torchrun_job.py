"""One rank of a 2-process job launched by torchrun (tests of pipelines and replicas: :func:`launch`).

Usage: python -m torch.distributed.run --standalone --nproc-per-node 2 tests/torchrun_job.py OUT_DIR
[replicas]. With "replicas", the two ranks are data-parallel replicas of one stage
(``devices=[["cpu", "cpu"]]``, SGD: see tests/test_replicas.py) instead of two pipeline stages.
Every rank fits on the same data and saves its predict_proba to OUT_DIR/rank<R>.npy; the fit
keeps a checkpoint in OUT_DIR/checkpoint (written by rank 0 alone), and a callback writes each
hook it runs to OUT_DIR/hooks-rank<R>.txt (rank 0 alone runs them).
"""

import os
import sys

import numpy as np
import torch

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.callbacks import Callback


class HookFile(Callback):
    """Appends the name of each hook it runs (and the epoch) to a file of this rank."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def _write(self, line):
        with open(os.path.join(self.out_dir, f"hooks-rank{os.environ['RANK']}.txt"), "a") as handle:
            handle.write(line + "\n")

    def on_fit_begin(self, estimator):
        self._write("begin")

    def on_epoch_end(self, estimator, record):
        self._write(f"epoch {record['epoch']}")

    def on_fit_end(self, estimator):
        self._write("end")


def data():
    rng = np.random.RandomState(0)
    X = rng.randn(150, 6).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)


PARAMS = {"blocks": [Dense(8), Dense(8), Dense(8)], "max_iter": 2, "batch_size": 32, "random_state": 0}
REPLICA_PARAMS = dict(PARAMS, optimizer="sgd")


def launch(out_dir, *args: str) -> None:
    """Run this job under torchrun, 2 processes on this machine, with the caller's sys.path;
    raises CalledProcessError (its output captured) if it fails."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    subprocess.run(
        [*run, __file__, str(out_dir), *args], check=True, env=env, timeout=240, capture_output=True
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    X, y = data()
    replicas = sys.argv[2:] == ["replicas"]
    est = DeInfoRegClassifier(
        devices=[["cpu", "cpu"]] if replicas else ["cpu", "cpu"],
        engine="processes",
        checkpoint=os.path.join(sys.argv[1], "checkpoint"),
        callbacks=[HookFile(sys.argv[1])],
        **(REPLICA_PARAMS if replicas else PARAMS),
    ).fit(X, y)
    np.save(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.npy"), est.predict_proba(X))
