"""``to_torchscript``: a file that ``torch.jit.load`` runs without this package."""

from __future__ import annotations

import os
import warnings

import torch

from deinforeg_sklearn.export.module import block_names, classes_json, inference_module

#: The extra file in the archive that holds ``classes_`` (read with ``_extra_files``).
CLASSES_FILE = "classes.json"


def to_torchscript(estimator, path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Trace the fitted estimator's :class:`InferenceModule`, save it to ``path``, return it.

    Tracing (not scripting) because the networks' Python (lists of blocks, per-block device
    moves) is not TorchScript; with the rows' shape fixed by ``input_shape_`` the traced graph
    has no data-dependent branch left, and the batch dimension stays free.

    Raises
    ------
    RuntimeError
        The network could not be traced (a custom block with Python-side control flow, for
        one); the message names the block types and carries torch's error.
    """
    module = inference_module(estimator)
    with warnings.catch_warnings():
        # torch deprecates TorchScript in favour of torch.export; a saved TorchScript file
        # still runs under torch.jit.load, and that is what this export promises
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(module, module.example_input(), check_trace=False)
        except Exception as exc:
            raise RuntimeError(
                f"{type(estimator).__name__}.to_torchscript could not trace the network "
                f"(blocks: {block_names(estimator)}): {exc}"
            ) from exc
        torch.jit.save(traced, os.fspath(path), _extra_files={CLASSES_FILE: classes_json(estimator)})
    return traced
