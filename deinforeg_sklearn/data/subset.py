"""Some rows of a row source, read in place: the validation split without a copy of its rows.

Why: ``Rows.take`` copies the rows it is given, and the validation split was taken that way
at every epoch's scoring. For a 4.6 GiB float32 TF-IDF array (18,656 x 65,536) with the
default ``validation_fraction=0.1`` that was a 466 MiB copy per epoch, 70 % of the fit's peak
memory beyond the model and X (measured by benchmarks/sparse_text.py), and for a memory map
it read those rows into RAM. A ``RowSubset`` maps each batch's positions to rows of the
source and lets the source read them, so a batch is the one the copy would have given.

Invariant: ``RowSubset(source, index).batch(i, device)`` equals
``source.take(index).batch(i, device)`` for every ``i``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class RowSubset:
    """The rows ``index`` of ``source`` (``Rows``, ``SparseRows`` or ``DatasetRows``).

    Parameters
    ----------
    source : row source
        Anything with ``batch(index, device)`` and ``shape``.
    index : ndarray of int
        Rows of ``source``, in the order the subset reads them.
    """

    def __init__(self, source: Any, index: np.ndarray) -> None:
        self.source = source
        self.index = np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *tuple(self.source.shape[1:]))

    def __getattr__(self, name: str) -> Any:
        # dtype, storage_dtype, scale, tokens, sample_shape: those of the source
        if name in ("source", "index"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def expect(self, batches: object) -> None:
        """Nothing to read ahead: subsets are read for evaluation, in order."""

    def take(self, index: np.ndarray) -> RowSubset:
        return RowSubset(self.source, self.index[np.asarray(index)])

    def batch(self, index: np.ndarray | slice, device: torch.device) -> torch.Tensor:
        """Rows ``index`` of the subset on ``device``, as the source gives them."""
        return self.source.batch(self.index[index], device)
