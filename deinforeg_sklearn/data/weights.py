"""Sample and class weights as the rows each epoch visits.

Why by sampling and not by weighting the loss: the local loss (variance, invariance,
covariance) is a statistic of the whole batch, and BatchNorm in the encoders normalises by the
batch too. A row with weight 0 inside a batch would still move both, so weighted loss terms
could not make "weight 0" mean "row absent". Sampling can:

- **integer weights** repeat rows. Index ``i`` appears ``w[i]`` times among the rows of a fit,
  so a fit with integer weights visits exactly the batches of a fit on
  ``np.repeat(X, w, axis=0)`` with the same ``random_state`` (validation split included). Weight
  0 drops the row.
- **other weights** (e.g. ``class_weight="balanced"``) draw each epoch's rows with replacement,
  with probability proportional to the weight, as many as there are rows of positive weight.
  The expected contribution of every row to an epoch's gradient is then proportional to its
  weight, and scaling all weights by a constant changes nothing.

Validation rows carry their weight into the validation accuracy (a weighted mean), so early
stopping and ``inference="best"`` follow the weighted score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

from deinforeg_sklearn.data.split import validation_split


def check_weights(
    sample_weight: object, class_weight: object, y: np.ndarray, classes: np.ndarray
) -> np.ndarray | None:
    """Per-row weights from ``sample_weight`` and ``class_weight`` (None: every row weighs 1).

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
    class_weight : dict, "balanced" or None
        Dict keys are class labels (values of ``y``); missing classes weigh 1.
    y : ndarray of shape (n_samples,)
        Labels of the rows.
    classes : ndarray
        All classes of the fit.

    Raises
    ------
    ValueError
        A weight that is negative or not finite, a length that differs from y's, all weights 0,
        or a class in ``class_weight`` that is not among ``classes``.
    """
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.ndim == 0:
            weights = np.full(len(y), float(weights))
        if weights.shape != (len(y),):
            raise ValueError(
                f"sample_weight has shape {weights.shape} but y has {len(y)} rows: pass one weight per row."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                "sample_weight must be finite and non-negative (0 leaves a row out); got "
                f"min={np.nanmin(weights)!r}, with {int(np.sum(~np.isfinite(weights)))} non-finite."
            )
        weights = weights.copy()  # never write into the caller's array
    if class_weight is not None:
        if isinstance(class_weight, Mapping):
            unknown = [c for c in class_weight if not np.isin(c, classes)]
            if unknown:
                raise ValueError(
                    f"class_weight names classes {unknown!r} that are not among the classes "
                    f"{classes.tolist()!r}: use the labels of y as keys."
                )
            bad = {c: w for c, w in class_weight.items() if not (np.isfinite(w) and w >= 0)}
            if bad:
                raise ValueError(f"class_weight values must be finite and non-negative, got {bad!r}.")
            per_class = {c: class_weight.get(c, 1.0) for c in np.unique(y)}
        else:
            per_class = class_weight  # "balanced": sklearn's n_samples / (n_classes * count)
        by_class = compute_sample_weight(per_class, y)
        weights = by_class if weights is None else weights * by_class
    if weights is not None and not np.any(weights > 0):
        raise ValueError("Every sample weight is zero: at least two rows need a positive weight to train.")
    return weights


@dataclass(frozen=True)
class WeightedRows:
    """The training and validation rows of a fit under per-row weights.

    Attributes
    ----------
    train_idx : ndarray
        Training rows; with integer weights a row appears once per unit of weight.
    train_p : ndarray or None
        Sampling probability of each entry of ``train_idx`` (None: visit each entry once
        per epoch, in a random order).
    val_idx : ndarray or None
        Validation rows (repeated as training rows are, for integer weights).
    val_weight : ndarray or None
        Weight of each validation row in the validation accuracy (None: equal weights).
    """

    train_idx: np.ndarray
    train_p: np.ndarray | None
    val_idx: np.ndarray | None
    val_weight: np.ndarray | None


def weighted_rows(y: np.ndarray, weights: np.ndarray | None, fraction: float, seed: int) -> WeightedRows:
    """Split rows into training and validation rows and say how each epoch visits them.

    Parameters
    ----------
    y : ndarray
        Labels (class indices) of every row that can train or validate.
    weights : ndarray or None
        Per-row weights (None: all 1).
    fraction : float
        Share held out for validation (0: none, e.g. when the user passed ``X_val``).
    seed : int
        Seeds the split.
    """
    if weights is None:
        train, val = validation_split(y, fraction, seed)
        return WeightedRows(train, None, val, None)
    if np.all(weights == np.round(weights)):
        # Repetition by index: the fit sees the rows of np.repeat(X, weights) in the same order.
        rows = np.repeat(np.arange(len(y)), weights.astype(np.int64))
        train, val = validation_split(y[rows], fraction, seed)
        return WeightedRows(rows[train], None, None if val is None else rows[val], None)
    rows = np.flatnonzero(weights > 0)
    train_pos, val_pos = validation_split(y[rows], fraction, seed)
    train = rows[train_pos]
    val = None if val_pos is None else rows[val_pos]
    p = weights[train] / weights[train].sum()
    return WeightedRows(train, p, val, None if val is None else weights[val])
