"""Checking X and turning it into the batches the blocks read."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch

from deinforeg_sklearn.data.dataset import DatasetInput, DatasetRows
from deinforeg_sklearn.data.sparse import SparseRows, is_sparse

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


#: dtypes X keeps as given (no copy); anything else (bool, uint16, object...) becomes float32.
KEPT_DTYPES = [np.float32, np.float64, np.float16, np.uint8, np.int8, np.int16, np.int32, np.int64]


class Rows:
    """The rows of X as the blocks read them, converted one batch at a time.

    Why: X may be uint8 images or a memory map larger than RAM, and one float32 copy of it
    would be 4x its size. ``Rows`` keeps X as given (a view of the caller's array, not a copy)
    and turns each batch into float32, times ``scale``, on the device it goes to: the batch
    travels in X's own dtype (uint8: a quarter of the bytes) and is converted there.

    Token ids (int64) are handed over unchanged.

    Parameters
    ----------
    data : tensor of shape (n_rows, *sample_shape)
        The rows, in X's dtype.
    scale : float or None
        Multiplies every converted batch (e.g. 1/255 for 0-255 images); None: no scaling.
    tokens : bool
        The rows are token ids: no conversion and no scaling.
    backing : (str, int) or None
        The file and byte offset of the rows when X is a memory map (other processes then map
        the same file: ``data/mapped.py``); None for rows in memory.
    """

    def __init__(
        self,
        data: torch.Tensor,
        scale: float | None = None,
        tokens: bool = False,
        backing: tuple[str, int] | None = None,
    ) -> None:
        self.data, self.scale, self.tokens, self.backing = data, scale, tokens, backing

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the batches (float32, or int64 for token ids), not of the stored rows."""
        return self.data.dtype if self.tokens else torch.float32

    def __len__(self) -> int:
        return len(self.data)

    @property
    def storage_dtype(self) -> torch.dtype:
        """The dtype the rows are stored in (X's own)."""
        return self.data.dtype

    def expect(self, batches: object) -> None:
        """Rows in memory need no read-ahead (see ``DatasetRows.expect``)."""

    def take(self, index: np.ndarray) -> Rows:
        """The rows at ``index`` (a copy of those rows only, in the stored dtype)."""
        return Rows(self.data[torch.from_numpy(np.asarray(index))], self.scale, self.tokens)

    def batch(self, index: np.ndarray | slice, device: torch.device) -> torch.Tensor:
        """Rows ``index`` on ``device``, as the first block reads them."""
        key = index if isinstance(index, slice) else torch.from_numpy(np.asarray(index))
        xb = self.data[key].to(device, non_blocking=True)
        if self.tokens:
            return xb
        xb = xb.to(torch.float32)
        return xb * self.scale if self.scale is not None else xb


#: The rows of a fit: an array read in place, sparse rows densified per batch, or a Dataset read
#: per batch (same interface).
RowSource = Rows | SparseRows | DatasetRows


def to_rows(
    X: np.ndarray,
    shape: tuple[int, ...],
    scale: float | None = None,
    tokens: bool = False,
    num_workers: int = 0,
) -> RowSource:
    """``Rows`` over X reshaped to ``shape``: a view of X whenever X is C-contiguous.

    X may be read-only (a memory map opened with ``mode="r"``): the rows are only ever read.
    A checked Dataset (``DatasetInput``) becomes its ``DatasetRows``, a scipy sparse matrix
    its ``SparseRows``.
    """
    if isinstance(X, DatasetInput):
        return X.rows(shape, scale, tokens, num_workers)
    if is_sparse(X):
        return SparseRows(X, shape, scale)
    from deinforeg_sklearn.data.mapped import file_backing

    X = np.ascontiguousarray(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*", category=UserWarning)
        data = torch.from_numpy(X.reshape((len(X), *shape)))
    return Rows(data, scale, tokens, file_backing(X))


def token_mask(x: torch.Tensor) -> torch.Tensor:
    """Valid (non-padding) positions of a batch of token ids."""
    return x != 0


def no_mask(x: torch.Tensor) -> None:
    """Inputs that are not token ids carry no padding mask."""
    return None
