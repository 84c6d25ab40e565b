"""A fitted network as a file that runs without this package: TorchScript and ONNX.

The estimators' ``to_torchscript(path)`` and ``to_onnx(path)`` (Lightning's names) call these.
Both export :class:`~deinforeg_sklearn.export.module.InferenceModule`: raw rows in (with
``input_scale`` and ``input_shape`` applied inside), the inference block's class
probabilities out, any number of rows.
"""

from deinforeg_sklearn.export.module import InferenceModule, inference_module
from deinforeg_sklearn.export.onnx import to_onnx
from deinforeg_sklearn.export.torchscript import to_torchscript

__all__ = ["InferenceModule", "inference_module", "to_onnx", "to_torchscript"]
