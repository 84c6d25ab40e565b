"""The validation split is read in place: ``RowSubset`` gives the batches a copy would give.

Invariant (data/subset.py): ``RowSubset(source, index).batch(i, device)`` equals
``source.take(index).batch(i, device)`` for dense, uint8, sparse and token rows, and a fit's
validation rows are a subset of the fit's own rows, not a copy of them.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from deinforeg_sklearn.data.inputs import to_rows
from deinforeg_sklearn.data.subset import RowSubset
from deinforeg_sklearn.estimators._plan import make_plan

CPU = torch.device("cpu")
RNG = np.random.default_rng(0)
SOURCES = {
    "float32": lambda: to_rows(RNG.random((50, 6), dtype=np.float32), (6,)),
    "uint8 scaled": lambda: to_rows(RNG.integers(0, 256, (50, 2, 3), dtype=np.uint8), (2, 3), 1 / 255),
    "sparse": lambda: to_rows(sp.random(50, 6, density=0.3, format="csr", random_state=0), (6,)),
    "tokens": lambda: to_rows(RNG.integers(0, 9, (50, 5)).astype(np.int64), (5,), tokens=True),
}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_subset_batches_equal_those_of_a_copy(kind):
    source = SOURCES[kind]()
    index = RNG.permutation(50)[:17]
    subset, copy = RowSubset(source, index), source.take(index)
    assert len(subset) == len(copy) == 17 and tuple(subset.shape) == tuple(copy.shape)
    assert subset.dtype == copy.dtype
    for key in (slice(0, 8), slice(8, 17), np.array([3, 0, 16])):
        assert torch.equal(subset.batch(key, CPU), copy.batch(key, CPU))
    inner = subset.take(np.array([2, 5]))  # a subset of a subset: still the source's rows
    assert inner.source is source and torch.equal(
        inner.batch(slice(None), CPU), copy.take([2, 5]).batch(slice(None), CPU)
    )


def test_validation_rows_of_a_plan_are_read_in_place():
    X = RNG.random((200, 4), dtype=np.float32)
    y = np.arange(200) % 2
    plan, _ = make_plan(
        X, y, (4,), validation_fraction=0.2, batch_size="auto", epochs=1, tokens=False,
        augment=None, seed=0, device=CPU,
    )  # fmt: skip
    X_val, y_val, _ = plan.validation()
    assert isinstance(X_val, RowSubset) and X_val.source is plan.X and len(X_val) == 40
    np.testing.assert_array_equal(X_val.batch(slice(None), CPU).numpy(), X[plan.val_idx])
    np.testing.assert_array_equal(y_val, y[plan.val_idx])
