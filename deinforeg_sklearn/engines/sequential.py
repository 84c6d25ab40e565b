"""The sequential schedule: for each batch, each unit in turn, on one device.

This is the reference every other engine must reproduce: a unit reads only the previous
unit's detached output for the same batch, so any schedule that keeps that data flow (and the
order of batches per unit) performs the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from deinforeg_sklearn.training.step import StepTrainer

MaskFn = Callable[[torch.Tensor], torch.Tensor | None]


def train_epoch(
    trainers: Sequence[StepTrainer],
    X: torch.Tensor,
    y: torch.Tensor,
    batches: Sequence[np.ndarray],
    device: torch.device,
    mask_fn: MaskFn,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    epoch: int = 0,
) -> np.ndarray:
    """Train every unit on every batch; return per-unit mean stats (last column: accuracy).

    Raises
    ------
    FloatingPointError
        When a unit's loss is not finite, naming the block and the epoch.
    """
    n_units = len(trainers)
    sums: list[torch.Tensor | float] = [0.0] * n_units
    for index in batches:
        idx = torch.from_numpy(index)
        xb = X[idx].to(device, non_blocking=True)
        yb = y[idx].to(device, non_blocking=True)
        mask = mask_fn(xb)
        if augment is not None:
            xb = augment(xb)
        h = xb
        for u, trainer in enumerate(trainers):
            try:
                h, stats = trainer.step(h, yb, mask)
            except FloatingPointError as exc:
                raise FloatingPointError(
                    f"Block {u} produced a non-finite loss in epoch {epoch + 1}: lower "
                    "learning_rate, scale the input (e.g. StandardScaler), or check the data."
                ) from exc
            weight = torch.ones_like(stats) * len(index)
            weight[-1] = 1.0  # the last entry is already a count of correct predictions
            sums[u] = sums[u] + stats * weight
    # One device-to-host copy per epoch, not one per step: a .item() per batch would make
    # every step wait for the device.
    table = torch.stack([torch.as_tensor(s) for s in sums]).double().cpu().numpy()
    total = sum(len(b) for b in batches)
    return table / total


@torch.no_grad()
def evaluate_logits(
    network: torch.nn.Module,
    X: torch.Tensor,
    batch_size: int,
    device: torch.device,
    mask_fn: MaskFn,
    last: int | None = None,
) -> list[np.ndarray]:
    """Logits of each head (up to block ``last``) for all rows of X, in eval mode."""
    was_training = network.training
    network.eval()
    try:
        outs: list[list[torch.Tensor]] = []
        for start in range(0, len(X), batch_size):
            xb = X[start : start + batch_size].to(device, non_blocking=True)
            logits = network.head_logits(xb, mask_fn(xb), last=last)
            outs.append([t.float().cpu() for t in logits])
    finally:
        network.train(was_training)
    return [torch.cat(col).numpy() for col in zip(*outs, strict=True)]
