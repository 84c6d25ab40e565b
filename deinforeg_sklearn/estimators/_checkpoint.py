"""What identifies a fit for its checkpoint: the estimator, its parameters and the data's shape.

A checkpoint is resumed only by a fit that would train the same way: same estimator class,
same training parameters, same data (shape, dtype, classes, and digests of the labels, the
weights and a few rows of X), and the same starting point (a warm start continues from its
number of epochs). Parameters that only say where or how loudly the fit runs may change
between the crash and the resume.

Why digests of the data, not only its shape: the folds of a cross-validation have the same
shape, and a fold must never resume another fold's checkpoint. Hashing all of X would cost a
pass over data that may be larger than memory, so X contributes 16 evenly spaced rows; the
labels and weights (one value per row) are hashed whole.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import scipy.sparse as sp

from deinforeg_sklearn.training.checkpoint import Checkpointer

#: Parameters a resumed fit may change: where it runs and what it reports, not what it learns.
#: (Engines train the same network; see docs/pipeline.md.)
RESUMABLE_CHANGES = frozenset(
    {
        "checkpoint",
        "verbose",
        "devices",
        "engine",
        "placement",
        "keep_last_epoch",
        "warm_start",
        "num_workers",
        # loggers and hooks: new objects on every run (their repr holds an address), and a
        # resumed fit may well log elsewhere
        "callbacks",
    }
)


#: Parameters added after checkpoints were first written, with their defaults: left out of the
#: fingerprint while at that default, so that an unfinished fit written before they existed
#: (which trained as the default does) still resumes.
ADDED_LATER = {"lr_schedule": "cosine", "warmup_epochs": 0}


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


def digest(*arrays: np.ndarray) -> str:
    """A short sha1 of the arrays' values (in a fixed dtype and layout)."""
    sha = hashlib.sha1()
    for array in arrays:
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()[:16]


def _row_sample(X) -> str:
    """Digest of 16 evenly spaced rows of an array or sparse matrix (as their dense values, so
    sparse X and its dense copy, which train alike, match); a Dataset is identified by its
    labels alone."""
    sparse = sp.issparse(X)
    if not (sparse or isinstance(X, np.ndarray)):
        return "dataset"
    rows = np.unique(np.linspace(0, X.shape[0] - 1, 16).astype(np.int64))
    sample = X[rows].toarray() if sparse else X[rows]
    return digest(np.asarray(sample, dtype=np.float64))


def fingerprint(
    estimator, X, y: np.ndarray, classes: np.ndarray, start_epoch: int, weights: np.ndarray | None
) -> dict:
    """The dict a checkpoint must match to be resumed by this fit."""
    params = {
        name: plain(value)
        for name, value in sorted(estimator.get_params(deep=False).items())
        if name not in RESUMABLE_CHANGES and not (name in ADDED_LATER and value == ADDED_LATER[name])
    }
    return {
        "estimator": type(estimator).__name__,
        "params": params,
        "data": {
            "shape": list(X.shape),
            "dtype": str(X.dtype),
            "classes": [repr(c) for c in classes.tolist()],
            "labels": digest(np.searchsorted(classes, y).astype(np.int64)),
            "weights": None if weights is None else digest(weights.astype(np.float64)),
            "rows": _row_sample(X),
        },
        "start_epoch": start_epoch,
    }


#: The placeholder of ``checkpoint`` that becomes each fit's key (:func:`fit_key`).
FIT_KEY = "{fit}"


def fit_key(print_: dict) -> str:
    """A short digest of a fit's fingerprint: the name of its own checkpoint subfolder.

    Two fits get the same key exactly when one may resume the other's checkpoint (same
    estimator, training parameters, data digests and starting epoch), so the candidates and
    folds of a search, which share one ``checkpoint`` value, each write and resume their own.
    """
    return hashlib.sha1(json.dumps(print_, sort_keys=True).encode()).hexdigest()[:16]


def checkpointer_for(
    estimator, X, y: np.ndarray, classes: np.ndarray, start_epoch: int, weights: np.ndarray | None
) -> Checkpointer | None:
    """The checkpointer of this fit, or None without a ``checkpoint`` folder.

    ``{fit}`` in the path is replaced by the fit's :func:`fit_key`.
    """
    folder = estimator.checkpoint
    if folder is None:
        return None
    wanted = fingerprint(estimator, X, y, classes, start_epoch, weights)
    folder = os.fspath(folder)
    if FIT_KEY in folder:
        folder = folder.replace(FIT_KEY, fit_key(wanted))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"checkpoint={folder!r} is a file: pass a folder (it is created when missing).")
    return Checkpointer(folder, wanted)
