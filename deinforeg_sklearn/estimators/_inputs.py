"""Checking what ``fit``, ``predict`` and ``X_val`` receive: arrays (read in place) or a Dataset.

Arrays go through scikit-learn's ``validate_data`` (which also records ``n_features_in_`` and
``feature_names_in_``), keeping any real or integer dtype so that nothing is copied. A torch
``Dataset`` cannot go through it: it is read once by :func:`~deinforeg_sklearn.data.dataset.dataset_input`
and its flat size is checked against ``n_features_in_`` here in the same way.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_features, validate_data

from deinforeg_sklearn._frames import user_stacklevel
from deinforeg_sklearn.data.dataset import DatasetInput, dataset_input, is_dataset
from deinforeg_sklearn.data.inputs import KEPT_DTYPES, as_token_ids, sample_shape
from deinforeg_sklearn.data.magnitude import overflow_message, overflowing_columns
from deinforeg_sklearn.data.sparse import ACCEPTED_FORMATS, is_sparse
from deinforeg_sklearn.estimators._plan import AUTO_BATCH_SIZE


def training_input(estimator, X, y, reset: bool, tokens: bool, sparse_refusal: str | None):
    """Checked (X, y) of ``fit``: an array read in place, or a checked Dataset and its labels.

    ``sparse_refusal``: why the first block cannot read sparse X (``data/sparse.py``), or None
    when it can; sparse X is then kept sparse (CSR as given, other formats converted to CSR).
    """
    _refuse_sparse(X, sparse_refusal)
    if is_dataset(X):
        X = dataset_input(X, y, estimator.num_workers)
        _check_n_features(estimator, X.shape[1], reset)
        y = X.summary.y
        if tokens:
            _check_token_dataset(X)
    else:
        # Real and integer X are kept as given (memory maps stay on disk); batches become
        # float32 one at a time (data.inputs.Rows).
        X, y = validate_data(
            estimator, X, y, reset=reset, dtype=np.float64 if tokens else KEPT_DTYPES,
            accept_sparse=_formats(sparse_refusal),
        )  # fmt: skip
        if tokens:
            X = as_token_ids(X)
    check_classification_targets(y)
    if X.shape[0] < 2:
        raise ValueError(f"Got {X.shape[0]} sample: training needs at least 2 samples (n_samples=1).")
    return X, y


def validation_input(
    estimator, X_val, y_val, n_features: int, classes_: np.ndarray, tokens: bool, sparse_refusal: str | None
):
    """X_val and y_val checked against the training data: same features, known classes.

    Returns X_val (array, sparse matrix or Dataset) and the class indices of its labels.
    """
    _refuse_sparse(X_val, sparse_refusal)
    if is_dataset(X_val):
        X_val = dataset_input(X_val, y_val, estimator.num_workers)
        y_val = X_val.summary.y
        if tokens:
            _check_token_dataset(X_val)
    elif y_val is None:
        raise ValueError("Pass X_val and y_val together (or neither, to split off validation_fraction).")
    found = X_val.shape[1] if isinstance(X_val, DatasetInput) else _num_features(X_val)
    if found != n_features:
        raise ValueError(
            f"X_val has {found} features but X has {n_features}: "
            "the validation rows must have the training rows' features."
        )
    if not isinstance(X_val, DatasetInput):
        X_val, y_val = validate_data(
            estimator, X_val, y_val, reset=False, dtype=np.float64 if tokens else KEPT_DTYPES,
            accept_sparse=_formats(sparse_refusal),
        )  # fmt: skip
        if tokens:
            X_val = as_token_ids(X_val)
    unknown = np.setdiff1d(np.unique(y_val), classes_)
    if len(unknown):
        raise ValueError(
            f"y_val has labels {unknown.tolist()} that are not among y's classes {classes_.tolist()}."
        )
    return X_val, np.searchsorted(classes_, y_val)


def prediction_input(estimator, X, tokens: bool, sparse_refusal: str | None):
    """Checked X of ``predict``: an array read in place, a sparse matrix, or a Dataset
    (items (x, y) or x)."""
    _refuse_sparse(X, sparse_refusal)
    if is_dataset(X):
        X = dataset_input(X, None, estimator.num_workers, labelled=False)
        _check_n_features(estimator, X.shape[1], reset=False)
        return X
    X = validate_data(
        estimator, X, reset=False, dtype=np.float64 if tokens else KEPT_DTYPES,
        accept_sparse=_formats(sparse_refusal),
    )  # fmt: skip
    return as_token_ids(X) if tokens else X


def warn_about_magnitude(estimator, X, scale: float | None, tokens: bool, where: str) -> None:
    """Warn when columns of X are too large for float32 training (``data/magnitude.py``).

    ``scale`` is the ``input_scale`` the blocks read X with. Token ids and Datasets are not
    checked: ids are not multiplied, and a Dataset would be read for it.
    """
    if tokens or isinstance(X, DatasetInput):
        return
    batch_size = getattr(estimator, "batch_size", AUTO_BATCH_SIZE)
    if isinstance(batch_size, str):  # "auto"; the rows split off for validation hardly move the limit
        batch_size = min(AUTO_BATCH_SIZE, X.shape[0])
    columns, peak = overflowing_columns(X, scale, batch_size)
    if len(columns):
        names = getattr(estimator, "feature_names_in_", None)
        message = overflow_message(columns, peak, batch_size, names, where)
        warnings.warn(message, UserWarning, stacklevel=user_stacklevel())


def input_sample_shape(X, input_shape) -> tuple[int, ...]:
    """The shape of one sample: ``input_shape``, else a Dataset's own sample shape, else flat."""
    if isinstance(X, DatasetInput) and input_shape is None:
        return X.summary.sample_shape
    return sample_shape(X.shape[1], input_shape)


def _refuse_sparse(X, refusal: str | None) -> None:
    """Sparse X that the first block cannot read: the reason, before any conversion or work."""
    if refusal is not None and is_sparse(X):
        raise ValueError(refusal)


def _formats(refusal: str | None) -> tuple[str, ...] | bool:
    """``validate_data``'s ``accept_sparse``: CSR kept (others become CSR), or none."""
    return ACCEPTED_FORMATS if refusal is None else False


def _check_n_features(estimator, n_features: int, reset: bool) -> None:
    """``n_features_in_`` for Dataset input, as ``validate_data`` keeps it for arrays."""
    if reset:
        estimator.n_features_in_ = n_features
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )


def _check_token_dataset(X: DatasetInput) -> None:
    if X.summary.dtype.is_floating_point or X.min() < 0:
        raise ValueError(
            "An Embedding first block reads token ids: the Dataset's samples must hold "
            "non-negative integers (0 = padding, 1 = out-of-vocabulary)."
        )
