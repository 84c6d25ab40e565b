"""What identifies a fit for its checkpoint: the estimator, its parameters and the data's shape.

A checkpoint is resumed only by a fit that would train the same way: same estimator class,
same training parameters, same data shape, dtype and classes, and the same starting point (a
warm start continues from its number of epochs). Parameters that only say where or how
loudly the fit runs may change between the crash and the resume.
"""

from __future__ import annotations

import os

import numpy as np

from deinforeg_sklearn.training.checkpoint import Checkpointer

#: Parameters a resumed fit may change: where it runs and what it reports, not what it learns.
#: (Engines train the same network; see docs/pipeline.md.)
RESUMABLE_CHANGES = frozenset(
    {"checkpoint", "verbose", "devices", "engine", "placement", "keep_last_epoch", "warm_start"}
)


def plain(value: object) -> object:
    """A parameter as a value that compares alike in another process.

    ``repr`` of a function or a RandomState holds a memory address, which changes with every
    process, so those are named by their type instead.
    """
    if isinstance(value, np.random.RandomState):
        return "RandomState"
    if callable(value) and not isinstance(value, type):
        kind = value if hasattr(value, "__qualname__") else type(value)
        return f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return repr(value)


def fingerprint(estimator, X: np.ndarray, classes: np.ndarray, start_epoch: int, weighted: bool) -> dict:
    """The dict a checkpoint must match to be resumed by this fit."""
    params = {
        name: plain(value)
        for name, value in sorted(estimator.get_params(deep=False).items())
        if name not in RESUMABLE_CHANGES
    }
    return {
        "estimator": type(estimator).__name__,
        "params": params,
        "data": {
            "shape": list(X.shape),
            "dtype": str(X.dtype),
            "classes": [repr(c) for c in classes.tolist()],
            "weighted": weighted,
        },
        "start_epoch": start_epoch,
    }


def checkpointer_for(
    estimator, X: np.ndarray, classes: np.ndarray, start_epoch: int, weighted: bool
) -> Checkpointer | None:
    """The checkpointer of this fit, or None without a ``checkpoint`` folder."""
    folder = estimator.checkpoint
    if folder is None:
        return None
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"checkpoint={folder!r} is a file: pass a folder (it is created when missing).")
    return Checkpointer(folder, fingerprint(estimator, X, classes, start_epoch, weighted))
