"""Pickling, saving and loading a fitted estimator (its network travels as torch bytes)."""

from __future__ import annotations

import torch

from deinforeg_sklearn.persistence import FILE_FORMAT, first_device, network_from_bytes, network_to_bytes


class PersistenceMixin:
    """``pickle`` support and ``save`` / ``load`` for the estimators.

    The network is pickled as torch-serialised bytes, so a model trained on a GPU can be
    restored on a machine without one (see :mod:`deinforeg_sklearn.persistence`).
    """

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if "network_" in state:  # torch-serialised, so it can be restored on another device
            state["network_"] = network_to_bytes(state["network_"])
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("network_"), bytes):
            state["network_"] = network_from_bytes(state["network_"])
            state["device_"] = first_device(state["network_"])
        self.__dict__.update(state)

    def save(self, path) -> None:
        """Write the estimator (parameters, classes, weights, optimiser state) to a torch file.

        Load it with ``type(estimator).load(path)``; a model saved on a GPU loads on a
        CPU-only machine. The file is a pickle: load only files you trust.
        """
        torch.save({"format": FILE_FORMAT, "estimator": self}, path)

    @classmethod
    def load(cls, path):
        """Read an estimator written by :meth:`save` (only from a trusted source)."""
        content = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(content, dict) or content.get("format") != FILE_FORMAT:
            raise ValueError(f"{path!s} was not written by {cls.__name__}.save.")
        estimator = content["estimator"]
        if not isinstance(estimator, cls):
            raise TypeError(f"{path!s} holds a {type(estimator).__name__}, not a {cls.__name__}.")
        return estimator
