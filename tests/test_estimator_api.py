import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv, Dense
from deinforeg_sklearn.optim import cosine_lr

FAST = {"max_iter": 3, "random_state": 0}
ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_fit_predict_score(cls, small_data):
    X, y = small_data
    est = cls(blocks=[Dense(16), Dense(16)], **FAST).fit(X, y)
    assert est.predict(X).shape == (len(X),)
    assert set(est.predict(X)) <= set(est.classes_)
    assert 0.0 <= est.score(X, y) <= 1.0
    assert est.n_features_in_ == 6 and est.n_iter_ == 3
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])


def test_string_labels(small_data):
    X, y = small_data
    labels = np.array(["cat", "dog", "emu"])[y]
    est = DeInfoRegClassifier(blocks=[Dense(8)], **FAST).fit(X, labels)
    assert set(est.predict(X)) <= {"cat", "dog", "emu"}


def test_staged_predict_proba_one_output_per_block(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(8)] * 3, **FAST).fit(X, y)
    stages = list(est.staged_predict_proba(X))
    assert len(stages) == 3
    np.testing.assert_allclose(stages[est.inference_block_], est.predict_proba(X))
    bp = BackpropClassifier(blocks=[Dense(8)] * 3, **FAST).fit(X, y)
    assert len(list(bp.staged_predict_proba(X))) == 1


def test_history_and_block_scores(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(8), Dense(8)], **FAST).fit(X, y)
    assert len(est.history_) == 3
    record = est.history_[-1]
    assert record["epoch"] == 3 and record["time"] > 0
    assert len(record["blocks"]) == 2
    for row in record["blocks"]:
        for key in ("variance", "invariance", "covariance", "cross_entropy", "loss"):
            assert np.isfinite(row[key]) and row[key] >= 0
        assert 0 <= row["train_accuracy"] <= 1 and 0 <= row["validation_accuracy"] <= 1
    np.testing.assert_allclose(est.block_scores_, [b["validation_accuracy"] for b in record["blocks"]])
    bp = BackpropClassifier(blocks=[Dense(8)], **FAST).fit(X, y)
    assert set(bp.history_[0]["blocks"][0]) == {
        "cross_entropy",
        "loss",
        "train_accuracy",
        "validation_accuracy",
    }


def test_no_validation_split(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(8)], validation_fraction=0, **FAST).fit(X, y)
    assert est.block_scores_ is None
    assert est.history_[0]["blocks"][0]["validation_accuracy"] is None


def test_inference_best_uses_best_validation_block(digits):
    X, y = digits
    est = DeInfoRegClassifier(
        blocks=[Dense(32), Dense(4), Dense(32)], inference="best", max_iter=5, random_state=0
    ).fit(X[:600], y[:600])
    best = int(np.argmax(est.block_scores_))
    assert est.inference_block_ == best
    stages = list(est.staged_predict_proba(X[600:700]))
    np.testing.assert_allclose(est.predict_proba(X[600:700]), stages[best])


def test_inference_best_needs_validation(small_data):
    with pytest.raises(ValueError, match="validation_fraction > 0"):
        DeInfoRegClassifier(inference="best", validation_fraction=0).fit(*small_data)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_random_state_makes_fits_reproducible(cls, small_data):
    X, y = small_data
    a = cls(blocks=[Dense(8), Dense(8)], **FAST).fit(X, y).predict_proba(X)
    b = cls(blocks=[Dense(8), Dense(8)], **FAST).fit(X, y).predict_proba(X)
    c = cls(blocks=[Dense(8), Dense(8)], max_iter=3, random_state=1).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_does_not_change_global_torch_rng(small_data):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DeInfoRegClassifier(blocks=[Dense(4)], **FAST).fit(*small_data)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_pickle_and_joblib_round_trip(cls, small_data, tmp_path):
    X, y = small_data
    est = cls(blocks=[Dense(8)], **FAST).fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict_proba(X), est.predict_proba(X))
    joblib.dump(est, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(X), est.predict_proba(X))


def test_clone_is_unfitted(small_data):
    est = DeInfoRegClassifier(blocks=[Dense(8)], alpha=0.1, **FAST).fit(*small_data)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "network_")


def test_pipeline_gridsearch_cross_val(digits):
    X, y = digits
    X, y = X[:400], y[:400]
    pipe = make_pipeline(
        StandardScaler(), DeInfoRegClassifier(blocks=[Dense(32)], max_iter=2, random_state=0)
    )
    grid = GridSearchCV(
        pipe, {"deinforegclassifier__alpha": [1e-3, 1e-1], "deinforegclassifier__batch_size": [32, 64]}, cv=2
    ).fit(X, y)
    assert set(grid.best_params_) == {"deinforegclassifier__alpha", "deinforegclassifier__batch_size"}
    assert len(grid.cv_results_["mean_test_score"]) == 4
    scores = cross_val_score(
        BackpropClassifier(blocks=[Dense(16)], batch_size=32, max_iter=10, random_state=0), X, y, cv=3
    )
    assert scores.shape == (3,) and (scores > 0.5).all()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_warm_start_continues(cls, small_data):
    X, y = small_data
    est = cls(blocks=[Dense(8)], warm_start=True, **FAST).fit(X, y)
    weights = est.network_.state_dict()
    first = {k: v.clone() for k, v in weights.items()}
    est.fit(X, y)
    assert est.n_iter_ == 6 and len(est.history_) == 6
    fresh = cls(blocks=[Dense(8)], **FAST).fit(X, y)
    # continuing moves on from the first fit's weights, not from a new initialisation
    assert any(not np.allclose(first[k], est.network_.state_dict()[k]) for k in first)
    assert not np.allclose(est.predict_proba(X), fresh.predict_proba(X))


def test_warm_start_rejects_new_classes(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(8)], warm_start=True, **FAST).fit(X, np.minimum(y, 1))
    with pytest.raises(ValueError, match="not seen in the first fit"):
        est.fit(X, y)
    np.testing.assert_array_equal(est.classes_, [0, 1])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_partial_fit(cls, small_data):
    X, y = small_data
    est = cls(blocks=[Dense(8)], random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(X, y)
    est.partial_fit(X[:60], y[:60], classes=[0, 1, 2])
    assert est.n_iter_ == 1
    est.partial_fit(X[60:], y[60:])
    assert est.n_iter_ == 2
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    trainer = est.network_.trainers[0]
    assert trainer.steps_done == 2


def test_partial_fit_converges_like_fit(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Dense(64)], random_state=0)
    for _ in range(8):
        est.partial_fit(X[:1200], y[:1200], classes=np.arange(10))
    assert est.score(X[1200:], y[1200:]) > 0.85


def test_early_stopping_restores_best_weights(digits):
    X, y = digits
    est = DeInfoRegClassifier(
        blocks=[Dense(32)],
        early_stopping=True,
        n_iter_no_change=2,
        max_iter=60,
        learning_rate=0.05,
        random_state=0,
    ).fit(X[:500], y[:500])
    val = [r["blocks"][-1]["validation_accuracy"] for r in est.history_]
    assert est.n_iter_ < 60
    assert est.block_scores_[-1] == pytest.approx(max(val))


def test_early_stopping_warns_when_max_iter_ends_it(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning):
        DeInfoRegClassifier(blocks=[Dense(32)], early_stopping=True, max_iter=2, random_state=0).fit(
            X[:300], y[:300]
        )


@pytest.mark.parametrize(
    "optimizer,lr,alpha",
    # Plain SGD scales the classifier's update by alpha (its only signal is alpha x CE), so it
    # needs a larger alpha; Adam and LARS are insensitive to that scale.
    [("adam", 1e-3, 1e-3), ("sgd", 0.05, 1.0), ("lars", 2.0, 1e-3)],
)
def test_optimizers_train(optimizer, lr, alpha, digits):
    X, y = digits
    est = DeInfoRegClassifier(
        blocks=[Dense(64)],
        optimizer=optimizer,
        learning_rate=lr,
        final_learning_rate=None,  # the optimiser alone, at a constant rate
        alpha=alpha,
        max_iter=10,
        random_state=0,
    ).fit(X[:1000], y[:1000])
    assert est.score(X[1000:], y[1000:]) > 0.8


def test_cosine_schedule_reaches_final_rate(small_data):
    est = DeInfoRegClassifier(
        blocks=[Dense(8)], learning_rate=0.1, final_learning_rate=0.001, optimizer="sgd", **FAST
    ).fit(*small_data)
    trainer = est.network_.trainers[0]
    assert trainer.steps_done == trainer.total_steps == 3
    # the last step used the rate of step T-1 of the cosine; one step later it is the final rate
    last = cosine_lr(2, 3, 0.1, 0.001)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(last)
    assert 0.001 < last < 0.1
    assert cosine_lr(3, 3, 0.1, 0.001) == pytest.approx(0.001)


def test_projector_widths(small_data):
    est = DeInfoRegClassifier(blocks=[Dense(8)], projector=(16, 4), **FAST).fit(*small_data)
    proj = est.network_.blocks[0].projector
    assert [m.out_features for m in proj if hasattr(m, "out_features")] == [16, 4]


def test_input_shape_reshapes_flat_rows(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Conv((4, "M"))], input_shape=(1, 8, 8), **FAST).fit(X[:200], y[:200])
    assert est.input_shape_ == (1, 8, 8)
    assert est.predict(X[:5]).shape == (5,)


@pytest.mark.parametrize("augment", ["basic", "strong"])
def test_augmentation_runs_only_in_fit(augment, digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Conv((4, "M"))], input_shape=(1, 8, 8), augment=augment, **FAST).fit(
        X[:200], y[:200]
    )
    np.testing.assert_array_equal(est.predict_proba(X[:50]), est.predict_proba(X[:50]))


def test_callable_augment_is_called_per_image(digits):
    X, y = digits
    calls = []

    def augment(batch):
        calls.append(batch.shape)
        return batch

    DeInfoRegClassifier(blocks=[Conv((4,))], input_shape=(1, 8, 8), augment=augment, **FAST).fit(
        X[:100], y[:100]
    )
    # one call per image (so a random transform draws per image), never with the batch
    assert calls and all(s == (1, 8, 8) for s in calls)


def test_last_batch_of_one_is_merged(small_data):
    X, y = small_data
    # 117 training rows with batch_size 29 -> 4 batches of 29 and one of 1, merged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = DeInfoRegClassifier(blocks=[Dense(8)], batch_size=29, validation_fraction=None, **FAST)
        est.fit(X[:117], y[:117])
    for param in est.network_.parameters():
        assert np.isfinite(param.detach().numpy()).all()
    assert est.network_.trainers[0].steps_done == 3 * 4
