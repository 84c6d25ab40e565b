"""Random shapes, dtypes, labels and parameters through fit / predict.

Each run either raises a documented exception (ValueError for bad data or parameters,
TypeError for unsupported input types) or returns valid predictions: never another
exception, a hang, or a NaN probability.
"""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv, Dense
from deinforeg_sklearn.training import StepTrainer

DOCUMENTED = (ValueError, TypeError)


@st.composite
def problems(draw):
    n = draw(st.integers(0, 40))
    d = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, bool]))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    X = rng.randn(n, d) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    X = (X > 0) if dtype is bool else X.astype(dtype)
    if draw(st.booleans()) and n and dtype in (np.float32, np.float64):
        X[rng.randint(n), rng.randint(d)] = draw(st.sampled_from([np.nan, np.inf]))
    k = draw(st.integers(1, 4))
    labels = draw(st.sampled_from([np.arange(k), np.array(["a", "b", "c", "d"])[:k], np.arange(k) * 2 - 1]))
    y = labels[rng.randint(0, k, n)]
    params = {
        "blocks": draw(st.sampled_from([[Dense(4)], [Dense(3), Dense(5)], None])),
        "batch_size": draw(st.sampled_from(["auto", 1, 2, 7, 500])),
        "max_iter": draw(st.integers(1, 2)),
        "validation_fraction": draw(st.sampled_from([None, 0.0, 0.2, 0.5])),
        "learning_rate": draw(st.sampled_from([1e-3, 0.5])),
        "optimizer": draw(st.sampled_from(["adam", "sgd", "lars"])),
        "random_state": 0,
    }
    if draw(st.booleans()) and d == 4:
        params.update(blocks=[Conv((2,))], input_shape=(1, 2, 2))
    cls = draw(st.sampled_from([DeInfoRegClassifier, BackpropClassifier]))
    if cls is DeInfoRegClassifier:
        params["alpha"] = draw(st.sampled_from([0.0, 1e-3, 1.0]))
        params["inference"] = draw(st.sampled_from(["last", "best", "adaptive"]))
    return cls(**params), X, y


class CountingSteps:
    """Counts training steps, so that a test can tell errors before training from errors during it."""

    def __init__(self):
        self.steps = 0
        self.original = StepTrainer.step

    def __enter__(self):
        counter = self

        def step(trainer, *args):
            counter.steps += 1
            return counter.original(trainer, *args)

        StepTrainer.step = step
        return self

    def __exit__(self, *exc):
        StepTrainer.step = self.original


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_fit_predict_never_crashes(problem):
    est, X, y = problem
    with warnings.catch_warnings(), CountingSteps() as counter:
        warnings.simplefilter("ignore")
        try:
            est.fit(X, y)
        except DOCUMENTED as exc:
            assert str(exc)  # a message that says what is wrong
            assert counter.steps == 0, f"rejected only after training had started: {exc}"
            assert not hasattr(est, "network_")
            return
        except FloatingPointError as exc:  # documented: a non-finite loss names block and epoch
            assert "non-finite loss" in str(exc)
            return
        proba = est.predict_proba(X)
    assert proba.shape == (len(X), len(est.classes_))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(est.predict(X)) <= set(est.classes_)
