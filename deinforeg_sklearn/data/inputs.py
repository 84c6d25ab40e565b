"""Checking X and turning it into the tensors the blocks read."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

#: The padding mask of a batch (token input), or None: ``token_mask`` or ``no_mask``.
MaskFn = Callable[[torch.Tensor], torch.Tensor | None]


def sample_shape(n_features: int, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Shape of one sample: ``input_shape`` if given (checked against ``n_features``)."""
    if input_shape is None:
        return (n_features,)
    shape = tuple(input_shape)
    if not shape or any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}.")
    if math.prod(shape) != n_features:
        raise ValueError(
            f"input_shape={shape} holds {math.prod(shape)} values but X has {n_features} features "
            "per row: the product of input_shape must equal n_features."
        )
    return tuple(int(d) for d in shape)


def as_token_ids(X: np.ndarray) -> np.ndarray:
    """Check that X holds non-negative integer token ids and return them as int64."""
    if not np.all(np.isfinite(X)) or not np.all(np.equal(np.mod(X, 1), 0)) or np.any(X < 0):
        raise ValueError(
            "An Embedding first block reads token ids: X must hold non-negative integers "
            "(0 = padding, 1 = out-of-vocabulary)."
        )
    return X.astype(np.int64)


def to_tensor(X: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """A C-contiguous CPU tensor of rows reshaped to ``shape`` (a copy: X may be read-only)."""
    return torch.from_numpy(np.array(X, copy=True, order="C").reshape((len(X), *shape)))


def token_mask(x: torch.Tensor) -> torch.Tensor:
    """Valid (non-padding) positions of a batch of token ids."""
    return x != 0


def no_mask(x: torch.Tensor) -> None:
    """Inputs that are not token ids carry no padding mask."""
    return None
