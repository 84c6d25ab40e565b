"""Sparse X (CSR/CSC, scipy arrays and matrices) read as dense batches, one batch at a time.

Why: the most common text pipeline in scikit-learn is ``TfidfVectorizer`` -> classifier, and
its output is a CSR matrix whose dense copy is far larger than memory (100k documents x 50k
terms: 20 GB in float32). The first dense block computes on dense float32 rows anyway, so the
matrix stays sparse and only the rows of the batch that is due become dense, as
:class:`~deinforeg_sklearn.data.inputs.Rows` converts uint8 rows batch by batch.

Invariant: a batch of :class:`SparseRows` equals the batch ``Rows`` gives for ``X.toarray()``,
bit for bit (both convert X's values to float32, then multiply by ``scale`` in float32), so a fit
on sparse X trains the same model as a fit on its dense copy (``tests/test_sparse.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

#: The format ``validate_data`` keeps as given; any other sparse format (CSC too) is converted to
#: CSR there, once, so that row access (batches, the magnitude check, the checkpoint digest)
#: never reads every column.
ACCEPTED_FORMATS = ("csr",)


def is_sparse(X: object) -> bool:
    """X is a scipy sparse array or matrix (any format)."""
    return sp.issparse(X)


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class SparseRows:
    """The rows of a sparse X as the blocks read them: dense float32 batches, made when due.

    Same interface as :class:`~deinforeg_sklearn.data.inputs.Rows`. The matrix is kept in CSR
    (the estimators' ``validate_data`` has converted any other format), and ``batch``
    densifies only the rows it is asked for.

    Parameters
    ----------
    matrix : scipy sparse array or matrix of shape (n_rows, n_features)
        The rows; CSR is kept as given (no copy).
    sample_shape : tuple of int
        The shape of one sample (its product is ``n_features``).
    scale : float or None
        Multiplies every batch once it is float32; None: no scaling.
    """

    tokens = False

    def __init__(self, matrix, sample_shape: tuple[int, ...], scale: float | None = None) -> None:
        self.matrix = matrix.tocsr()  # CSR itself when it is CSR already
        self.sample_shape, self.scale = tuple(sample_shape), scale

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.matrix.shape[0], *self.sample_shape))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the batches (float32), not of the stored values."""
        return torch.float32

    @property
    def storage_dtype(self) -> torch.dtype:
        """The dtype the non-zero values are stored in (X's own)."""
        return _torch_dtype(self.matrix.dtype)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def expect(self, batches: object) -> None:
        """Rows in memory need no read-ahead (see ``DatasetRows.expect``)."""

    def take(self, index: np.ndarray) -> SparseRows:
        """The rows at ``index`` (a sparse copy of those rows only)."""
        return SparseRows(self.matrix[np.asarray(index)], self.sample_shape, self.scale)

    def batch(self, index: np.ndarray | slice, device: torch.device) -> torch.Tensor:
        """Rows ``index`` on ``device``, dense float32 as the first block reads them."""
        key = index if isinstance(index, slice) else np.asarray(index)
        # float32 before densifying: the dense batch is half the size, and the values are
        # those of Rows (which converts X's dtype to float32 too)
        dense = self.matrix[key].astype(np.float32, copy=False).toarray()
        xb = torch.from_numpy(dense).reshape(len(dense), *self.sample_shape).to(device, non_blocking=True)
        return xb * self.scale if self.scale is not None else xb


#: What each kind of first block reads, for the refusal of sparse X.
_NEEDS = {"image": "images (C, H, W)", "sequence": "sequences (T, D)", "tokens": "token ids"}


def sparse_refusal(block: str, accepts: str, input_shape: tuple[int, ...] | None) -> str | None:
    """Why sparse X cannot feed this first block, or None when it can.

    Sparse rows are densified into flat batches, which only a first block of flat rows (Dense,
    or a custom block) reads: a block that needs a shape, or an ``input_shape`` of more than
    one dimension, refuses sparse X before any work.

    Parameters
    ----------
    block : str
        The first block's name (e.g. "Conv").
    accepts : str
        What it reads (``BlockSpec.accepts``).
    input_shape : tuple of int or None
        The shape of one sample the blocks are given.
    """
    if accepts in _NEEDS:
        return (
            f"Sparse X cannot feed a {block} first block, which reads {_NEEDS[accepts]}: sparse rows "
            "are densified batch by batch only for a first block that reads flat rows (Dense, or "
            "a custom block). Pass a dense array instead (X.toarray())."
        )
    if input_shape is not None and len(tuple(input_shape)) > 1:
        return (
            f"Sparse X is read as flat rows, but input_shape={tuple(input_shape)} asks for samples "
            "of another shape: drop input_shape, or pass a dense array (X.toarray())."
        )
    return None
