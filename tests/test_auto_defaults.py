"""Defaults resolved at fit time: ``get_params`` keeps "auto", the fitted attributes say what it meant.

Invariant: ``projector="auto"`` and ``inference="auto"`` never change what ``get_params``
returns (so ``clone`` and grid searches see the user's value); ``projector_`` and
``inference_`` record, per fit, what was built and which block choice the fit made.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Transformer
from deinforeg_sklearn.estimators._auto import AUTO_PROJECTOR_MAX_WIDTH, resolve_inference

FAST = {"max_iter": 1, "random_state": 0}


def _hidden_widths(projector) -> list[int]:
    return [
        m.out_features for m in getattr(projector, "net", projector).modules() if hasattr(m, "out_features")
    ]


def test_defaults_are_auto_and_stay_auto_after_fit(digits):
    est = DeInfoRegClassifier(blocks=[Dense(16), Dense(16)], **FAST)
    assert est.get_params()["projector"] == "auto" and est.get_params()["inference"] == "auto"
    est.fit(*digits)
    assert est.get_params()["projector"] == "auto" and est.get_params()["inference"] == "auto"
    assert clone(est).get_params()["projector"] == "auto"


def test_auto_projector_is_one_layer_of_the_block_width_capped(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Dense(16), Dense(AUTO_PROJECTOR_MAX_WIDTH + 44)], **FAST).fit(X, y)
    assert est.projector_ == [(16,), (AUTO_PROJECTOR_MAX_WIDTH,)]
    # what was built is what projector_ says: one hidden width, then the output width
    for block, widths in zip(est.network_.blocks, est.projector_, strict=True):
        assert _hidden_widths(block.projector) == list(widths)


def test_auto_projector_on_a_conv_block_reads_its_flattened_width(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Conv((4,)), Conv((300,), head_pool=1)], input_shape=(1, 8, 8), **FAST)
    est.fit(X, y)
    assert est.projector_ == [(min(4 * 8 * 8, AUTO_PROJECTOR_MAX_WIDTH),), (AUTO_PROJECTOR_MAX_WIDTH,)]


@pytest.mark.parametrize("block", [LSTM(4), Transformer(8, heads=2, layers=1)])
def test_auto_projector_is_the_identity_on_sequence_blocks(block, digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[block], input_shape=(8, 8), **FAST).fit(X, y)
    assert est.projector_ == [()]
    assert not list(est.network_.blocks[0].projector.parameters())


@pytest.mark.parametrize("projector, expected", [(None, ()), ((8, 4), (8, 4))])
def test_an_explicit_projector_applies_to_every_block(projector, expected, digits):
    est = DeInfoRegClassifier(blocks=[Dense(16), Dense(300)], projector=projector, **FAST)
    assert est.fit(*digits).projector_ == [expected, expected]


def test_a_bad_projector_string_is_refused_before_training(digits):
    with pytest.raises(ValueError, match="projector"):
        DeInfoRegClassifier(projector="wide", **FAST).fit(*digits)


@pytest.mark.parametrize(
    "inference, fraction, expected",
    [
        ("auto", 0.1, "best"),
        ("auto", 0.0, "last"),
        ("auto", None, "last"),
        ("last", 0.1, "last"),
        ("adaptive", 0.0, "adaptive"),
    ],
)
def test_inference_auto_is_best_with_a_validation_split(inference, fraction, expected, digits):
    assert resolve_inference(inference, fraction) == expected
    est = DeInfoRegClassifier(
        blocks=[Dense(16)] * 3, inference=inference, validation_fraction=fraction, **FAST
    )
    est.fit(*digits)
    assert est.inference_ == expected
    if expected == "best":
        best = np.flatnonzero(est.block_scores_ == est.block_scores_.max())
        assert est.inference_block_ == best[-1]  # ties go to the deeper block
    elif expected == "last":
        assert est.inference_block_ == 2


def test_inference_mode_of_the_fit_is_recorded_while_adaptive_stays_a_prediction_switch(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Dense(16)] * 3, **FAST).fit(X, y)
    assert est.inference_ == "best"
    est.set_params(inference="adaptive", exit_threshold=1.01)  # never exits early: the last block
    np.testing.assert_allclose(
        est.predict_proba(X[:50]), list(est.staged_predict_proba(X[:50]))[-1], atol=1e-6
    )
    assert est.inference_ == "best"  # what the fit used; the next fit resolves again


def test_warm_start_keeps_the_resolved_projector_and_pickle_keeps_both(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Dense(16)], warm_start=True, **FAST).fit(X, y)
    first = est.projector_
    est.fit(X, y)
    assert est.projector_ == first and est.n_iter_ == 2
    restored = pickle.loads(pickle.dumps(est))
    assert restored.projector_ == first and restored.inference_ == est.inference_


@pytest.mark.parametrize("cls", [BackpropClassifier, SCPLClassifier])
def test_other_estimators_keep_no_projector_by_default_and_accept_auto(cls, digits):
    X, y = digits
    assert cls(blocks=[Dense(16)], **FAST).fit(X, y).projector_[-1] == ()
    assert cls(blocks=[Dense(16)], projector="auto", **FAST).fit(X, y).projector_[-1] == (16,)


# ----------------------------------------------------------------- accuracy with the defaults


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_reach_095_on_three_digits_splits(seed, digits):
    # Default parameters apart from random_state: blocks, projector, alpha, inference all default.
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=100 + seed, stratify=y
    )
    est = DeInfoRegClassifier(random_state=seed).fit(X_train, y_train)
    assert est.score(X_test, y_test) >= 0.95


@pytest.mark.slow
def test_twelve_dense_blocks_are_within_a_point_of_four(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=7, stratify=y)
    scores = {
        depth: np.mean(
            [
                DeInfoRegClassifier(blocks=[Dense(128)] * depth, random_state=seed)
                .fit(X_train, y_train)
                .score(X_test, y_test)
                for seed in (0, 1)
            ]
        )
        for depth in (4, 12)
    }
    assert scores[12] >= scores[4] - 0.01, scores


def test_best_breaks_ties_towards_the_deeper_block():
    est = DeInfoRegClassifier(inference="best")
    assert est._choose_inference_block("best", 3, np.array([1.0, 1.0, 0.5])) == 1
    assert est._choose_inference_block("best", 3, np.array([0.9, 1.0, 1.0])) == 2
    assert est._choose_inference_block("best", 3, np.array([1.0, 0.5, 0.5])) == 0
