"""Logits of every head for many rows, batch by batch, in eval mode (validation and predict)."""

from __future__ import annotations

import numpy as np
import torch

from deinforeg_sklearn.data.eval_batches import padded_rows, rows_per_pass
from deinforeg_sklearn.data.inputs import MaskFn, RowSource
from deinforeg_sklearn.training.protocols import UnitNetwork


@torch.no_grad()
def evaluate_logits(
    network: UnitNetwork,
    X: RowSource,
    batch_size: int,
    device: torch.device,
    mask_fn: MaskFn,
    last: int | None = None,
) -> list[np.ndarray]:
    """Logits of each head (up to head ``last``) for all rows of X, in eval mode.

    The network's train/eval mode is restored afterwards, so a validation pass in the middle
    of a fit leaves BatchNorm and dropout as training left them.
    """
    batch_size = rows_per_pass(X, batch_size)
    was_training = network.training
    network.eval()
    try:
        outs: list[list[torch.Tensor]] = []
        for start in range(0, len(X), batch_size):
            xb, n = padded_rows(X.batch(slice(start, start + batch_size), device))
            logits = network.head_logits(xb, mask_fn(xb), last=last)
            outs.append([t[:n].float().cpu() for t in logits])
    finally:
        network.train(was_training)
    return [torch.cat(col).numpy() for col in zip(*outs, strict=True)]
