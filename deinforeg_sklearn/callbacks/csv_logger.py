"""A CSV file with one row per epoch: the scalars of ``history_`` (``flat_record``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from deinforeg_sklearn.callbacks.base import Callback
from deinforeg_sklearn.callbacks.records import flat_record


class CSVLogger(Callback):
    """Write each epoch's losses, accuracies, validation scores, rate and time to a CSV file.

    The file is opened, appended to and closed at every epoch, so the logger never holds an
    open file (it survives ``clone``, pickle and parallel searches) and a crash loses no
    finished epoch. A fit that starts a new model (its first epoch is epoch 1) starts the file
    over, with a header; a warm start or ``partial_fit`` appends to it.

    Parameters
    ----------
    path : str or path-like
        The CSV file. Fits running at the same time need one path each: ``{fit}`` is not
        expanded here (use a path per candidate, or the estimator's ``checkpoint`` for
        per-fit folders).

    Examples
    --------
    >>> from deinforeg_sklearn import DeInfoRegClassifier
    >>> from deinforeg_sklearn.callbacks import CSVLogger
    >>> clf = DeInfoRegClassifier(callbacks=[CSVLogger("train-log.csv")])  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path

    def on_fit_begin(self, estimator: Any) -> None:
        self._columns: list[str] | None = None

    def on_epoch_end(self, estimator: Any, record: dict) -> None:
        row = flat_record(record)
        path = Path(self.path)
        columns = getattr(self, "_columns", None)
        if columns is None:  # the first epoch of this fit
            if record["epoch"] == 1 or not path.exists() or path.stat().st_size == 0:
                columns = list(row)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(columns)
            else:  # continuing a model: the columns the file already has
                with path.open(newline="") as handle:
                    columns = next(csv.reader(handle))
            self._columns = columns
        with path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore").writerow(row)

    def __getstate__(self) -> dict:
        # the columns belong to one fit; a copy starts with none
        return {"path": self.path}

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r})"
