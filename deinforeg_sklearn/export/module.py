"""``predict_proba`` as one ``nn.Module``: what the exporters trace.

Why a module of its own: ``predict_proba`` reads rows through ``Rows`` (float32, then
``input_scale``), reshapes them to ``input_shape_``, runs ``head_logits`` up to the inference
block and takes a softmax. An exported file must do all of it, so a user who serves it feeds
the same raw rows as to ``predict_proba``. The module holds a CPU copy of the network without
its trainers (optimiser state is no part of a served model).

Invariant: ``InferenceModule(x)`` equals ``predict_proba(x)`` within float32 rounding
(tests/test_export.py, within 1e-5, also for the exported files).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch
from torch import nn

from deinforeg_sklearn.blocks import resolve_blocks


class InferenceModule(nn.Module):
    """Rows of shape ``(n, n_features)`` in, class probabilities ``(n, n_classes)`` out.

    Parameters
    ----------
    network : nn.Module
        A fitted network (a ``UnitNetwork``), already on the CPU, in eval mode, without
        trainers; see :func:`inference_module`.
    head : int
        The head whose probabilities come out (the estimator's ``inference_block_``).
    sample_shape : tuple of int
        The shape one row is read in (``input_shape_``).
    scale : float or None
        ``input_scale``: multiplies the float32 rows.
    tokens : bool
        The rows are token ids (an Embedding first block): int64 in, padding (0) masked.
    """

    def __init__(
        self, network: nn.Module, head: int, sample_shape: tuple[int, ...], scale: float | None, tokens: bool
    ) -> None:
        super().__init__()
        self.network = network
        self.head = head
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.scale = None if scale is None else float(scale)
        self.tokens = tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape((-1, *self.sample_shape))
        if self.tokens:
            mask = x != 0  # as data/inputs.token_mask
        else:
            mask = None
            x = x.to(torch.float32)
            if self.scale is not None:
                x = x * self.scale
        logits = self.network.head_logits(x, mask, last=self.head)[-1]
        return torch.softmax(logits.to(torch.float32), dim=1)

    def example_input(self, n_rows: int = 2) -> torch.Tensor:
        """Rows to trace the module with (token id 1, or ones)."""
        width = int(np.prod(self.sample_shape))
        if self.tokens:
            return torch.ones((n_rows, width), dtype=torch.int64)
        return torch.ones((n_rows, width), dtype=torch.float32)


def inference_module(estimator) -> InferenceModule:
    """The :class:`InferenceModule` of a fitted estimator (a CPU copy; the estimator is untouched).

    Adaptive inference (``inference="adaptive"``) picks a block per sample, a data-dependent
    branch no exported graph keeps: the module returns the inference block's probabilities,
    ``predict_proba`` of the same model with ``inference="last"`` or ``"best"``.
    """
    network = estimator.network_
    # the trainers (optimisers, schedules) stay behind: ``memo`` maps them to nothing
    memo = {id(network.trainers): []}
    served = copy.deepcopy(network, memo).cpu().eval()
    served.requires_grad_(False)
    prepare = getattr(served, "prepare_for_export", None)  # a network's own needs (AL: float64)
    if prepare is not None:
        prepare()
    return InferenceModule(
        served,
        int(estimator.inference_block_),
        tuple(estimator.input_shape_),
        getattr(estimator, "_input_scale", None),
        bool(estimator._tokens),
    )


def classes_json(estimator) -> str:
    """``classes_`` as JSON, stored with the exported file so that its argmax maps to labels."""
    return json.dumps(np.asarray(estimator.classes_).tolist())


def block_names(estimator) -> str:
    """The estimator's block specs by type, for an export error ("Dense, Dense" by default)."""
    if estimator.blocks is None:
        return "Dense, Dense"
    return ", ".join(type(spec).__name__ for spec in resolve_blocks(estimator.blocks))
