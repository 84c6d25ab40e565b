"""Accuracy on real data (scikit-learn's digits); timings live in benchmarks/, not here."""

import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv, Dense


@pytest.fixture(scope="module")
def split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_dense_4x256_reaches_095(cls, split):
    X_train, X_test, y_train, y_test = split
    model = make_pipeline(StandardScaler(), cls(blocks=[Dense(256)] * 4, random_state=0))
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.95


def test_conv_on_8x8_images_reaches_090(split):
    X_train, X_test, y_train, y_test = split
    model = make_pipeline(
        StandardScaler(),
        DeInfoRegClassifier(
            blocks=[Conv((32, "M")), Conv((64, "M"))], input_shape=(1, 8, 8), max_iter=30, random_state=0
        ),
    )
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.90


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dense_4x256_reaches_095_other_seeds(seed, split):
    X_train, X_test, y_train, y_test = split
    for cls in (DeInfoRegClassifier, BackpropClassifier):
        model = make_pipeline(StandardScaler(), cls(blocks=[Dense(256)] * 4, random_state=seed))
        assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.95, (cls.__name__, seed)
