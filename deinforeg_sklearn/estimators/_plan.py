"""Turning checked arrays and the estimator's batching parameters into a ``FitPlan``.

A pure helper: it reads no estimator and warns no one. A setting it had to change comes back as
a message, and the estimator warns with it, so that the warning points at the user's call.
"""

from __future__ import annotations

import numpy as np
import torch

from deinforeg_sklearn.data.dataset import DatasetInput
from deinforeg_sklearn.data.inputs import no_mask, to_rows, token_mask
from deinforeg_sklearn.data.weights import weighted_rows
from deinforeg_sklearn.training.plan import Augment, FitPlan

#: Batch size of ``batch_size="auto"`` (or the number of training samples, if fewer).
AUTO_BATCH_SIZE = 128


def make_plan(
    X: np.ndarray | DatasetInput,
    y_idx: np.ndarray,
    shape: tuple[int, ...],
    *,
    validation_fraction: float | None,
    batch_size: int | str,
    epochs: int,
    tokens: bool,
    augment: Augment,
    seed: int,
    device: torch.device,
    weights: np.ndarray | None = None,
    X_val: np.ndarray | DatasetInput | None = None,
    y_val_idx: np.ndarray | None = None,
    input_scale: float | None = None,
    num_workers: int = 0,
) -> tuple[FitPlan, str | None]:
    """The plan of a fit, and a warning for the user when ``batch_size`` had to shrink.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), or DatasetInput
        Checked rows in any dtype of ``KEPT_DTYPES`` (token ids as int64 when ``tokens``), or a
        checked torch Dataset; the plan reads them in place, batch by batch.
    y_idx : ndarray of shape (n_samples,)
        Class indices into ``classes_``.
    shape : tuple of int
        Shape of one sample.
    validation_fraction : float or None
        Share held out (stratified, drawn with ``seed``); 0 or None holds out nothing.
    batch_size : int or "auto"
    epochs : int
    tokens : bool
        X holds token ids (batches carry a padding mask).
    augment : callable or None
    seed : int
        Seeds the split and the batch order.
    device : torch.device
        Where evaluation batches go first.
    weights : ndarray or None
        Per-row weights of X (sample and class weights), as :mod:`~deinforeg_sklearn.data.weights`
        applies them; None: every row once.
    X_val, y_val_idx : ndarray (or DatasetInput) and ndarray, or None
        A validation set of the user's: it replaces the split (``validation_fraction`` is
        ignored).
    input_scale : float or None
        Multiplies every batch once it is float32 (e.g. 1/255).
    num_workers : int
        DataLoader processes that load a Dataset's batches ahead (Dataset input only).
    """
    fraction = 0.0 if X_val is not None else validation_fraction or 0.0
    rows = weighted_rows(y_idx, weights, fraction, seed)
    train_idx, val_idx = rows.train_idx, rows.val_idx
    if len(train_idx) < 2:
        raise ValueError(
            f"Only {len(train_idx)} training row(s) remain after weighting and the validation split: "
            "training needs at least 2 (give more rows positive sample_weight, or lower validation_fraction)."
        )
    size = min(AUTO_BATCH_SIZE, len(train_idx)) if batch_size == "auto" else int(batch_size)
    message = None
    if size > len(train_idx):
        message = (
            f"batch_size={size} is larger than the {len(train_idx)} training samples; using {len(train_idx)}."
        )
        size = len(train_idx)
    plan = FitPlan(
        X=to_rows(X, shape, input_scale, tokens, num_workers),
        y=torch.from_numpy(y_idx.astype(np.int64)),
        train_idx=train_idx,
        val_idx=val_idx,
        batch_size=size,
        epochs=epochs,
        mask_fn=token_mask if tokens else no_mask,
        augment=augment,
        rng=np.random.default_rng(seed),
        device=device,
        train_p=rows.train_p,
        val_weight=rows.val_weight,
        X_val=None if X_val is None else to_rows(X_val, shape, input_scale, tokens, num_workers),
        y_val=None if y_val_idx is None else torch.from_numpy(y_val_idx.astype(np.int64)),
        seed=seed,
    )
    return plan, message
