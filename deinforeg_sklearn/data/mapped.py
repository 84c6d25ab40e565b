"""Rows that travel to another process as a file name: how replicas of the first stage read X.

Why: a replica of the first pipeline stage in another process must read its rows of every
batch, and a payload that held X would copy all of it into every such process (and through the
store that starts them). Instead the caller writes X's rows once to a file in a temporary
folder of the fit, and each replica maps that file (``numpy.memmap``) and reads only the rows of
its shards; the operating system's page cache shares the pages between processes.

``MappedRows`` pickles as the file's name, dtype and shape, never as data.
"""

from __future__ import annotations

import mmap
import os
import warnings

import numpy as np
import torch

from deinforeg_sklearn.data.dataset import DatasetRows
from deinforeg_sklearn.data.inputs import Rows, RowSource
from deinforeg_sklearn.data.sparse import SparseRows


class MappedRows(Rows):
    """``Rows`` over a raw file of X's values (C order), mapped read-only.

    Parameters
    ----------
    path : str
        The file: written by :func:`mapped_rows`, or the user's own memory map.
    dtype : str
        numpy dtype of the stored values.
    shape : tuple of int
        ``(n_rows, *sample_shape)``.
    scale, tokens
        As for :class:`~deinforeg_sklearn.data.inputs.Rows`.
    offset : int
        Where the rows start in the file, in bytes.
    """

    def __init__(
        self,
        path: str,
        dtype: str,
        shape: tuple[int, ...],
        scale: float | None,
        tokens: bool,
        offset: int = 0,
    ) -> None:
        self.path, self.numpy_dtype, self.stored_shape, self.offset = path, dtype, tuple(shape), offset
        array = np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=self.stored_shape, offset=offset)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not writable.*", category=UserWarning)
            super().__init__(torch.from_numpy(array), scale, tokens, (path, offset))

    def __reduce__(self):
        return (
            MappedRows,
            (self.path, self.numpy_dtype, self.stored_shape, self.scale, self.tokens, self.offset),
        )


class MappedSparseRows(SparseRows):
    """``SparseRows`` over CSR arrays stored in three ``.npy`` files, mapped read-only."""

    def __init__(
        self, prefix: str, n_features: int, sample_shape: tuple[int, ...], scale: float | None
    ) -> None:
        import scipy.sparse as sp

        self.prefix, self.n_features = prefix, n_features
        parts = ("data", "indices", "indptr")
        data, indices, indptr = (np.load(f"{prefix}.{part}.npy", mmap_mode="r") for part in parts)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_features), copy=False)
        super().__init__(matrix, sample_shape, scale)

    def __reduce__(self):
        return (MappedSparseRows, (self.prefix, self.n_features, self.sample_shape, self.scale))


def mapped_rows(rows: RowSource, folder: str) -> RowSource:
    """``rows`` as a source that other processes reopen from files written into ``folder``.

    A Dataset travels as itself (it reads its own rows; a Dataset that holds its samples in
    memory is copied with it, as any picklable object).
    """
    if isinstance(rows, DatasetRows):
        return rows
    if isinstance(rows, SparseRows):
        prefix = os.path.join(folder, "X")
        matrix = rows.matrix
        for part in ("data", "indices", "indptr"):
            np.save(f"{prefix}.{part}.npy", np.ascontiguousarray(getattr(matrix, part)))
        return MappedSparseRows(prefix, matrix.shape[1], rows.sample_shape, rows.scale)
    array = rows.data.numpy()
    if rows.backing is not None:  # X is a memory map already: the replicas map the same file
        path, offset = rows.backing
        return MappedRows(path, array.dtype.str, tuple(array.shape), rows.scale, rows.tokens, offset)
    path = os.path.join(folder, "X.raw")
    np.ascontiguousarray(array).tofile(path)
    return MappedRows(path, array.dtype.str, tuple(array.shape), rows.scale, rows.tokens)


def file_backing(array: np.ndarray) -> tuple[str, int] | None:
    """The file and byte offset of ``array``'s values when it is a C-contiguous view of a
    ``numpy.memmap`` (a whole map, or rows of one); None otherwise.

    Why walk the bases: ``validate_data``, ``reshape`` and ``torch.from_numpy`` hand on views
    whose own type is a plain ndarray; the memmap that knows the file is further down.
    """
    if not array.flags.c_contiguous:
        return None
    base = array
    while base is not None and not (isinstance(base, np.memmap) and isinstance(base.base, mmap.mmap)):
        base = base.base if isinstance(base, np.ndarray) else None
    if base is None or base.filename is None:
        return None
    start = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return str(base.filename), int(base.offset) + int(start)
