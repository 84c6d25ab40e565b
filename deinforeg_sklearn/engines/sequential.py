"""The sequential schedule: for each batch, each unit in turn, on one device.

This is the reference every other engine must reproduce.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from deinforeg_sklearn.engines.base import Augment, Engine, MaskFn, RowSource, prepare_batch, step_units
from deinforeg_sklearn.training.stats import EpochStats, UnitEpochStats
from deinforeg_sklearn.training.step import StepTrainer


class SequentialEngine(Engine):
    """All units on one device, one batch at a time (one stage, the caller's thread count)."""

    def __init__(self, trainers: Sequence[StepTrainer], device: torch.device) -> None:
        super().__init__(trainers, [list(range(len(trainers)))])
        self.device = device
        self.devices = [device]

    def train_epoch(
        self,
        X: RowSource,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> list[UnitEpochStats]:
        units = self.stages[0]
        stats = EpochStats(len(self.trainers))
        for index in batches:
            h, yb, mask = prepare_batch(X, y, index, self.device, mask_fn, augment)
            start = time.perf_counter()
            step_units(self.trainers, units, h, yb, mask, epoch, stats)
            # let this batch go before the next is made: for wide rows (a TF-IDF batch
            # densified is 32 MiB) two batches alive at once would double that memory
            h = yb = mask = None
            self.busy_seconds[0] += time.perf_counter() - start
            if self.on_batch is not None:
                self.on_batch()
        return stats.means(sum(len(b) for b in batches))
