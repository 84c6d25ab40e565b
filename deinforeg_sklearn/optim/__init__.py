"""Optimisers and the learning-rate schedule shared by all estimators."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from deinforeg_sklearn.optim.lars import LARS
from deinforeg_sklearn.optim.schedules import RateSchedule, cosine_lr

__all__ = ["LARS", "RateSchedule", "cosine_lr", "make_optimizer"]


def make_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict], name: str, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Build the optimiser named by the estimator's ``optimizer`` parameter.

    ``params`` are parameters, or parameter groups (dicts with ``"params"``, as torch takes
    them) whose extra keys, such as the ``lr_scale`` that ``StepTrainer`` reads, are kept.
    """
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
        params = [g for g in groups if g["params"]]
    else:
        params = [p for p in params if p.requires_grad]
    if name == "adam":
        # The fused kernel updates all tensors of a block in one call; a block's few small
        # tensors otherwise cost more in per-tensor dispatch than in arithmetic.
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch, or a device without it
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}: use 'adam', 'sgd' or 'lars'.")
