"""Data handling: minibatches, validation splits, weights, augmentation and input shapes."""

from deinforeg_sklearn.data.augment import PerBatch

__all__ = ["PerBatch"]
