"""TensorBoard event files with each epoch's scalars (``torch.utils.tensorboard``)."""

from __future__ import annotations

import os
from typing import Any

from deinforeg_sklearn.callbacks.base import Callback
from deinforeg_sklearn.callbacks.records import flat_record


class TensorBoardLogger(Callback):
    """Write each epoch's losses, accuracies, validation scores, rate and time to TensorBoard.

    One scalar per :func:`~deinforeg_sklearn.callbacks.flat_record` name (``block1/loss``,
    ``validation_score/2``, ``learning_rate``, ``time``...), at step ``epoch``, so warm starts
    continue the curves. The writer (``torch.utils.tensorboard.SummaryWriter``, which needs
    the ``tensorboard`` package: ``pip install "deinforeg-sklearn[tensorboard]"``) is opened
    when the fit begins and closed when it ends, however it ends (:meth:`close`), so a copy, a
    pickle or a search's candidate holds none (a writer in a parameter broke ``clone`` in
    skorch #701).

    Parameters
    ----------
    log_dir : str, path-like or None, default=None
        The folder of the event files; None: ``runs/<date>_<host>``, as ``SummaryWriter``.
        Fits running at the same time need a folder each.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None) -> None:
        self.log_dir = log_dir

    def on_fit_begin(self, estimator: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises this when tensorboard is missing
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: "
                'pip install "deinforeg-sklearn[tensorboard]" (or pip install tensorboard).'
            ) from exc
        self.close()
        self._writer = SummaryWriter(log_dir=None if self.log_dir is None else os.fspath(self.log_dir))

    def on_epoch_end(self, estimator: Any, record: dict) -> None:
        writer = getattr(self, "_writer", None)
        if writer is None:
            return
        step = int(record["epoch"])
        for name, value in flat_record(record).items():
            if name != "epoch":
                writer.add_scalar(name, value, global_step=step)
        writer.flush()

    def on_fit_end(self, estimator: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the writer (the fit calls this however it ends, errors and Ctrl-C included)."""
        writer = getattr(self, "_writer", None)
        self._writer = None
        if writer is not None:
            writer.close()

    def __getstate__(self) -> dict:
        return {"log_dir": self.log_dir}  # never the writer: it holds a file and a thread

    def __repr__(self) -> str:
        return f"TensorBoardLogger({None if self.log_dir is None else str(self.log_dir)!r})"
