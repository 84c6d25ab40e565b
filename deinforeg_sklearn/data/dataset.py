"""A ``torch.utils.data.Dataset`` as the rows of a fit: read once for labels, then per batch.

``fit(dataset)`` takes a map-style Dataset whose items are ``(x, y)`` (``predict`` also takes
items that are ``x`` alone). Why it is read once up front: the classes, the stratified
validation split, ``class_weight="balanced"`` and the first block's input shape all need every
label before the first step, and one pass can check every sample's shape too, so that a wrong
sample is an error before training rather than in epoch 40. That pass loads each sample once
and keeps only its label (and the value range, for ``augment="strong"``).

Training then loads each batch's samples when the batch is due (:class:`DatasetRows`), with
``num_workers`` processes of a ``DataLoader`` loading the next batches ahead when asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

#: Seconds a DataLoader waits for a worker's batch before it raises (a way out of a stuck worker).
WORKER_TIMEOUT_S = 300


def is_dataset(X: object) -> bool:
    """Whether X is a map-style torch Dataset (and not an array)."""
    return isinstance(X, Dataset) and hasattr(X, "__len__")


def _sample(item: object, index: int, labelled: bool) -> tuple[torch.Tensor, object]:
    """``(x, y)`` of one item, with x as a tensor; a clear error for anything else."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        x, y = item
    elif labelled:
        raise ValueError(
            f"Dataset item {index} is a {type(item).__name__}, not an (x, y) pair: fit needs "
            "__getitem__ to return (sample, label)."
        )
    else:
        x, y = item, None
    if type(x).__module__.startswith("PIL."):
        x = _pil_to_chw(x)
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if not (x.dtype.is_floating_point or x.dtype in _INTEGER):
        raise ValueError(f"Dataset item {index}: the sample has dtype {x.dtype}; it must be real or integer.")
    return x, y


_INTEGER = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _pil_to_chw(image: object) -> np.ndarray:
    """A PIL image as a (channels, height, width) array in its own dtype (uint8 for RGB or L).

    torchvision data sets without a ``transform`` return PIL images, whose arrays are
    (height, width, channels); the blocks read channels first, as ``ToTensor`` would give them
    (but unscaled: pass ``input_scale=1/255``).
    """
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


@dataclass(frozen=True)
class DatasetSummary:
    """What the up-front pass found: labels, sample shape and dtype, value range."""

    y: np.ndarray
    sample_shape: tuple[int, ...]
    dtype: torch.dtype
    low: float
    high: float


def summarize(dataset: Dataset, labelled: bool = True, num_workers: int = 0) -> DatasetSummary:
    """Read every item once: labels, and a check that every sample has the first one's shape.

    Raises
    ------
    ValueError
        Fewer than one item, an item that is not ``(x, y)``, samples of different shapes or a
        non-numeric sample.
    """
    n = len(dataset)
    if n < 1:
        raise ValueError("The Dataset is empty.")
    labels: list[object] = []
    shape: tuple[int, ...] | None = None
    dtype = None
    low, high = math.inf, -math.inf
    loader = DataLoader(
        _Indexed(dataset), batch_size=None, num_workers=num_workers,
        timeout=WORKER_TIMEOUT_S if num_workers else 0,
    )  # fmt: skip
    for index, item in loader:
        x, y = _sample(item, index, labelled)
        if shape is None:
            shape, dtype = tuple(x.shape), x.dtype
        elif tuple(x.shape) != shape:
            raise ValueError(
                f"Dataset item {index} has a sample of shape {tuple(x.shape)}, but item 0 has "
                f"{shape}: every sample must have the same shape."
            )
        if x.numel():
            low, high = min(low, float(x.min())), max(high, float(x.max()))
        labels.append(y.item() if isinstance(y, torch.Tensor) and y.ndim == 0 else y)
    return DatasetSummary(np.asarray(labels), shape, dtype, low, high)


class _Indexed(Dataset):
    """Items with their index (the up-front pass reports which item is wrong)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, object]:
        return index, self.dataset[index]


class DatasetRows:
    """The samples of a Dataset as the blocks read them (the ``Rows`` of Dataset input).

    Same interface as :class:`~deinforeg_sklearn.data.inputs.Rows`: ``batch(index, device)``
    loads the samples ``index``, stacks them, and converts them to float32 (times ``scale``)
    on ``device``. :meth:`expect` announces an epoch's batches so that ``num_workers``
    DataLoader processes load them ahead; a batch asked for in that order comes from them.

    Parameters
    ----------
    dataset : Dataset
    shape : tuple of int
        The sample shape the blocks read (the Dataset's samples are reshaped to it).
    scale : float or None
    tokens : bool
    num_workers : int
        DataLoader processes for :meth:`expect` (0: load in this process).
    indices : ndarray or None
        The items this view covers (``take``); None: all.
    storage_dtype : torch.dtype
        The samples' own dtype.
    """

    def __init__(
        self,
        dataset: Dataset,
        shape: tuple[int, ...],
        scale: float | None,
        tokens: bool,
        num_workers: int,
        storage_dtype: torch.dtype,
        indices: np.ndarray | None = None,
    ) -> None:
        self.dataset, self.sample_shape, self.scale, self.tokens = dataset, tuple(shape), scale, tokens
        self.num_workers, self.storage_dtype = num_workers, storage_dtype
        self.indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
        self._ahead: Iterator[torch.Tensor] | None = None
        self._expected: list[np.ndarray] = []

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.indices), *self.sample_shape))

    @property
    def dtype(self) -> torch.dtype:
        return torch.int64 if self.tokens else torch.float32

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_ahead": None, "_expected": []}  # loader iterators do not pickle

    def take(self, index: np.ndarray) -> DatasetRows:
        return DatasetRows(
            self.dataset, self.sample_shape, self.scale, self.tokens, self.num_workers,
            self.storage_dtype, self.indices[np.asarray(index)],
        )  # fmt: skip

    def expect(self, batches: Sequence[np.ndarray]) -> None:
        """The batches of the coming epoch, in order: workers start loading them now."""
        self._ahead, self._expected = None, []
        if self.num_workers and len(batches):
            self._expected = [np.asarray(b) for b in batches]
            # batch_size=None: each sampler element is a whole batch's positions, and _Stacked
            # returns it stacked, so a worker builds one batch per request
            loader = DataLoader(
                _Stacked(self), sampler=[b.tolist() for b in self._expected], batch_size=None,
                num_workers=self.num_workers, timeout=WORKER_TIMEOUT_S,
            )  # fmt: skip
            self._ahead = iter(loader)

    def batch(self, index: np.ndarray | slice, device: torch.device) -> torch.Tensor:
        positions = np.arange(len(self.indices))[index] if isinstance(index, slice) else np.asarray(index)
        if self._expected and np.array_equal(self._expected[0], positions):
            self._expected.pop(0)
            rows = next(self._ahead)
            if not self._expected:
                self._ahead = None  # the epoch is done: let the workers go
        else:
            rows = _Stacked(self)[positions.tolist()]
        xb = rows.to(device, non_blocking=True)
        if self.tokens:
            return xb.to(torch.int64)
        xb = xb.to(torch.float32)
        return xb * self.scale if self.scale is not None else xb


class _Stacked(Dataset):
    """A list of positions of a ``DatasetRows`` -> their samples stacked (what workers return)."""

    def __init__(self, rows: DatasetRows) -> None:
        self.rows = rows

    def __getitem__(self, positions: list[int]) -> torch.Tensor:
        rows = self.rows
        samples = []
        for p in positions:
            item = int(rows.indices[p])
            x, _ = _sample(rows.dataset[item], item, labelled=False)
            if x.numel() != math.prod(rows.sample_shape):
                raise ValueError(
                    f"Dataset item {item} has a sample of shape {tuple(x.shape)}; the fit's samples "
                    f"have shape {rows.sample_shape}."
                )
            samples.append(x.reshape(rows.sample_shape))
        return torch.stack(samples)


class DatasetInput:
    """A checked Dataset where the estimator expects an array: shape, dtype, range, labels.

    ``shape`` is ``(n_samples, n_features)`` as for a flat array, so the estimator's checks
    (``n_features_in_``, ``input_shape``) read it alike; ``sample_shape`` is the samples' own.
    """

    def __init__(self, dataset: Dataset, summary: DatasetSummary) -> None:
        self.dataset, self.summary = dataset, summary
        self.shape = (len(dataset), math.prod(summary.sample_shape))
        self.dtype = str(summary.dtype).replace("torch.", "")

    def __len__(self) -> int:
        return self.shape[0]

    def min(self) -> float:
        return self.summary.low

    def max(self) -> float:
        return self.summary.high

    def rows(
        self, shape: tuple[int, ...], scale: float | None, tokens: bool, num_workers: int
    ) -> DatasetRows:
        return DatasetRows(self.dataset, shape, scale, tokens, num_workers, self.summary.dtype)


def dataset_input(dataset: Dataset, y: object, num_workers: int, labelled: bool = True) -> DatasetInput:
    """Check a Dataset passed as X (``y`` must be None: labels come from its items)."""
    if y is not None:
        raise ValueError(
            "X is a torch Dataset, whose items carry the labels: pass y=None (or pass arrays X and y)."
        )
    if labelled:
        return DatasetInput(dataset, summarize(dataset, True, num_workers))
    x, _ = _sample(dataset[0], 0, labelled=False)  # predict: the first sample's shape; each batch is checked
    return DatasetInput(dataset, DatasetSummary(np.empty(0), tuple(x.shape), x.dtype, math.nan, math.nan))
