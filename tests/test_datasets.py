"""Data loaders, on small files in each data set's standard format that the tests write."""

import csv
import gzip
import pickle

import numpy as np
import pytest

from deinforeg_sklearn.datasets import (
    load_ag_news_csv,
    load_cifar,
    load_dbpedia_csv,
    load_fashion_mnist,
    load_imdb_csv,
    load_mnist_like,
    load_tiny_imagenet,
    read_idx,
)


def write_idx(path, array, gz=True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_like_idx_files(tmp_path, gz):
    rng = np.random.RandomState(0)
    train, test = rng.randint(0, 256, (5, 28, 28)), rng.randint(0, 256, (3, 28, 28))
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", train, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", np.array([0, 1, 2, 3, 9]), gz)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", test, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.array([4, 5, 6]), gz)
    (X, y), (Xt, yt) = load_mnist_like(tmp_path)
    assert X.shape == (5, 784) and X.dtype == np.uint8
    np.testing.assert_array_equal(X[1], train[1].reshape(-1))
    np.testing.assert_array_equal(y, [0, 1, 2, 3, 9])
    np.testing.assert_array_equal(Xt[2], test[2].reshape(-1))
    np.testing.assert_array_equal(yt, [4, 5, 6])
    (X2, _), _ = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(X2, X)


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01x")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found"):
        load_fashion_mnist(tmp_path / "absent")


def write_pickle(path, obj):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    batches = [rng.randint(0, 256, (2, 3072)).astype(np.uint8) for _ in range(6)]
    for i in range(5):
        write_pickle(folder / f"data_batch_{i + 1}", {b"data": batches[i], b"labels": [i, 9 - i]})
    write_pickle(folder / "test_batch", {b"data": batches[5], b"labels": [3, 4]})
    for root in (tmp_path, folder):
        (X, y), (Xt, yt) = load_cifar(root, 10)
        assert X.shape == (10, 3072)
        np.testing.assert_array_equal(X[2], batches[1][0])
        np.testing.assert_array_equal(y, [0, 9, 1, 8, 2, 7, 3, 6, 4, 5])
        np.testing.assert_array_equal(Xt, batches[5])
        np.testing.assert_array_equal(yt, [3, 4])


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    write_pickle(folder / "train", {b"data": data, b"fine_labels": [57, 99], b"coarse_labels": [1, 2]})
    write_pickle(folder / "test", {b"data": data[:1], b"fine_labels": [3], b"coarse_labels": [0]})
    (X, y), (_, yt) = load_cifar(tmp_path, 100)
    np.testing.assert_array_equal(X, data)
    np.testing.assert_array_equal(y, [57, 99])
    np.testing.assert_array_equal(yt, [3])
    with pytest.raises(ValueError, match="10 or 100"):
        load_cifar(tmp_path, 20)
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        load_cifar(tmp_path, 10)


def test_tiny_imagenet_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "tiny-imagenet-200"
    wnids = ["n001", "n002"]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    colours = {"n001": (255, 0, 0), "n002": (0, 0, 255)}
    for w in wnids:
        images = folder / "train" / w / "images"
        images.mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (64, 64), colours[w]).save(images / f"{w}_{k}.JPEG")
    Image.new("RGB", (64, 64), colours["n002"]).save(folder / "val" / "images" / "val_0.JPEG")
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn002\t0\t0\t63\t63\n")
    (X, y), (Xt, yt) = load_tiny_imagenet(tmp_path, size=32)
    assert X.shape == (4, 3 * 32 * 32)
    np.testing.assert_array_equal(y, [0, 0, 1, 1])
    np.testing.assert_array_equal(yt, [1])
    red = X[0].reshape(3, 32, 32)
    assert red[0].mean() > 240 and red[2].mean() < 15  # channels first, red stays red
    blue = Xt[0].reshape(3, 32, 32)
    assert blue[2].mean() > 240 and blue[0].mean() < 15


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def test_imdb_csv(tmp_path):
    path = tmp_path / "imdb.csv"
    write_csv(path, [["review", "sentiment"], ["Great, fun film", "positive"], ['A "dull" one', "negative"]])
    texts, y = load_imdb_csv(path)
    assert texts == ["Great, fun film", 'A "dull" one']
    np.testing.assert_array_equal(y, [1, 0])
    write_csv(path, [["review", "sentiment"], ["meh", "neutral"]])
    with pytest.raises(ValueError, match="row 2: sentiment must be positive or negative"):
        load_imdb_csv(path)
    write_csv(path, [["text", "label"], ["x", "1"]])
    with pytest.raises(ValueError, match="header with 'review' and 'sentiment'"):
        load_imdb_csv(path)


@pytest.mark.parametrize("loader", [load_ag_news_csv, load_dbpedia_csv])
def test_class_title_text_csv(tmp_path, loader):
    path = tmp_path / "train.csv"
    write_csv(path, [["3", "Stocks rise", "Markets, again, went up."], ["1", "Vote", "An election"]])
    texts, y = loader(path)
    assert texts == ["Stocks rise. Markets, again, went up.", "Vote. An election"]
    np.testing.assert_array_equal(y, [2, 0])
    write_csv(path, [["World", "no class id"]])
    with pytest.raises(ValueError, match="row 1: expected 'class,title,text'"):
        loader(path)
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        loader(tmp_path / "absent.csv")
