"""Sparse X (CSR/CSC, scipy arrays and matrices): read as dense batches, one batch at a time.

Invariant (:mod:`deinforeg_sklearn.data.sparse`): a batch of sparse X equals the batch of its
dense copy bit for bit, so every fit on sparse X trains the same model as the fit on
``X.toarray()``, on every path (estimators, validation, weights, pipelines, warm starts,
checkpoints), and no step of a fit or a prediction makes a dense copy of X.
"""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Embedding
from deinforeg_sklearn.data.sparse import SparseRows
from deinforeg_sklearn.estimators._checkpoint import fingerprint
from deinforeg_sklearn.training import loop as loop_module
from tests.equivalence import assert_same_training
from tests.test_checkpoint import _crash_in_epoch

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(blocks=[Dense(24), Dense(24)], max_iter=2, random_state=0)
ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier]


@pytest.fixture(scope="module")
def part():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)  # about half of the digits' pixels are 0
    return (X[:400] / 16.0).astype(np.float64), y[:400]


def test_a_batch_equals_the_dense_rows_batch_bit_for_bit(part):
    from deinforeg_sklearn.data.inputs import to_rows

    X, _ = part
    dense, sparse = to_rows(X, (64,), scale=0.3), SparseRows(sp.csr_array(X), (64,), 0.3)
    index = np.array([7, 3, 390, 3])
    cpu = torch.device("cpu")
    assert torch.equal(sparse.batch(index, cpu), dense.batch(index, cpu))
    assert torch.equal(sparse.batch(slice(10, 20), cpu), dense.batch(slice(10, 20), cpu))
    assert torch.equal(sparse.take(index).batch(slice(None), cpu), dense.take(index).batch(slice(None), cpu))
    assert sparse.shape == dense.shape and sparse.dtype == torch.float32 == dense.dtype
    assert sparse.storage_dtype == torch.float64 and len(sparse) == 400


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_every_estimator_trains_on_csr_as_on_the_dense_array(Est, part):
    X, y = part
    dense = Est(**FAST, validation_fraction=0.1).fit(X, y)
    sparse = Est(**FAST, validation_fraction=0.1).fit(sp.csr_matrix(X), y)
    assert_same_training(dense, sparse, X, atol=0)
    np.testing.assert_array_equal(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X))
    for a, b in zip(sparse.staged_predict_proba(sp.csc_array(X)), dense.staged_predict_proba(X), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sparse.score(sp.csr_array(X), y) == dense.score(X, y)


@pytest.mark.parametrize("convert", [sp.csr_array, sp.csc_matrix, sp.coo_array, sp.lil_matrix, sp.dok_array])
def test_every_sparse_format_trains_the_same_model(convert, part):
    X, y = part
    reference = DeInfoRegClassifier(**FAST).fit(X, y)
    assert_same_training(reference, DeInfoRegClassifier(**FAST).fit(convert(X), y), X, atol=0)


def test_validation_rows_weights_and_input_scale_work_on_sparse_x(part):
    X, y = part
    weights = np.random.RandomState(0).randint(0, 3, len(X))
    params = dict(FAST, early_stopping=True, n_iter_no_change=5, input_scale=0.5)
    dense = DeInfoRegClassifier(**params).fit(X[:300], y[:300], sample_weight=weights[:300],
                                              X_val=X[300:], y_val=y[300:])  # fmt: skip
    sparse = DeInfoRegClassifier(**params).fit(sp.csr_array(X[:300]), y[:300], sample_weight=weights[:300],
                                               X_val=sp.csc_array(X[300:]), y_val=y[300:])  # fmt: skip
    assert_same_training(dense, sparse, X, atol=0)


def test_warm_start_and_partial_fit_continue_on_sparse_x(part):
    X, y = part
    Xs = sp.csr_array(X)
    dense = DeInfoRegClassifier(**FAST, warm_start=True).fit(X, y).fit(X, y)
    sparse = DeInfoRegClassifier(**FAST, warm_start=True).fit(Xs, y).fit(Xs, y)
    assert_same_training(dense, sparse, X, atol=0)
    classes = np.unique(y)
    dense = DeInfoRegClassifier(**FAST).partial_fit(X, y, classes=classes).partial_fit(X, y)
    sparse = DeInfoRegClassifier(**FAST).partial_fit(Xs, y, classes=classes).partial_fit(Xs, y)
    assert_same_training(dense, sparse, X, atol=0)


@pytest.mark.parametrize("engine", ["threads", "processes"])
def test_pipeline_engines_train_on_sparse_x_as_one_device_on_dense(engine, part, one_thread):
    X, y = part
    one = DeInfoRegClassifier(**FAST).fit(X, y)
    piped = DeInfoRegClassifier(**FAST, devices=["cpu", "cpu"], engine=engine).fit(sp.csr_array(X), y)
    assert_same_training(one, piped, X, atol=0)


def test_a_crashed_sparse_fit_resumes_from_its_checkpoint(part, tmp_path, monkeypatch):
    X, y = part
    Xs = sp.csr_array(X)
    params = dict(FAST, max_iter=3)
    reference = DeInfoRegClassifier(**params).fit(X, y)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 3)
        with pytest.raises(RuntimeError, match="simulated crash"):
            DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(Xs, y)
    resumed = DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(Xs, y)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    assert_same_training(reference, resumed, X, atol=0)


def test_the_checkpoint_fingerprint_reads_sparse_rows_as_their_dense_values(part):
    X, y = part
    est, classes = DeInfoRegClassifier(**FAST), np.unique(y)
    dense = fingerprint(est, X, y, classes, 0, None)["data"]["rows"]
    assert fingerprint(est, sp.csr_array(X), y, classes, 0, None)["data"]["rows"] == dense
    assert fingerprint(est, sp.csr_array(X[::-1]), y, classes, 0, None)["data"]["rows"] != dense


def test_no_dense_copy_of_x_is_made_in_fit_or_predict():
    # 2,000 x 20,000 at density 0.001: the CSR holds 0.5 MB, a dense float32 copy 160 MB. Numpy
    # allocations are traced, and the peak must stay far below one dense copy (an evaluation
    # batch of sparse rows is at most 16 MiB dense: data.eval_batches.EVAL_BYTES).
    rng = np.random.RandomState(0)
    X = sp.random(2000, 20000, density=0.001, format="csr", random_state=rng, dtype=np.float64)
    y = rng.randint(0, 2, 2000)
    dense_mib = X.shape[0] * X.shape[1] * 4 / 2**20
    tracemalloc.start()
    try:
        est = DeInfoRegClassifier(blocks=[Dense(8), Dense(8)], batch_size=32, max_iter=1, random_state=0)
        est.fit(X, y)
        est.predict_proba(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / 2**20 < dense_mib / 4, f"traced peak {peak / 2**20:.1f} MiB, dense X {dense_mib:.0f} MiB"


def test_the_tags_say_sparse_input_is_accepted():
    for Est in ESTIMATORS:
        assert Est().__sklearn_tags__().input_tags.sparse


@pytest.mark.parametrize(
    "params, what",
    [
        (dict(blocks=[Conv([4]), Dense(8)], input_shape=(1, 8, 8)), "Conv"),
        (dict(blocks=[Embedding(8), Dense(8)]), "Embedding"),
        (dict(blocks=[LSTM(8)], input_shape=(8, 8)), "LSTM"),
        (dict(blocks=[Dense(8)], input_shape=(8, 8)), "input_shape"),
    ],
)
def test_blocks_that_need_a_shape_refuse_sparse_x_before_any_work(params, what, part, monkeypatch):
    X, y = part
    monkeypatch.setattr(loop_module.FitLoop, "run", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=f"Sparse X .*{what}.*toarray"):
        DeInfoRegClassifier(**params, max_iter=1).fit(sp.csr_array(np.round(X * 16)), y)


def test_a_dense_fitted_conv_model_refuses_sparse_x_at_predict(part):
    X, y = part
    est = DeInfoRegClassifier(blocks=[Conv([4]), Dense(8)], input_shape=(1, 8, 8), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="Sparse X .*toarray"):
        est.predict(sp.csr_array(X))


def test_overflowing_sparse_columns_are_named(part):
    X, y = part
    X = X.copy()
    X[:, 5] *= 1e30
    with pytest.warns(UserWarning, match=r"X has 1 columns .* Columns: 5\."):
        DeInfoRegClassifier(**FAST).fit(sp.csr_array(X), y)


def test_tfidf_to_deinforeg_in_a_pipeline():
    words = ["good", "great", "fine", "bad", "awful", "poor", "film", "plot", "cast", "music"]
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, 200)
    mood = [words[3:6], words[:3]]  # negative, positive
    texts = [" ".join([*rng.choice(mood[label], 3), *rng.choice(words[6:], 4)]) for label in labels]
    model = make_pipeline(TfidfVectorizer(), DeInfoRegClassifier(max_iter=5, random_state=0))
    model.fit(texts[:150], labels[:150])
    assert model.score(texts[150:], labels[150:]) > 0.9
