"""Sample weights, class weights and the user's validation set (``fit(X, y, sample_weight, X_val, y_val)``).

Invariant (stated in :mod:`deinforeg_sklearn.data.weights`): integer weights repeat rows, so a
fit with integer weights equals, exactly, a fit on ``np.repeat(X, w, axis=0)`` with the same
``random_state``, validation split included; weight 0 leaves a row out.
"""

import numpy as np
import pytest
from sklearn.base import clone

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.data.weights import check_weights, weighted_rows
from deinforeg_sklearn.estimators._plan import make_plan
from deinforeg_sklearn.training.plan import FitPlan
from tests.equivalence import assert_same_training

ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier]
FAST = dict(blocks=[Dense(24), Dense(24)], max_iter=2, random_state=0)


@pytest.fixture(scope="module")
def part(request):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16.0).astype(np.float32), y[:400]


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_integer_weights_equal_repeated_rows_exactly(Est, part):
    X, y = part
    w = np.random.default_rng(1).integers(0, 4, len(y))
    weighted = Est(**FAST).fit(X, y, sample_weight=w)
    repeated = Est(**FAST).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_same_training(weighted, repeated, X, atol=0)
    np.testing.assert_array_equal(weighted.block_scores_, repeated.block_scores_)


def test_weight_zero_leaves_the_row_out(part):
    X, y = part
    keep = np.arange(len(y)) % 3 != 0
    weighted = DeInfoRegClassifier(**FAST).fit(X, y, sample_weight=keep.astype(int))
    dropped = DeInfoRegClassifier(**FAST).fit(X[keep], y[keep])
    assert_same_training(weighted, dropped, X, atol=0)


def test_caller_weights_are_not_modified(part):
    X, y = part
    w = np.linspace(0.5, 2.0, len(y))
    before = w.copy()
    DeInfoRegClassifier(**FAST, class_weight="balanced").fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(w, before)


def _plan(y, weights, fraction=0.0, seed=0) -> FitPlan:
    X = np.zeros((len(y), 2), np.float32)
    plan, _ = make_plan(
        X, y, (2,), validation_fraction=fraction, batch_size=32, epochs=1, tokens=False,
        augment=None, seed=seed, device=__import__("torch").device("cpu"), weights=weights,
    )  # fmt: skip
    return plan


def test_non_integer_weights_sample_rows_in_proportion():
    y = np.repeat([0, 1], 200)
    w = np.where(np.arange(400) < 200, 0.5, 1.5)  # the second half weighs 3x the first
    plan = _plan(y, w)
    counts = np.zeros(400)
    for _ in range(200):
        for batch in plan.epoch_batches():
            np.add.at(counts, batch, 1)
    ratio = counts[200:].sum() / counts[:200].sum()
    assert ratio == pytest.approx(3.0, rel=0.05)
    assert sum(len(b) for b in plan.epoch_batches()) == 400  # epochs keep their length


def test_scaling_non_integer_weights_changes_nothing():
    y = np.repeat([0, 1, 2], 50)
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(y))
    a, b = weighted_rows(y, w, 0.2, seed=3), weighted_rows(y, 7.5 * w, 0.2, seed=3)
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    np.testing.assert_allclose(a.train_p, b.train_p, rtol=1e-12)
    np.testing.assert_array_equal(a.val_idx, b.val_idx)
    np.testing.assert_allclose(a.val_weight, w[a.val_idx])


def test_balanced_class_weight_balances_the_batches():
    y = np.r_[np.zeros(360, int), np.ones(40, int)]
    weights = check_weights(None, "balanced", y, np.array([0, 1]))
    plan = _plan(y, weights)
    drawn = np.concatenate([b for _ in range(50) for b in plan.epoch_batches()])
    assert np.mean(y[drawn]) == pytest.approx(0.5, abs=0.03)


def test_class_weight_dict_multiplies_sample_weight():
    y = np.array([0, 0, 1, 2])
    w = check_weights([1.0, 2.0, 1.0, 1.0], {0: 3.0, 2: 0.5}, y, np.array([0, 1, 2]))
    np.testing.assert_allclose(w, [3.0, 6.0, 1.0, 0.5])


def test_weighted_validation_accuracy(part):
    X, y = part
    w = np.where(y < 5, 0.25, 1.0)
    est = DeInfoRegClassifier(**FAST).fit(X[:300], y[:300], sample_weight=w[:300])
    assert est.block_scores_ is not None
    # the history's validation scores are the scores the inference block was chosen on
    assert est.history_[-1]["validation_scores"] == pytest.approx(list(est.block_scores_))


@pytest.mark.parametrize(
    "kwargs, fit_kwargs, match",
    [
        ({}, {"sample_weight": -np.ones(400)}, "non-negative"),
        ({}, {"sample_weight": np.r_[np.ones(399), np.nan]}, "finite"),
        ({}, {"sample_weight": np.ones(10)}, "one weight per row"),
        ({}, {"sample_weight": np.zeros(400)}, "zero"),
        ({"class_weight": {42: 2.0}}, {}, r"class_weight names classes \[42\]"),
        ({"class_weight": {1: -1.0}}, {}, "non-negative"),
    ],
)
def test_bad_weights_are_clear_errors_before_training(kwargs, fit_kwargs, match, part, monkeypatch):
    X, y = part
    est = DeInfoRegClassifier(**FAST, **kwargs)
    monkeypatch.setattr("deinforeg_sklearn.estimators._base.start_engine", _no_training)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y, **fit_kwargs)
    assert not hasattr(est, "network_")


def _no_training(*args, **kwargs):
    raise AssertionError("training started before the input was checked")


# ----------------------------------------------------------------- the user's validation set
def test_x_val_replaces_the_split(part):
    X, y = part
    X_val, y_val = X[300:], y[300:]
    est = DeInfoRegClassifier(**FAST, validation_fraction=None).fit(
        X[:300], y[:300], X_val=X_val, y_val=y_val
    )
    assert est.inference_ == "best"
    staged = [np.mean(est.classes_[p.argmax(1)] == y_val) for p in est.staged_predict_proba(X_val)]
    np.testing.assert_allclose(est.block_scores_, staged)
    assert all(r["validation_scores"] is not None for r in est.history_)


def test_x_val_trains_on_every_row_of_x(part):
    """With X_val nothing is split off: the fit equals one with validation_fraction=None and
    the same rows, apart from the validation record."""
    X, y = part
    with_val = BackpropClassifier(**FAST).fit(X[:300], y[:300], X_val=X[300:], y_val=y[300:])
    without = BackpropClassifier(**FAST, validation_fraction=None).fit(X[:300], y[:300])
    np.testing.assert_allclose(with_val.predict_proba(X), without.predict_proba(X), atol=0)


def test_early_stopping_with_x_val(part):
    X, y = part
    est = SCPLClassifier(
        **{**FAST, "max_iter": 30}, early_stopping=True, n_iter_no_change=2, validation_fraction=None
    )
    est.fit(X[:300], y[:300], X_val=X[300:], y_val=y[300:])
    assert len(est.history_) <= 30


@pytest.mark.parametrize(
    "fit_kwargs, match",
    [
        ({"X_val": np.zeros((5, 10))}, "together"),
        ({"X_val": np.zeros((5, 10)), "y_val": np.zeros(5)}, "X_val has 10 features but X has 64"),
        ({"X_val": np.zeros((5, 64)), "y_val": np.full(5, 99)}, r"y_val has labels \[99\]"),
    ],
)
def test_bad_validation_sets_are_clear_errors_before_training(fit_kwargs, match, part, monkeypatch):
    X, y = part
    monkeypatch.setattr("deinforeg_sklearn.estimators._base.start_engine", _no_training)
    with pytest.raises(ValueError, match=match):
        DeInfoRegClassifier(**FAST).fit(X, y, **fit_kwargs)


def test_best_inference_without_a_split_asks_for_x_val(part):
    X, y = part
    with pytest.raises(ValueError, match="X_val"):
        DeInfoRegClassifier(**FAST, inference="best", validation_fraction=None).fit(X, y)


def test_weights_and_x_val_survive_clone_and_pipeline_ranks(part, one_thread):
    """Non-integer weights draw batches from the plan's generator, which every rank holds:
    a 2-stage pipeline in processes trains what one device trains."""
    X, y = part
    w = np.random.default_rng(0).uniform(0.2, 2.0, len(y))
    one = DeInfoRegClassifier(**FAST, class_weight="balanced").fit(X, y, sample_weight=w)
    two = clone(one).set_params(devices=["cpu", "cpu"], engine="processes")
    two.fit(X, y, sample_weight=w)
    assert_same_training(one, two, X)
