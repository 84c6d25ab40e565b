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

#: Largest float32 batch an evaluation pass makes (bytes).
EVAL_BYTES = 16 * 2**20


def rows_per_pass(X: object, batch_size: int) -> int:
    """Rows per evaluation batch of ``X`` (any row source): ``batch_size``, fewer for wide rows."""
    row_bytes = 4 * max(1, int(np.prod(tuple(X.shape[1:]), dtype=np.int64)))
    return max(1, min(batch_size, EVAL_BYTES // row_bytes))
