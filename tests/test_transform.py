"""``transform``: the features the inference block's classifier reads, for all four estimators.

Invariant (training/features.py): the classifier of the chosen head, applied to what
``transform`` returns, gives the probabilities ``predict_proba`` (or ``staged_predict_proba``
for another block) gives; so a fitted estimator is a feature step whose features are the
ones its own predictions come from.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training.associated import _in_float64

FAST = {"blocks": [Dense(32), Dense(24)], "max_iter": 3, "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16).astype(np.float32), y[:400]


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _probabilities_from(est, features, head):
    network, x = est.network_, torch.from_numpy(features)
    network.eval()  # the classifiers' BatchNorm as predict runs it
    with torch.no_grad():
        if isinstance(est, ALClassifier):  # bridge, then the label side back to class scores
            s = _in_float64(network.blocks[-1].bridge, x)
            for block in reversed(network.blocks):
                s = _in_float64(block.inverse, s)
            s = s.clamp_min(1e-12)
            return (s / s.sum(dim=1, keepdim=True)).numpy()
        return _softmax(network.classifier_of(head)(x).double().numpy())


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier])
def test_the_classifier_of_the_features_gives_predict_proba(cls, digits):
    X, y = digits
    est = cls(**FAST).fit(X, y)
    features = est.transform(X)
    assert features.dtype == np.float32 and features.shape[0] == len(X)
    proba = _probabilities_from(est, features, est.inference_block_)
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5)
    assert np.array_equal(est.transform(X[:50]), features[:50])  # rows do not depend on the batch


def test_another_block_of_deinforeg(digits):
    X, y = digits
    est = DeInfoRegClassifier(**FAST, projector=(16,)).fit(X, y)
    staged = list(est.staged_predict_proba(X))
    first = est.transform(X, block=0)
    np.testing.assert_allclose(_probabilities_from(est, first, 0), staged[0], atol=1e-5)
    assert np.array_equal(est.transform(X, block=-1), est.transform(X, block=1))
    with pytest.raises(ValueError, match=r"block=2 is not a block with a classifier: this model has 2"):
        est.transform(X, block=2)
    with pytest.raises(ValueError, match="block=True"):
        est.transform(X, block=True)
    bp = BackpropClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="this model has 1"):
        bp.transform(X, block=1)


def test_a_fitted_estimator_is_a_feature_step_in_a_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(DeInfoRegClassifier(**FAST), LogisticRegression(max_iter=500)).fit(X, y)
    assert pipe.score(X, y) > 0.8
    features = pipe[0].transform(X)
    np.testing.assert_array_equal(pipe[-1].predict(features), pipe.predict(X))


def test_transform_reads_sparse_rows_and_refuses_before_fit(digits):
    X, y = digits
    with pytest.raises(NotFittedError):
        DeInfoRegClassifier().transform(X)
    est = DeInfoRegClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(est.transform(sp.csr_matrix(X)), est.transform(X))
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :10])
