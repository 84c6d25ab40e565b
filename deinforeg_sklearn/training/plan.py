"""The data and batching of one fit: what the fit loop and the engines read, and nothing else.

The estimator checks the user's data and parameters and builds one ``FitPlan``; from then on
nothing downstream looks at the estimator. That is what lets a spawned pipeline rank run the
same fit loop on a plan it received, without a copy of the estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from deinforeg_sklearn.data.batches import epoch_batches
from deinforeg_sklearn.data.inputs import MaskFn, RowSource, token_mask
from deinforeg_sklearn.data.subset import RowSubset

#: Augmentation of a training batch (N, C, H, W), or None.
Augment = Callable[[torch.Tensor], torch.Tensor] | None


@dataclass(kw_only=True)
class FitPlan:
    """The rows, split, batches and per-batch transforms of one fit.

    Attributes
    ----------
    X : Rows or DatasetRows
        All rows, each reshaped to the sample shape (CPU, in X's own dtype: batches are
        converted one at a time).
    y : tensor
        Class indices (int64) of all rows.
    train_idx, val_idx : ndarray, ndarray or None
        Rows of X that train; rows of X that score each epoch (None: no validation split).
    batch_size : int
    epochs : int
        Epochs this fit runs at most.
    mask_fn : MaskFn
        The padding mask of a batch (token input) or None.
    augment : Augment
        Applied to each training batch on its device; None for none.
    rng : numpy Generator
        Draws the batch order of every epoch.
    device : torch.device
        Where validation batches start (the first stage's device).
    train_p : ndarray or None
        Non-integer sample weights: each epoch draws ``len(train_idx)`` rows with replacement,
        entry ``i`` with probability ``train_p[i]`` (see :mod:`deinforeg_sklearn.data.weights`).
        None: each entry of ``train_idx`` once per epoch, shuffled.
    val_weight : ndarray or None
        Weights of the validation rows in the validation accuracy (None: equal).
    X_val, y_val : Rows or DatasetRows, and tensor; or None
        The user's validation set, when given (then ``val_idx`` is None).
    seed : int
        The fit's seed (``rng`` was made from it); a pipeline's helper ranks derive their
        torch seeds from it.
    """

    X: RowSource
    y: torch.Tensor
    train_idx: np.ndarray
    val_idx: np.ndarray | None
    batch_size: int
    epochs: int
    mask_fn: MaskFn
    augment: Augment
    rng: np.random.Generator
    device: torch.device
    train_p: np.ndarray | None = None
    val_weight: np.ndarray | None = None
    X_val: RowSource | None = None
    y_val: torch.Tensor | None = None
    seed: int = 0

    @property
    def validates(self) -> bool:
        """Whether every epoch ends with a validation pass."""
        return self.val_idx is not None or self.X_val is not None

    def validation(self) -> tuple[RowSource | RowSubset, np.ndarray, np.ndarray | None]:
        """The validation rows, their class indices and their weights (None: equal)."""
        if self.X_val is not None:
            return self.X_val, self.y_val.numpy(), None
        # read in place, batch by batch: no copy of the split's rows (data/subset.py)
        return RowSubset(self.X, self.val_idx), self.y[self.val_idx].numpy(), self.val_weight

    def epoch_batches(self) -> list[np.ndarray]:
        """Row indices of each batch of the next epoch (draws from ``rng``: every rank alike)."""
        if self.train_p is None:
            return [self.train_idx[b] for b in epoch_batches(len(self.train_idx), self.batch_size, self.rng)]
        drawn = self.rng.choice(self.train_idx, size=len(self.train_idx), p=self.train_p)
        return [drawn[b] for b in epoch_batches(len(drawn), self.batch_size, None)]

    @property
    def n_batches(self) -> int:
        """Batches per epoch (a last batch of one sample is merged into the one before)."""
        return len(epoch_batches(len(self.train_idx), self.batch_size, None))

    @property
    def mask_steps(self) -> int | None:
        """Length of the padding mask that travels with each batch (token input), or None."""
        return int(self.X.shape[1]) if self.mask_fn is token_mask else None
