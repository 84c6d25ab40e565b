"""Inputs too large for float32, found before training: the columns that would overflow.

Why: the blocks compute in float32, and the first block's BatchNorm (like the local loss after
it) sums squares of its inputs' linear combinations over a batch. A column whose values reach
``sqrt(float32 max / batch_size)`` (about 1.6e18 at batch 128) makes that sum overflow to
inf. Nothing raises: BatchNorm divides by an infinite variance, every block's output becomes a
constant, the losses stay finite, and the fit ends at chance accuracy (measured on the digits:
x 1e17 trains to 0.98, x 1e18 to 0.10, by DeInfoReg and BP alike). A warning that names the
columns says what went wrong before the time is spent.

The check is cheap on purpose: it reads at most ``SAMPLE_ROWS`` rows, evenly spaced over X, so
that a memory map is not read a second time (``validate_data`` has read it once already). A
column that is large only in rows the sample skips goes unnoticed; the collapse check after
the fit (``training/collapse.py``) then still says that training failed.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

#: Rows the check reads at most (evenly spaced over X).
SAMPLE_ROWS = 4096

#: Column names the warning lists at most.
NAMED_COLUMNS = 10


def overflow_limit(batch_size: int) -> float:
    """The largest input magnitude whose squares, summed over ``batch_size`` rows, fit float32."""
    return math.sqrt(float(np.finfo(np.float32).max) / max(int(batch_size), 1))


def overflowing_columns(X: np.ndarray, scale: float | None, batch_size: int) -> tuple[np.ndarray, float]:
    """Indices of the columns of X (flattened rows) above :func:`overflow_limit`, and X's peak.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        Rows as given (any real or integer dtype, a memory map or a sparse matrix too).
    scale : float or None
        ``input_scale``: the blocks read ``X * scale``.
    batch_size : int
        Rows per training batch.

    Returns
    -------
    columns : ndarray of int
        Column indices whose largest sampled magnitude, times ``|scale|``, exceeds the limit.
    peak : float
        The largest sampled magnitude times ``|scale|`` (0 for an empty X).
    """
    n = X.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0.0
    rows = np.arange(n) if n <= SAMPLE_ROWS else np.linspace(0, n - 1, SAMPLE_ROWS).astype(np.int64)
    # float64: the magnitudes of interest are far above what float32 squares can hold
    if sp.issparse(X):  # the sampled rows' non-zeros (a column's zeros never overflow)
        magnitude = abs(X[rows].astype(np.float64)).max(axis=0).toarray().ravel()
    else:
        sample = np.asarray(X[rows]).reshape(len(rows), -1)
        magnitude = np.abs(sample.astype(np.float64, copy=False)).max(axis=0)
    magnitude *= 1.0 if scale is None else abs(float(scale))
    return np.flatnonzero(magnitude > overflow_limit(batch_size)), float(magnitude.max())


def overflow_message(
    columns: np.ndarray, peak: float, batch_size: int, names: np.ndarray | None, where: str
) -> str:
    """The warning for :func:`overflowing_columns`'s result (``where``: "fit" or "predict")."""
    shown = [str(names[c]) if names is not None else str(int(c)) for c in columns[:NAMED_COLUMNS]]
    more = f" and {len(columns) - NAMED_COLUMNS} more" if len(columns) > NAMED_COLUMNS else ""
    label = "columns" if names is None else "features"
    limit = (
        f"above {overflow_limit(batch_size):.3g}, where the first block's float32 sums of "
        f"squares over a batch of {batch_size} overflow to inf"
    )
    if where == "fit":
        effect = (
            "training fails: BatchNorm divides by an infinite variance, every block's output "
            "becomes a constant and the model predicts one class, with finite losses"
        )
    else:
        effect = "no float32 fit can train on such values, so these predictions are not meaningful"
    return (
        f"X has {len(columns)} {label} whose values reach {peak:.3g} (after input_scale), {limit}; "
        f"{effect}. {label.capitalize()}: {', '.join(shown)}{more}. Scale X first (e.g. "
        "sklearn.preprocessing.StandardScaler in a Pipeline), or set input_scale."
    )
