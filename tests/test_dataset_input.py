"""``fit(dataset)``: a map-style torch Dataset of ``(x, y)`` items as training data.

Invariant: a Dataset fit equals the fit on the same samples as an array with the same
``input_shape`` (the Dataset is read in the same batch order, each batch converted alike),
with or without ``num_workers`` loading ahead. Bad Datasets are errors before training.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv, Dense

FAST = dict(blocks=[Conv([8, "M"]), Dense(24)], max_iter=2, random_state=0)


class Images(Dataset):
    """Digits as (1, 8, 8) uint8 images with integer labels, like a torchvision data set."""

    def __init__(self, X, y, bad_item: int | None = None, pairs: bool = True):
        self.X, self.y, self.bad_item, self.pairs = X, y, bad_item, pairs

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        x = torch.from_numpy(self.X[i].reshape(1, 8, 8))
        if i == self.bad_item:
            x = x[:, :4]
        return (x, int(self.y[i])) if self.pairs else x


@pytest.fixture(scope="module")
def digits_u8():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:300].astype(np.uint8), y[:300]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_dataset_trains_as_the_same_array(num_workers, digits_u8):
    X, y = digits_u8
    array = DeInfoRegClassifier(**FAST, input_shape=(1, 8, 8), input_scale=1 / 16).fit(X, y)
    data = DeInfoRegClassifier(**FAST, input_scale=1 / 16, num_workers=num_workers).fit(Images(X, y))
    assert data.input_shape_ == (1, 8, 8) and data.n_features_in_ == 64
    np.testing.assert_array_equal(array.predict_proba(X), data.predict_proba(X))
    np.testing.assert_array_equal(data.predict_proba(Images(X, y)), data.predict_proba(X))
    np.testing.assert_array_equal(data.predict_proba(Images(X, y, pairs=False)), data.predict_proba(X))


def test_a_dataset_as_validation_set_and_with_weights(digits_u8):
    X, y = digits_u8
    est = BackpropClassifier(**FAST, input_scale=1 / 16, validation_fraction=None, class_weight="balanced")
    est.fit(Images(X[:200], y[:200]), X_val=Images(X[200:], y[200:]))
    staged = [np.mean(est.classes_[p.argmax(1)] == y[200:]) for p in est.staged_predict_proba(X[200:])]
    np.testing.assert_allclose(est.block_scores_, staged)


def _no_training(*args, **kwargs):
    raise AssertionError("training started before the Dataset was checked")


@pytest.mark.parametrize(
    "make, fit_kwargs, match",
    [
        (lambda X, y: Images(X, y, bad_item=7), {}, r"item 7 has a sample of shape \(1, 4, 8\)"),
        (lambda X, y: Images(X, y, pairs=False), {}, "not an \\(x, y\\) pair"),
        (lambda X, y: Images(X, y), {"y": np.zeros(300)}, "pass y=None"),
        (lambda X, y: Images(X[:0], y[:0]), {}, "empty"),
    ],
)
def test_bad_datasets_are_clear_errors_before_training(make, fit_kwargs, match, digits_u8, monkeypatch):
    X, y = digits_u8
    monkeypatch.setattr("deinforeg_sklearn.estimators._base.start_engine", _no_training)
    with pytest.raises(ValueError, match=match):
        DeInfoRegClassifier(**FAST).fit(make(X, y), **fit_kwargs)


def test_predict_on_a_dataset_of_another_shape_is_refused(digits_u8):
    X, y = digits_u8
    est = DeInfoRegClassifier(**FAST).fit(Images(X, y))

    class Wider(Images):
        def __getitem__(self, i):
            return torch.zeros(1, 8, 9), 0

    with pytest.raises(ValueError, match="72 features"):
        est.predict(Wider(X, y))


def test_a_dataset_feeds_a_pipeline_from_rank_0(digits_u8, one_thread):
    """Rank 0 loads the batches (here with 2 DataLoader workers); later stages get activations."""
    X, y = digits_u8
    one = DeInfoRegClassifier(**FAST, input_scale=1 / 16).fit(Images(X, y))
    two = DeInfoRegClassifier(
        **FAST, input_scale=1 / 16, num_workers=2, devices=["cpu", "cpu"], engine="processes"
    ).fit(Images(X, y))
    np.testing.assert_allclose(one.predict_proba(X), two.predict_proba(X), atol=1e-5)


def test_pil_images_are_read_channels_first(digits_u8):
    """A torchvision data set without a transform hands out PIL images (height, width, channels)."""
    Image = pytest.importorskip("PIL.Image")
    X, y = digits_u8

    class PilImages(Images):
        def __getitem__(self, i):
            pixels = np.repeat(self.X[i].reshape(8, 8, 1), 3, axis=2)  # an RGB image
            return Image.fromarray(pixels, mode="RGB"), int(self.y[i])

    est = DeInfoRegClassifier(**FAST, input_scale=1 / 16).fit(PilImages(X, y))
    assert est.input_shape_ == (3, 8, 8)
    rgb = np.repeat(X.reshape(-1, 1, 64), 3, axis=1).reshape(-1, 3 * 64)
    np.testing.assert_array_equal(est.predict_proba(PilImages(X, y)), est.predict_proba(rgb))
