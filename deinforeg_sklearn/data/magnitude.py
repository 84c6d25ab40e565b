"""Inputs too large for float32, found before training: the columns that would overflow.

Why: the blocks compute in float32, and the first block's BatchNorm (like the local loss after
it) sums squares of its inputs' linear combinations over a batch. A column whose values reach
``sqrt(float32 max / batch_size)`` (about 1.6e18 at batch 128) makes that sum overflow to
inf. Nothing raises: BatchNorm divides by an infinite variance, every block's output becomes a
constant, the losses stay finite, and the fit ends at chance accuracy (measured on the digits:
x 1e17 trains to 0.98, x 1e18 to 0.10, by DeInfoReg and BP alike). A warning that names the
columns says what went wrong before the time is spent.

The check is cheap on purpose: it reads at most ``SAMPLE_ROWS`` rows, evenly spaced over X, so
that a memory map is not read a second time (``validate_data`` has read it once already), and
it reads them ``CHUNK_BYTES`` at a time: 4,096 rows of 65,536 TF-IDF columns are 2 GiB in
float64, more than the rest of such a fit needs (measured: a 4,000 x 65,536 float32 fit
held 5 GiB at its peak when the sample was converted in one piece). A
column that is large only in rows the sample skips goes unnoticed; the collapse check after
the fit (``training/collapse.py``) then still says that training failed.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

#: Rows the check reads at most (evenly spaced over X).
SAMPLE_ROWS = 4096

#: Bytes of float64 sample the check holds at once (at least one row).
CHUNK_BYTES = 16 * 2**20

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
        magnitude = _dense_magnitude(X, rows)
    magnitude *= 1.0 if scale is None else abs(float(scale))
    return np.flatnonzero(magnitude > overflow_limit(batch_size)), float(magnitude.max())


def _dense_magnitude(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The largest magnitude of each (flattened) column over ``rows``, ``CHUNK_BYTES`` at a time."""
    width = int(np.prod(X.shape[1:], dtype=np.int64))
    step = max(1, CHUNK_BYTES // (8 * max(width, 1)))
    magnitude = np.zeros(width, dtype=np.float64)
    for start in range(0, len(rows), step):
        # float64 before abs: abs of an integer dtype's minimum overflows in that dtype
        chunk = np.asarray(X[rows[start : start + step]]).reshape(-1, width).astype(np.float64)
        np.maximum(magnitude, np.abs(chunk).max(axis=0), out=magnitude)
    return magnitude


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
