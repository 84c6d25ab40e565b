"""Image data sets in their standard on-disk formats, as flat uint8 arrays (N, C * H * W).

* Fashion-MNIST and MNIST: the four IDX files (``*-images-idx3-ubyte[.gz]``,
  ``*-labels-idx1-ubyte[.gz]``). Debian's ``dataset-fashion-mnist`` package installs them.
* CIFAR-10 / CIFAR-100: the "python version" archives as unpacked by torchvision
  (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``; ``cifar-100-python/train``, ``test``).
* TinyImageNet: the ``tiny-imagenet-200`` folder (``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
  ``val/images`` with ``val/val_annotations.txt``), resized on load (the paper uses 32 x 32).

Every loader returns ``(X_train, y_train), (X_test, y_test)``; pass ``input_shape`` (C, H, W) to
the estimator. Nothing is downloaded: these files come from the data sets' own sites.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from deinforeg_sklearn.datasets._paths import missing

Split = tuple[np.ndarray, np.ndarray]

#: Where Debian's dataset-fashion-mnist package puts the files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise ValueError(
            f"{path}: header declares shape {dims} but the file holds {len(data) - offset} bytes."
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(dims)


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise missing(folder / stem, "IDX file", "pass the folder that holds the four *-ubyte[.gz] files.")


def load_mnist_like(folder: str | os.PathLike) -> tuple[Split, Split]:
    """MNIST or Fashion-MNIST from a folder with the four IDX files; X is (N, 784) uint8."""
    folder = Path(folder)
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(_idx_file(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_idx_file(folder, f"{prefix}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise ValueError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels.")
        splits.append((images.reshape(len(images), -1), labels.astype(np.int64)))
    return splits[0], splits[1]


def load_fashion_mnist(folder: str | os.PathLike | None = None) -> tuple[Split, Split]:
    """Fashion-MNIST (60,000 + 10,000 images, 1 x 28 x 28, 10 classes).

    ``folder`` defaults to where ``apt-get install dataset-fashion-mnist`` puts the files.
    """
    folder = Path(folder) if folder is not None else FASHION_MNIST_SYSTEM_DIR
    if not folder.is_dir():
        raise missing(
            folder,
            "Fashion-MNIST",
            "install it (Debian: apt-get install dataset-fashion-mnist) or pass the folder of its IDX files.",
        )
    return load_mnist_like(folder)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="bytes")


def load_cifar(root: str | os.PathLike, classes: int = 10) -> tuple[Split, Split]:
    """CIFAR-10 or CIFAR-100 (fine labels) from the python-version folder; X is (N, 3072) uint8.

    ``root`` is the folder that holds ``cifar-10-batches-py`` (or ``cifar-100-python``), or that
    folder itself.
    """
    if classes not in (10, 100):
        raise ValueError(f"classes must be 10 or 100, got {classes!r}.")
    name = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    root = Path(root)
    folder = root if root.name == name else root / name
    if not folder.is_dir():
        raise missing(folder, f"CIFAR-{classes}", f"unpack cifar-{classes}-python.tar.gz into {root}.")
    if classes == 10:
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_files, key = [folder / "test_batch"], b"labels"
    else:
        train_files, test_files, key = [folder / "train"], [folder / "test"], b"fine_labels"

    def read(files: list[Path]) -> Split:
        parts = [_unpickle(f) for f in files]
        X = np.concatenate([np.asarray(p[b"data"], dtype=np.uint8) for p in parts])
        y = np.concatenate([np.asarray(p[key], dtype=np.int64) for p in parts])
        return X, y

    return read(train_files), read(test_files)


def load_tiny_imagenet(root: str | os.PathLike, size: int = 32) -> tuple[Split, Split]:
    """TinyImageNet (200 classes; the labelled validation set serves as test set), resized to ``size``.

    X is (N, 3 * size * size) uint8, channels first. Class ids follow the order of ``wnids.txt``.
    """
    from PIL import Image  # torchvision's dependency

    root = Path(root)
    folder = root if (root / "wnids.txt").is_file() else root / "tiny-imagenet-200"
    if not (folder / "wnids.txt").is_file():
        raise missing(folder, "TinyImageNet", "unpack tiny-imagenet-200.zip there.")
    wnids = (folder / "wnids.txt").read_text().split()
    index = {w: i for i, w in enumerate(wnids)}

    def image(path: Path) -> np.ndarray:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).reshape(-1)

    def stack(items: list[tuple[Path, int]]) -> Split:
        X = np.stack([image(p) for p, _ in items]) if items else np.empty((0, 3 * size * size), np.uint8)
        return X, np.array([label for _, label in items], dtype=np.int64)

    train = [(p, index[w]) for w in wnids for p in sorted((folder / "train" / w / "images").glob("*.JPEG"))]
    test = []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            test.append((folder / "val" / "images" / parts[0], index[parts[1]]))
    return stack(train), stack(test)
