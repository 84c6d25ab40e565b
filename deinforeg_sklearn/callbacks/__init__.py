"""Hooks into a fit, and loggers built on them.

A callback is any object with one or more of ``on_fit_begin(estimator)``,
``on_epoch_end(estimator, record)`` and ``on_fit_end(estimator)``; pass a list of them as the
estimator's ``callbacks``. :class:`Callback` is a base class with no-op hooks. A callback may
also define ``close()``: the fit calls it when it ends, however it ends (loggers release their
writers there).
"""

from deinforeg_sklearn.callbacks.base import HOOKS, Callback, check_callbacks
from deinforeg_sklearn.callbacks.csv_logger import CSVLogger
from deinforeg_sklearn.callbacks.mlflow_logger import MLflowLogger
from deinforeg_sklearn.callbacks.records import flat_record
from deinforeg_sklearn.callbacks.tensorboard_logger import TensorBoardLogger

__all__ = [
    "HOOKS",
    "CSVLogger",
    "Callback",
    "MLflowLogger",
    "TensorBoardLogger",
    "check_callbacks",
    "flat_record",
]
