"""Inputs too large for float32 warn before the fit, and a fit that learned nothing says so.

Invariant: a fit on inputs that overflow float32 in the first block (digits x 1e30) warns
twice, before training (naming the columns) and after it (every head constant), and
``predict`` on such inputs warns too; the same data brought into range by ``input_scale``,
and data just under the limit (digits x 1e17, which trains), warn about neither.
"""

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from deinforeg_sklearn import (
    ALClassifier,
    BackpropClassifier,
    DeInfoRegClassifier,
    SCPLClassifier,
)
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.data import magnitude
from deinforeg_sklearn.data.inputs import no_mask, to_rows
from deinforeg_sklearn.data.magnitude import SAMPLE_ROWS, overflow_limit, overflowing_columns
from deinforeg_sklearn.training.collapse import collapsed_heads

ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier]
FAST = {"blocks": [Dense(32)] * 2, "max_iter": 2, "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600].astype(np.float32), y[:600]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_overflowing_inputs_warn_at_fit_and_predict(cls, digits):
    X, y = digits
    huge = X * np.float32(1e30)
    with pytest.warns(UserWarning) as caught:
        est = cls(**FAST).fit(huge, y)
    messages = [str(w.message) for w in caught]
    overflow = [m for m in messages if "whose values reach" in m]
    assert len(overflow) == 1 and "StandardScaler" in overflow[0]
    assert "Columns: 1, 2, 3" in overflow[0]  # column 0 of the digits is always 0
    assert any(m.startswith("Training failed") for m in messages)
    assert est.score(X * np.float32(1e30), y) < 0.3  # what the warnings are about: chance
    with pytest.warns(UserWarning, match="predictions are not meaningful"):
        est.predict(huge)


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_inputs_in_range_do_not_warn(cls, digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # just under the limit for batch 128 (16e17 < 1.63e18): trains as on the digits as given
        est = cls(**FAST).fit(X * np.float32(1e17), y)
        plain = cls(**FAST).fit(X, y).score(X, y)
        assert est.score(X * np.float32(1e17), y) > plain - 0.1
        # the blocks read X * input_scale: brought back into range, nothing to warn about
        scaled = cls(**FAST, input_scale=1e-30).fit(X * np.float32(1e30), y)
        scaled.predict(X * np.float32(1e30))


def test_the_warning_names_features_of_a_dataframe(digits):
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"pixel_{i}" for i in range(X.shape[1])])
    frame["pixel_5"] *= 1e30
    with pytest.warns(UserWarning, match=r"X has 1 features whose values reach 1\.6e\+31.*pixel_5\."):
        DeInfoRegClassifier(**FAST).fit(frame, y)


def test_overflowing_columns_samples_rows_and_follows_the_batch_size():
    X = np.ones((3 * SAMPLE_ROWS, 4), dtype=np.float64)
    X[0, 1] = 1e19  # the first and the last rows are always in the sample
    X[-1, 3] = -1e19
    columns, peak = overflowing_columns(X, None, 128)
    assert columns.tolist() == [1, 3] and peak == 1e19
    assert overflowing_columns(X, 1e-3, 128)[0].tolist() == []  # input_scale applies
    # the limit is that of a sum of batch_size squares: larger batches, lower limit
    assert overflow_limit(1) > 1e19 > overflow_limit(128)
    assert overflowing_columns(X, None, 1)[0].tolist() == []
    # integer X, read as float64: no wrap-around of abs(int64 min)
    ints = np.zeros((10, 2), dtype=np.int64)
    ints[3, 0] = np.iinfo(np.int64).min
    columns, peak = overflowing_columns(ints, None, 128)
    assert columns.tolist() == [0] and peak == 2.0**63


def test_the_check_reads_wide_rows_in_chunks(monkeypatch):
    # 2,048 x 8,192 float32 (64 MiB): converted to float64 in one piece, the sample would take
    # 128 MiB; chunked, the check holds a few CHUNK_BYTES beyond X, with the same answer
    X = np.random.default_rng(0).random((2048, 8192), dtype=np.float32)
    X[1500, 7000] = 1e19
    tracemalloc.start()
    try:
        columns, peak = overflowing_columns(X, None, 128)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert columns.tolist() == [7000] and peak == np.float32(1e19)
    assert held < 4 * magnitude.CHUNK_BYTES
    monkeypatch.setattr(magnitude, "CHUNK_BYTES", 1)  # one row at a time: the same result
    assert overflowing_columns(X, None, 128)[0].tolist() == [7000]
    reference = np.abs(X.astype(np.float64)).max(axis=0)
    assert np.array_equal(magnitude._dense_magnitude(X, np.arange(len(X))), reference)


def test_collapse_check_on_a_trained_model_and_on_identical_rows(digits):
    X, y = digits
    est = DeInfoRegClassifier(**FAST).fit(X, y)
    rows = to_rows(X, (X.shape[1],))
    assert collapsed_heads(est.network_, rows, est.device_, no_mask) == []
    same = to_rows(np.repeat(X[:1], 40, axis=0), (X.shape[1],))
    assert collapsed_heads(est.network_, same, est.device_, no_mask) is None  # nothing to conclude
