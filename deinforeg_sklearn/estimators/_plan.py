"""Turning checked arrays and the estimator's batching parameters into a ``FitPlan``.

A pure helper: it reads no estimator and warns no one. A setting it had to change comes back as
a message, and the estimator warns with it, so that the warning points at the user's call.
"""

from __future__ import annotations

import numpy as np
import torch

from deinforeg_sklearn.data.inputs import no_mask, to_tensor, token_mask
from deinforeg_sklearn.data.split import validation_split
from deinforeg_sklearn.training.plan import Augment, FitPlan

#: Batch size of ``batch_size="auto"`` (or the number of training samples, if fewer).
AUTO_BATCH_SIZE = 128


def make_plan(
    X: np.ndarray,
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
) -> tuple[FitPlan, str | None]:
    """The plan of a fit, and a warning for the user when ``batch_size`` had to shrink.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Checked rows (token ids as int64 when ``tokens``).
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
    """
    train_idx, val_idx = validation_split(y_idx, validation_fraction or 0.0, seed)
    size = min(AUTO_BATCH_SIZE, len(train_idx)) if batch_size == "auto" else int(batch_size)
    message = None
    if size > len(train_idx):
        message = (
            f"batch_size={size} is larger than the {len(train_idx)} training samples; using {len(train_idx)}."
        )
        size = len(train_idx)
    plan = FitPlan(
        X=to_tensor(X, shape),
        y=torch.from_numpy(y_idx.astype(np.int64)),
        train_idx=train_idx,
        val_idx=val_idx,
        batch_size=size,
        epochs=epochs,
        mask_fn=token_mask if tokens else no_mask,
        augment=augment,
        rng=np.random.default_rng(seed),
        device=device,
    )
    return plan, message
