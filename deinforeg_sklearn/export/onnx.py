"""``to_onnx``: raw float rows in, class probabilities out, any number of rows."""

from __future__ import annotations

import inspect
import os
import warnings

import torch

from deinforeg_sklearn.export.module import block_names, classes_json, inference_module

#: Names of the graph's input and output.
INPUT_NAME, OUTPUT_NAME = "input", "probabilities"


def to_onnx(estimator, path: str | os.PathLike, opset_version: int | None = None) -> None:
    """Export the fitted estimator's :class:`InferenceModule` to an ONNX file at ``path``.

    The graph's input ``"input"`` is ``(batch, n_features)`` float32 (int64 token ids for an
    Embedding first block) with a dynamic batch dimension; its output ``"probabilities"`` is
    ``(batch, n_classes)`` float32 in the order of ``classes_``, which the file's metadata holds
    as JSON under ``"classes"``. Uses torch's ``torch.export``-based exporter (it needs the
    ``onnxscript`` package: ``pip install "deinforeg-sklearn[onnx]"``).

    Raises
    ------
    ImportError
        ``onnx`` or ``onnxscript`` is not installed.
    NotImplementedError
        An LSTM block over token ids (an Embedding first block): its packed sequences have a
        data-dependent shape; ``to_torchscript`` exports such a model.
    RuntimeError
        The exporter could not convert the network; the message names the block types and
        carries the exporter's error.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"to_onnx needs the onnx and onnxscript packages ({exc.name} is missing): "
            'pip install "deinforeg-sklearn[onnx]".'
        ) from exc
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise RuntimeError(
            f"to_onnx needs torch >= 2.6 (its torch.export-based exporter); this is {torch.__version__}."
        )
    module = inference_module(estimator)
    if module.tokens and any(isinstance(m, torch.nn.LSTM) for m in module.modules()):
        # the LSTM block packs each sequence to its own length (pack_padded_sequence), a
        # data-dependent shape that torch.export cannot trace
        raise NotImplementedError(
            "to_onnx cannot export an LSTM block over token ids: it packs each sequence to its "
            "unpadded length, which torch's ONNX exporter cannot trace. Use to_torchscript(path) "
            "for this model; LSTM blocks over float sequences (input_shape=(T, D)) export to ONNX."
        )
    example = module.example_input()
    batch = torch.export.Dim("batch", min=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's progress notes and deprecations
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: batch}},
                opset_version=opset_version,
                verbose=False,
            )
    except Exception as exc:
        raise RuntimeError(
            f"{type(estimator).__name__}.to_onnx could not export the network "
            f"(blocks: {block_names(estimator)}): {type(exc).__name__}: {exc}"
        ) from exc
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = "classes", classes_json(estimator)
    onnx.save_model(model, os.fspath(path))
