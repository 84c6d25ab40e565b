"""The sequential schedule: for each batch, each block in turn, on one device.

This is the reference every other engine must reproduce.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from deinforeg_sklearn.engines.base import Augment, Engine, MaskFn, prepare_batch, stats_table, step_units
from deinforeg_sklearn.training.step import StepTrainer


class SequentialEngine(Engine):
    """All blocks on one device, one batch at a time."""

    def __init__(self, trainers: Sequence[StepTrainer], device: torch.device) -> None:
        self.trainers = list(trainers)
        self.device = device
        self.stage_sizes = [len(self.trainers)]
        self.busy_seconds = [0.0]

    def train_epoch(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> np.ndarray:
        units = range(len(self.trainers))
        sums: list = [0.0] * len(self.trainers)
        for index in batches:
            h, yb, mask = prepare_batch(X, y, index, self.device, mask_fn, augment)
            start = time.perf_counter()
            step_units(self.trainers, units, h, yb, mask, epoch, sums)
            self.busy_seconds[0] += time.perf_counter() - start
            if self.on_batch is not None:
                self.on_batch()
        return stats_table(sums, sum(len(b) for b in batches))


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
