"""``to_torchscript`` and ``to_onnx`` of the estimators: glue to ``deinforeg_sklearn.export``."""

from __future__ import annotations

import os

import torch
from sklearn.utils.validation import check_is_fitted

from deinforeg_sklearn.export import onnx as onnx_export
from deinforeg_sklearn.export import torchscript


class ExportMixin:
    """Export a fitted estimator's inference network as a file that runs without this package."""

    def to_torchscript(self, path: str | os.PathLike) -> torch.jit.ScriptModule:
        """Save the fitted model as TorchScript: ``torch.jit.load(path)(rows)`` runs it.

        The module takes raw rows ``(n, n_features)`` as ``predict_proba`` does (float32; int64
        token ids for an Embedding first block), applies ``input_scale`` and ``input_shape``
        inside, and returns the inference block's class probabilities ``(n, n_classes)`` in
        the order of ``classes_`` (stored in the archive as ``classes.json``; read it with
        ``torch.jit.load(path, _extra_files={"classes.json": ""})``). It runs on the CPU; move
        it with ``.to(device)``. Under ``inference="adaptive"`` it holds the inference block
        (docs/user-guide/export.md).

        Parameters
        ----------
        path : str or path
            The file to write.

        Returns
        -------
        torch.jit.ScriptModule
            The traced module that was saved.
        """
        check_is_fitted(self)
        return torchscript.to_torchscript(self, path)

    def to_onnx(self, path: str | os.PathLike, opset_version: int | None = None) -> None:
        """Save the fitted model as ONNX: raw rows in, class probabilities out, any batch size.

        Input ``"input"``: ``(batch, n_features)`` float32 (int64 token ids for an Embedding
        first block), with ``input_scale`` and ``input_shape`` applied inside. Output
        ``"probabilities"``: ``(batch, n_classes)`` float32 in the order of ``classes_``, which
        the file's metadata holds as JSON under ``"classes"``. Needs the ``onnx`` extra
        (``pip install "deinforeg-sklearn[onnx]"``). An LSTM block over token ids cannot be
        exported (NotImplementedError; use :meth:`to_torchscript`). Under
        ``inference="adaptive"`` the file holds the inference block
        (docs/user-guide/export.md).

        Parameters
        ----------
        path : str or path
            The file to write.
        opset_version : int or None, default=None
            The ONNX opset; None takes the exporter's default.
        """
        check_is_fitted(self)
        onnx_export.to_onnx(self, path, opset_version)
