"""Callbacks for the tests, importable by the workers of a parallel search."""

import os

from deinforeg_sklearn.callbacks import Callback


class Recorder(Callback):
    """Keeps what each hook saw (in the process that ran it), and stops after ``stop_after``."""

    def __init__(self, stop_after=None, fail_at=None):
        self.stop_after = stop_after
        self.fail_at = fail_at

    def on_fit_begin(self, estimator):
        self.calls = [("begin", os.getpid(), hasattr(estimator, "history_"))]

    def on_epoch_end(self, estimator, record):
        self.calls.append(("epoch", os.getpid(), record))
        if self.fail_at is not None and record["epoch"] == self.fail_at:
            raise RuntimeError(f"callback failed at epoch {self.fail_at}")
        return self.stop_after is not None and record["epoch"] >= self.stop_after

    def on_fit_end(self, estimator):
        self.calls.append(("end", os.getpid(), len(estimator.history_)))
