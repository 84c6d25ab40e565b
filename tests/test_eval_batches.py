"""Evaluation passes read at most ``EVAL_BYTES`` of float32 rows at once, from any row source.

Invariant: rows of fewer than 4,096 values keep the asked batch (1,024: results as before to
the bit); wider rows, dense, sparse or a subset of either, get fewer, never more than
``EVAL_BYTES``, and predictions do not depend on the pass size.
"""

import numpy as np
import scipy.sparse as sp

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.data import eval_batches
from deinforeg_sklearn.data.eval_batches import EVAL_BYTES, rows_per_pass
from deinforeg_sklearn.data.inputs import to_rows
from deinforeg_sklearn.data.subset import RowSubset


def test_rows_per_pass_caps_wide_rows_of_every_source():
    narrow = to_rows(np.zeros((10, 64), dtype=np.float32), (64,))
    image = to_rows(np.zeros((10, 3 * 32 * 32), dtype=np.uint8), (3, 32, 32))
    wide = to_rows(np.zeros((10, 2**16), dtype=np.float32), (2**16,))
    sparse = to_rows(sp.csr_matrix((10, 2**16), dtype=np.float64), (2**16,))
    assert rows_per_pass(narrow, 1024) == rows_per_pass(image, 1024) == 1024
    assert rows_per_pass(wide, 1024) == rows_per_pass(sparse, 1024) == EVAL_BYTES // 2**18 == 64
    assert rows_per_pass(RowSubset(sparse, np.arange(5)), 1024) == 64
    assert rows_per_pass(narrow, 7) == 7  # never more than asked
    huge = to_rows(np.zeros((2, 2**23), dtype=np.float32), (2**23,))
    assert rows_per_pass(huge, 1024) == 1  # a row over the budget: one at a time


def test_predictions_do_not_depend_on_the_pass_size(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((300, 40), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    est = DeInfoRegClassifier(blocks=[Dense(16)] * 2, max_iter=2, random_state=0).fit(X, y)
    whole = est.predict_proba(X)
    monkeypatch.setattr(eval_batches, "EVAL_BYTES", 4 * 40 * 7)  # 7 rows per pass
    np.testing.assert_allclose(est.predict_proba(X), whole, rtol=0, atol=1e-6)
