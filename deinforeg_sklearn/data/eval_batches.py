"""How many rows one evaluation pass (validation, predict) reads at once: at most ``EVAL_BYTES``.

Why: evaluation runs 1,024 rows per batch (``predict``'s and validation's default), which is
cheap for narrow rows and not for wide ones. A TF-IDF row of 2^16 columns is 256 KiB as
float32, so 1,024 of them make a 256 MiB batch: for a sparse matrix of a few MiB that batch
would be most of the fit's memory, and for a dense array it was (measured by
benchmarks/sparse_text.py: 450 of the 675 MiB a fit on the densified 18,656 x 65,536 array
held beyond X). Each row's logits do not depend on the other rows of its batch in eval mode,
so only the memory changes (and, for rows this wide, the last bits of rounding of the
kernels). Rows under 4,096 values (every image here: 3 x 32 x 32 is 3,072) keep 1,024 per
batch, so their results are as before to the bit.
"""

from __future__ import annotations

import numpy as np
import torch

#: Largest float32 batch an evaluation pass makes (bytes).
EVAL_BYTES = 16 * 2**20


def rows_per_pass(X: object, batch_size: int) -> int:
    """Rows per evaluation batch of ``X`` (any row source): ``batch_size``, fewer for wide rows."""
    row_bytes = 4 * max(1, int(np.prod(tuple(X.shape[1:]), dtype=np.int64)))
    return max(1, min(batch_size, EVAL_BYTES // row_bytes))


#: Evaluation batches shorter than this are padded to it (:func:`padded_rows`).
MIN_ROWS = 16


def padded_rows(xb: object) -> tuple[object, int]:
    """``xb`` with at least ``MIN_ROWS`` rows (copies of its last row appended), and its own count.

    Why: CPU matrix kernels take another path for a few rows (oneMKL's matrix-vector product
    for 1 row; at 2 threads, splits of fewer than 4 rows a thread), whose sums round
    differently, so a row predicted alone differed from the same row predicted among others
    (1.7e-7 on a transform output of 1e-4, failing scikit-learn's
    ``check_methods_subset_invariance``). Measured on float32 linear layers of 3 to 784 inputs:
    from 16 rows on, every row's output is the same to the bit whatever the batch, at 1 and 2
    threads. In eval mode no row's output depends on another row, so the copies change nothing
    but the path; callers cut the outputs back to the count. Non-tensor batches pass as they are.
    """
    if not isinstance(xb, torch.Tensor) or not 0 < len(xb) < MIN_ROWS:
        return xb, len(xb)
    pad = xb[-1:].expand(MIN_ROWS - len(xb), *xb.shape[1:])
    return torch.cat([xb, pad]), len(xb)
