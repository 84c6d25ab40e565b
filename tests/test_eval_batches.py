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


def test_a_row_alone_gets_the_bits_it_gets_among_others():
    # few rows take other kernel paths on a CPU (data/eval_batches.padded_rows); the padding
    # makes every row's output independent of the rows passed with it, bit for bit
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 3).astype(np.float32), rng.randint(0, 2, 40)
    est = DeInfoRegClassifier(blocks=[Dense(256)] * 2, max_iter=2, random_state=0).fit(X, y)
    for method in (est.predict_proba, est.transform):
        together = method(X[:20])
        alone = np.concatenate([method(X[i : i + 1]) for i in range(20)])
        np.testing.assert_array_equal(alone, together)


def test_padded_rows_repeats_the_last_row_up_to_the_minimum():
    import torch

    xb = torch.arange(6.0).reshape(3, 2)
    padded, n = eval_batches.padded_rows(xb)
    assert n == 3 and padded.shape == (eval_batches.MIN_ROWS, 2)
    assert torch.equal(padded[:3], xb) and torch.equal(padded[3:], xb[-1:].expand(13, 2))
    big = torch.zeros(eval_batches.MIN_ROWS, 2)
    assert eval_batches.padded_rows(big)[0] is big


def test_adaptive_inference_of_a_row_alone_gets_the_same_bits():
    # as samples exit, the rows still inside shrink to a few: padded as every evaluation batch
    rng = np.random.RandomState(1)
    X, y = rng.rand(40, 3).astype(np.float32), rng.randint(0, 2, 40)
    est = DeInfoRegClassifier(blocks=[Dense(64)] * 3, max_iter=2, random_state=0, inference="adaptive")
    est.fit(X, y)
    together = est.predict_proba(X[:20])
    alone = np.concatenate([est.predict_proba(X[i : i + 1]) for i in range(20)])
    np.testing.assert_array_equal(alone, together)
    depth = est.predict_exit_depth(X[:20])
    assert np.array_equal(depth, np.concatenate([est.predict_exit_depth(X[i : i + 1]) for i in range(20)]))
