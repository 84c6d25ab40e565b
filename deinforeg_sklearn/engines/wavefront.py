"""The wavefront schedule: every unit of one device trains at once, each on its own batch.

Why: a unit's step reads only the previous unit's detached output for the same batch, so
nothing forces the units of one device to wait for each other within a batch. At tick s, unit
k trains on batch s - k, on the output that unit k - 1 produced for that batch at tick s - 1.
Every input of a tick is known when the tick starts, so the tick is one computation: the
forwards of all active units, one backward of their summed losses (their graphs share
nothing, so each parameter receives exactly its own unit's gradient), and their optimiser
steps. Runs of same-shaped DeInfoReg blocks run as one stacked computation
(``training/stacked.py``).

::

    tick:     0    1    2    3    4    5   ...  T+K-2
    unit 0:   b0   b1   b2   b3   b4   b5
    unit 1:        b0   b1   b2   b3   b4
    unit 2:             b0   b1   b2   b3
                                  (drain: b_{T-1} reaches unit K-1 at tick T+K-2)

Invariant (``tests/test_wavefront.py``): the fit equals the sequential engine's. Unit k meets
batch t after it has trained on batches 0..t-1 and nothing else, and reads unit k-1's forward
of batch t made before unit k-1's update on t, exactly as in the per-batch loop; the ticks
fill and drain inside every epoch, so validation, early stopping, checkpoints and Ctrl-C see
the model after the epoch as they do today. Stacked blocks compute with their own kernels'
order of sums (``training/stacked.py`` says how), so at 1 CPU thread the weights are the same
bits. Units that draw random numbers in training (dropout) would draw in another order; the
engine's chooser (``engines/setup.py``) keeps them sequential.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from deinforeg_sklearn.engines.base import Augment, Engine, MaskFn, RowSource, non_finite, prepare_batch
from deinforeg_sklearn.training.stacked import StackedGroup, label_target, stack_groups
from deinforeg_sklearn.training.stats import EpochStats, UnitEpochStats
from deinforeg_sklearn.training.step import StepTrainer, detached


@dataclass
class _Batch:
    """One batch on its way through the units: labels, mask, and its label similarity once made."""

    y: torch.Tensor
    mask: torch.Tensor | None
    n: int
    targets: dict[int, torch.Tensor] = field(default_factory=dict)

    def target(self, n_classes: int) -> torch.Tensor:
        """The (N, N) float64 label similarity (computed once per batch, shared by all blocks)."""
        if n_classes not in self.targets:
            self.targets[n_classes] = label_target(self.y, n_classes)
        return self.targets[n_classes]


#: What waits in front of a unit: its input and the batch it belongs to.
_Pending = tuple[torch.Tensor, _Batch]


class WavefrontEngine(Engine):
    """All units on one device, all active at once on consecutive batches.

    Parameters
    ----------
    trainers : sequence of StepTrainer
    device : torch.device
    stack : bool, default=True
        Run runs of same-shaped DeInfoReg blocks as one stacked computation
        (:func:`~deinforeg_sklearn.training.stacked.stack_groups`); False: every unit on its own
        (still one backward per tick).
    """

    def __init__(self, trainers: Sequence[StepTrainer], device: torch.device, stack: bool = True) -> None:
        super().__init__(trainers, [list(range(len(trainers)))])
        self.device = device
        self.devices = [device]
        self.stack = stack

    def train_epoch(
        self,
        X: RowSource,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> list[UnitEpochStats]:
        stats = EpochStats(len(self.trainers))
        # groups are formed per epoch: a warm start may have changed what can be stacked
        runs = stack_groups(self.trainers) if self.stack else []
        groups = [StackedGroup(self.trainers[a:b], a) for a, b in runs]
        segments = _segments(len(self.trainers), groups)
        try:
            for group in groups:
                group.bind()
            self._ticks(
                lambda t: prepare_batch(X, y, batches[t], self.device, mask_fn, augment),
                len(batches),
                epoch,
                stats,
                segments,
            )
        finally:
            # whatever happened (an error, Ctrl-C), every block owns its storage again
            for group in groups:
                group.release()
        for group in groups:
            stats.merge(group.take_stats())
        return stats.means(sum(len(b) for b in batches))

    def _ticks(
        self,
        batch: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
        n_batches: int,
        epoch: int,
        stats: EpochStats,
        segments: list[StackedGroup | int],
    ) -> None:
        """The epoch's ticks: fill, steady state and drain."""
        n_units = len(self.trainers)
        pending: list[_Pending | None] = [None] * n_units
        for tick in range(n_batches + n_units - 1):
            if tick < n_batches:
                xb, yb, mask = batch(tick)  # batch t is prepared at tick t, in the sequential order
                pending[0] = (xb, _Batch(yb, mask, len(yb)))
            start = time.perf_counter()
            outputs = self._tick(pending, segments, stats, epoch)
            self.busy_seconds[0] += time.perf_counter() - start
            pending = [None, *outputs[:-1]]
            if outputs[-1] is not None and self.on_batch is not None:
                self.on_batch()

    def _tick(
        self,
        pending: list[_Pending | None],
        segments: list[StackedGroup | int],
        stats: EpochStats,
        epoch: int,
    ) -> list[_Pending | None]:
        """One tick: every unit with an input steps; returns what each unit hands on."""
        outputs: list[_Pending | None] = [None] * len(pending)
        losses: list[torch.Tensor] = []
        updates = []
        for segment in segments:
            if isinstance(segment, StackedGroup):
                self._group_forward(segment, pending, outputs, losses, updates, epoch)
                continue
            item = pending[segment]
            if item is None:
                continue
            trainer = self.trainers[segment]
            h, batch = item
            try:
                h_out, loss, step = trainer.forward(h, batch.y, batch.mask)
            except FloatingPointError as exc:
                raise non_finite(segment, epoch) from exc
            losses.append(trainer.scaled(loss))
            stats.add(segment, step, batch.n)
            outputs[segment] = (detached(h_out), batch)
            updates.append(trainer.update)
        if losses:
            (losses[0] if len(losses) == 1 else torch.stack(losses).sum()).backward()
        for update in updates:
            update()
        return outputs

    def _group_forward(
        self,
        group: StackedGroup,
        pending: list[_Pending | None],
        outputs: list[_Pending | None],
        losses: list[torch.Tensor],
        updates: list,
        epoch: int,
    ) -> None:
        """The stacked forward of a group's active blocks, in runs of equal batch shape."""
        first, last = group.first, group.first + group.size
        active = [k for k in range(first, last) if pending[k] is not None]
        if not active:
            return
        group.clear_gradients()
        for run in _equal_shape_runs(active, pending):
            items = [pending[k] for k in run]
            if len(run) == 1 or not group.stacks(items[0][1].n):
                for k, (h, batch) in zip(run, items, strict=True):
                    group.set_rates(k - first, k + 1 - first)
                    try:
                        h_out, loss = group.forward_alone(k - first, h, batch.y, batch.mask)
                    except FloatingPointError as exc:
                        raise non_finite(k, epoch) from exc
                    losses.append(loss)
                    outputs[k] = (h_out.detach(), batch)
                    updates.append(lambda b=k - first: group.update(b, b + 1))
                continue
            h = torch.stack([item[0] for item in items])
            y = torch.stack([item[1].y for item in items])
            target = None
            if group.config.weights[1]:
                target = torch.stack([item[1].target(group.config.n_classes) for item in items])
            lo, hi = run[0] - first, run[-1] + 1 - first
            h_out, total, per_block, terms, correct = group.forward(lo, hi, h, y, target)
            finite = torch.isfinite(per_block)
            if not bool(finite.all()):
                raise non_finite(run[0] + int((~finite).nonzero()[0, 0]), epoch)
            losses.append(total)
            group.add_stats(lo, hi, terms, correct, items[0][1].n)
            h_out = h_out.detach()
            for j, k in enumerate(run):
                outputs[k] = (h_out[j], items[j][1])
            group.set_rates(lo, hi)
            updates.append(lambda lo=lo, hi=hi: group.update(lo, hi))


def _segments(n_units: int, groups: list[StackedGroup]) -> list[StackedGroup | int]:
    """The tick's work in unit order: a group for each stacked run, a unit index otherwise."""
    starts = {group.first: group for group in groups}
    segments: list[StackedGroup | int] = []
    u = 0
    while u < n_units:
        if u in starts:
            segments.append(starts[u])
            u += starts[u].size
        else:
            segments.append(u)
            u += 1
    return segments


def _equal_shape_runs(active: list[int], pending: list[_Pending | None]) -> list[list[int]]:
    """Split consecutive active units into runs whose inputs have one shape (a last, shorter
    batch of the epoch runs apart from the full ones)."""
    runs: list[list[int]] = []
    for k in active:
        shape = pending[k][0].shape
        if runs and pending[runs[-1][-1]][0].shape == shape:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs
