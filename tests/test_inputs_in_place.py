"""X is read in place: integer and float arrays and memory maps, converted to float32 per batch.

Invariant (:class:`deinforeg_sklearn.data.inputs.Rows`): a fit never holds a float copy of the
whole of X. The plan's rows share memory with the caller's array (a C-contiguous array of a
kept dtype), and ``input_scale`` scales each batch, so uint8 data with ``input_scale=1/16``
trains exactly as the float32 array ``X / 16`` does.
"""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.data.inputs import KEPT_DTYPES, to_rows
from deinforeg_sklearn.estimators._plan import make_plan
from tests.equivalence import assert_same_training

FAST = dict(blocks=[Dense(24), Dense(24)], max_iter=2, random_state=0)


@pytest.fixture(scope="module")
def digits_uint8():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:500].astype(np.uint8), y[:500]


@pytest.fixture
def memmap(tmp_path, digits_uint8):
    X, _ = digits_uint8
    path = tmp_path / "x.u8"
    writer = np.memmap(path, dtype=np.uint8, mode="w+", shape=X.shape)
    writer[:] = X
    writer.flush()
    del writer
    return np.memmap(path, dtype=np.uint8, mode="r", shape=X.shape)  # read-only, as users open data


@pytest.mark.parametrize("dtype", KEPT_DTYPES)
def test_rows_share_memory_with_x_and_batches_are_float32(dtype):
    X = np.arange(24).reshape(6, 4).astype(dtype)
    rows = to_rows(X, (2, 2), scale=0.5)
    assert np.shares_memory(rows.data.numpy(), X)
    batch = rows.batch(np.array([4, 1]), torch.device("cpu"))
    assert batch.dtype == torch.float32 and batch.shape == (2, 2, 2)
    np.testing.assert_allclose(batch.numpy().reshape(2, 4), X[[4, 1]].astype(np.float32) * 0.5)


def test_a_read_only_memmap_is_read_in_place_without_a_warning(memmap, digits_uint8, recwarn):
    _, y = digits_uint8
    plan, _ = make_plan(
        memmap, y, (64,), validation_fraction=0.1, batch_size=32, epochs=1, tokens=False,
        augment=None, seed=0, device=torch.device("cpu"),
    )  # fmt: skip
    assert np.shares_memory(plan.X.data.numpy(), memmap)
    assert not [w for w in recwarn if "writable" in str(w.message)]


@pytest.mark.parametrize("Est", [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier])
def test_uint8_with_input_scale_trains_as_the_scaled_float_array(Est, digits_uint8, memmap):
    X, y = digits_uint8
    scaled = Est(**FAST).fit(X.astype(np.float32) / 16, y)
    from_uint8 = Est(**FAST, input_scale=1 / 16).fit(memmap, y)
    for (name, a), b in zip(
        scaled.network_.state_dict().items(), from_uint8.network_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    np.testing.assert_array_equal(
        scaled.predict_proba(X.astype(np.float32) / 16), from_uint8.predict_proba(memmap)
    )


def test_x_val_is_read_in_place_too(digits_uint8, memmap):
    _, y = digits_uint8
    est = DeInfoRegClassifier(**FAST, input_scale=1 / 16, validation_fraction=None)
    est.fit(memmap[:400], y[:400], X_val=memmap[400:], y_val=y[400:])
    staged = [np.mean(est.classes_[p.argmax(1)] == y[400:]) for p in est.staged_predict_proba(memmap[400:])]
    np.testing.assert_allclose(est.block_scores_, staged)


def test_other_dtypes_are_converted_once():
    X = np.arange(40).reshape(20, 2) % 3 == 0  # bool: not a kept dtype
    y = np.arange(20) % 2
    est = BackpropClassifier(blocks=[Dense(4)], max_iter=1, random_state=0).fit(X, y)
    assert est.predict(X).shape == (20,)


@pytest.mark.parametrize("scale", [0, -1.0])
def test_input_scale_must_be_positive(scale, digits_uint8):
    with pytest.raises(InvalidParameterError, match="input_scale"):
        DeInfoRegClassifier(**FAST, input_scale=scale).fit(*digits_uint8)


def test_a_pipeline_rank_gets_no_rows(digits_uint8, memmap, one_thread):
    """Two CPU stages in processes train what one device trains from the same memory map."""
    _, y = digits_uint8
    one = DeInfoRegClassifier(**FAST, input_scale=1 / 16).fit(memmap, y)
    two = DeInfoRegClassifier(**FAST, input_scale=1 / 16, devices=["cpu", "cpu"], engine="processes")
    two.fit(memmap, y)
    assert_same_training(one, two, memmap)
