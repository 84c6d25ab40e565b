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

import itertools
import time
from collections.abc import Sequence
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


class WavefrontRun:
    """The ticks of one epoch over a contiguous run of units, fed one batch at a time.

    The one-device engine feeds it every batch of the epoch; a pipeline stage (thread or
    process engine) feeds it the batches it receives and hands on what comes out, so each
    stage trains its units as the one-device wavefront does. :meth:`feed` runs one tick with a
    new batch entering the first unit and returns what the last unit finished (None while the
    run fills); :meth:`drain` runs the remaining ticks. Use it as a context manager: the
    stacked groups hold their blocks' storage only while it is open.

    Parameters
    ----------
    trainers : sequence of StepTrainer
        All units of the network.
    units : sequence of int
        The run's units, consecutive.
    stats : EpochStats
        Where the run adds its units' step stats (by network unit index).
    epoch : int
        0-based, for error messages.
    stack : bool, default=True
        Run runs of same-shaped DeInfoReg blocks as one stacked computation.
    """

    def __init__(
        self,
        trainers: Sequence[StepTrainer],
        units: Sequence[int],
        stats: EpochStats,
        epoch: int,
        stack: bool = True,
    ) -> None:
        self.trainers, self.units = trainers, list(units)
        if self.units != list(range(self.units[0], self.units[0] + len(self.units))):
            raise ValueError(f"a wavefront runs consecutive units, got {self.units}")
        self.stats, self.epoch = stats, epoch
        first = self.units[0]
        # groups are formed per epoch: a warm start may have changed what can be stacked
        runs = stack_groups([trainers[u] for u in self.units]) if stack else []
        self.groups = [StackedGroup(trainers[first + a : first + b], first + a) for a, b in runs]
        self.segments = _segments(first, len(self.units), self.groups)
        self.pending: dict[int, _Pending | None] = dict.fromkeys(self.units)

    def __enter__(self) -> WavefrontRun:
        for group in self.groups:
            group.bind()
        return self

    def __exit__(self, *exc: object) -> None:
        # whatever happened (an error, Ctrl-C), every block owns its storage again
        for group in self.groups:
            group.release()
        if exc[0] is None:
            for group in self.groups:
                self.stats.merge(group.take_stats())

    def feed(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """One tick with batch ``(h, y, mask)`` entering the first unit; the last unit's output."""
        self.pending[self.units[0]] = (h, _Batch(y, mask, len(y)))
        return self._tick()

    def drain(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """The ticks after the last batch: every batch in flight through the last unit, in order."""
        done = []
        while any(item is not None for item in self.pending.values()):
            out = self._tick()
            if out is not None:
                done.append(out)
        return done

    def _tick(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        outputs = _tick(self.trainers, self.pending, self.segments, self.stats, self.epoch)
        units = self.units
        # each unit's output waits in front of the next; the first unit's input is consumed
        self.pending = {units[0]: None, **{u: outputs[v] for v, u in itertools.pairwise(units)}}
        last = outputs[units[-1]]
        return None if last is None else (last[0], last[1].y, last[1].mask)


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
        with WavefrontRun(self.trainers, range(len(self.trainers)), stats, epoch, self.stack) as run:
            for index in batches:
                # batch t is prepared at tick t, in the sequential order
                xb, yb, mask = prepare_batch(X, y, index, self.device, mask_fn, augment)
                start = time.perf_counter()
                done = run.feed(xb, yb, mask)
                self.busy_seconds[0] += time.perf_counter() - start
                if done is not None and self.on_batch is not None:
                    self.on_batch()
            start = time.perf_counter()
            for _ in run.drain():
                if self.on_batch is not None:
                    self.on_batch()
            self.busy_seconds[0] += time.perf_counter() - start
        return stats.means(sum(len(b) for b in batches))


def _tick(
    trainers: Sequence[StepTrainer],
    pending: dict[int, _Pending | None],
    segments: list[StackedGroup | int],
    stats: EpochStats,
    epoch: int,
) -> dict[int, _Pending | None]:
    """One tick: every unit with an input steps; returns what each unit hands on."""
    outputs: dict[int, _Pending | None] = dict.fromkeys(pending)
    losses: list[torch.Tensor] = []
    updates = []
    for segment in segments:
        if isinstance(segment, StackedGroup):
            _group_forward(segment, pending, outputs, losses, updates, epoch)
            continue
        item = pending[segment]
        if item is None:
            continue
        trainer = trainers[segment]
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
    group: StackedGroup,
    pending: dict[int, _Pending | None],
    outputs: dict[int, _Pending | None],
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
    # what the stacked forward reads (a narrow first block's rows zero-padded); a block that
    # runs alone reads its own input
    inputs = {k: group.stacked_input(k - first, pending[k][0]) for k in active}
    for run in _equal_shape_runs(active, inputs):
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
        h = torch.stack([inputs[k] for k in run])
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


def _segments(first: int, n_units: int, groups: list[StackedGroup]) -> list[StackedGroup | int]:
    """The tick's work in unit order, from unit ``first`` on: a group for each stacked run, a
    unit index otherwise."""
    starts = {group.first: group for group in groups}
    segments: list[StackedGroup | int] = []
    u = first
    while u < first + n_units:
        if u in starts:
            segments.append(starts[u])
            u += starts[u].size
        else:
            segments.append(u)
            u += 1
    return segments


def _equal_shape_runs(active: list[int], inputs: dict[int, torch.Tensor]) -> list[list[int]]:
    """Split consecutive active units into runs whose inputs have one shape (a last, shorter
    batch of the epoch runs apart from the full ones)."""
    runs: list[list[int]] = []
    for k in active:
        shape = inputs[k].shape
        if runs and inputs[runs[-1][-1]].shape == shape:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs
