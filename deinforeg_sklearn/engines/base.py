"""What every engine provides, and the per-batch work they share.

An engine runs the epochs of one fit. It receives the network's step trainers grouped into
*stages* (contiguous runs of units, one stage per device) and decides when each stage works on
which batch. Because a unit step reads only the previous unit's detached output for the same
batch, every engine that feeds each stage the batches in order performs the arithmetic of the
sequential loop (see docs/architecture.md).

Lifecycle, the same for every engine: everything is created in ``__init__``; ``start`` acquires
workers (threads, processes, a process group) and sets torch's thread count for the fit;
``close`` releases them and restores the caller's thread count. Both are idempotent, and
``with engine:`` starts (unless already started) and closes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from deinforeg_sklearn.data.inputs import MaskFn, RowSource
from deinforeg_sklearn.training.plan import Augment
from deinforeg_sklearn.training.protocols import Activation
from deinforeg_sklearn.training.replicas import active_group
from deinforeg_sklearn.training.stats import EpochStats, UnitEpochStats
from deinforeg_sklearn.training.step import NonFiniteLoss, StepTrainer, step_jointly

#: A process's torch random state: the CPU generator's, and its CUDA device's (or None).
RankRandomState = tuple[torch.Tensor, torch.Tensor | None]

__all__ = ["Augment", "Engine", "MaskFn", "prepare_batch", "step_units"]


class Engine:
    """Base class: a context manager around the epochs of one fit.

    Parameters
    ----------
    trainers : sequence of StepTrainer
        One per unit of the network.
    stages : list of list of int
        Unit indices of each stage, contiguous and in order.
    cpu_threads : int or None
        torch intra-op threads while the engine is started (process-wide, so CPU stages in
        one process share it); None leaves the caller's setting.

    Attributes
    ----------
    stage_sizes : list of int
        Units per stage.
    devices : list of torch.device
        The device of each stage (set by each engine).
    busy_seconds : list of float
        Time each stage has spent in unit steps so far (not waiting for input). It is host
        time: on CUDA it counts launching kernels, which run asynchronously.
    on_batch : callable or None
        Called once per batch that has passed every stage this process sees (progress bars).
    in_process : bool
        Whether the caller's network holds every unit's live state between epochs, so that a
        snapshot of it can be restored after an interrupt (not so for the process engine).
    quiet : bool
        This process is a helper rank whose caller reports progress (the fit loop stays silent).
    """

    @property
    def writes_checkpoints(self) -> bool:
        """Whether this process writes the fit's checkpoint (one process of a pipeline does)."""
        return not self.quiet

    def __init__(
        self, trainers: Sequence[StepTrainer], stages: list[list[int]], cpu_threads: int | None = None
    ) -> None:
        self.trainers = list(trainers)
        self.stages = stages
        self.stage_sizes = [len(s) for s in stages]
        self.busy_seconds = [0.0] * len(stages)
        self.cpu_threads = cpu_threads
        self.on_batch: Callable[[], None] | None = None
        # per stage: train its units as a wavefront (engines/wavefront.WavefrontRun) rather than
        # one batch after the other; set by engines/setup.stage_schedules
        self.wavefront = [False] * len(stages)
        self.in_process = True
        self.quiet = False
        self.started = False
        self._saved_threads: int | None = None

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)

    def start(self) -> None:
        """Set the fit's thread count and acquire workers; a failed start releases everything."""
        if self.started:
            return
        self._saved_threads = torch.get_num_threads()
        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        self.started = True
        try:
            self._acquire()
        except BaseException as exc:
            # ``with`` does not call __exit__ when __enter__ fails: release here.
            self.close(exc)
            raise

    def close(self, exc: BaseException | None = None) -> None:
        """Release every worker and restore the thread count; no thread or process is left.

        ``exc`` is the error that ended the fit, if any: an engine whose workers can add to it
        (the process engine's ranks, with their tracebacks) may raise a fuller error instead.
        """
        if not self.started:
            return
        self.started = False
        try:
            self._release(exc)
        finally:
            if self._saved_threads is not None:
                torch.set_num_threads(self._saved_threads)

    def _acquire(self) -> None:
        """Engine-specific part of :meth:`start`."""

    def _release(self, exc: BaseException | None) -> None:
        """Engine-specific part of :meth:`close`."""

    def train_epoch(
        self,
        X: RowSource,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> list[UnitEpochStats]:
        """Train every unit on every batch; the epoch means of each unit's stats.

        ``batches`` holds row indices of ``X`` and ``y`` (each batch is gathered on its own, so
        no epoch-sized copy of X is made). Under the process engine only the first stage reads X
        (each of its data-parallel replicas its own rows of every batch).
        """
        raise NotImplementedError

    def sync(self) -> None:
        """Make the caller's network hold the trained state (a no-op for in-process engines)."""

    def validation_scores(self, score: Callable[[], np.ndarray]) -> np.ndarray:
        """The validation scores every rank uses: ``score()`` (on the synced network), run once.

        In one process that is a plain call. The process engine runs it on rank 0 alone and
        hands the result to the other ranks, so a pipeline scores its validation rows once,
        not once per stage, and only rank 0 needs the validation inputs.
        """
        return score()

    def decide(self, decision: Callable[[], bool]) -> bool:
        """A decision taken once, by the process that leads the fit, that every rank follows.

        In one process that is a plain call. The process engine calls ``decision`` on rank 0
        alone and hands its answer to the other ranks (a callback's request to stop: the
        callbacks run on rank 0 only, and every rank must leave the epoch loop together).
        """
        return bool(decision())

    def interrupt(self) -> None:
        """The caller was interrupted (Ctrl-C) between epochs' work: stop any helper ranks now.

        In-process engines have nothing to stop; the process engine stops its stage processes,
        so that closing it afterwards does not wait for ranks that will never hear from rank 0.
        """

    def seed_ranks(self, seed: int, saved: dict[int, RankRandomState] | None) -> None:
        """Give each helper rank its own random stream before the first epoch of a fit.

        In one process there is one stream, seeded by the estimator: nothing to do. The
        process engine seeds rank r > 0 from ``seed`` and r (or restores ``saved[r]``, its
        state at a checkpoint), so that ``random_state`` decides the draws (dropout) of every
        stage, no two stages share a stream, and a resumed fit continues each stream.
        """

    def rank_random_states(self) -> dict[int, RankRandomState]:
        """The random states of the helper ranks at the last :meth:`sync` (for checkpoints)."""
        return {}

    def epoch_gradients(self) -> list[float]:
        """Mean encoder-gradient magnitude per block since the last call (when recorded)."""
        return [g for trainer in self.trainers for g in trainer.take_gradients()]


def prepare_batch(
    X: RowSource,
    y: torch.Tensor,
    index: np.ndarray,
    device: torch.device,
    mask_fn: MaskFn,
    augment: Augment,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Rows ``index`` of (X, y) on ``device``, with the padding mask and augmentation applied."""
    xb = X.batch(index, device)  # float32 on the device, converted from X's dtype there
    yb = y[torch.from_numpy(index)].to(device, non_blocking=True)
    mask = mask_fn(xb)
    if augment is not None:
        xb = augment(xb)
    return xb, yb, mask


def step_units(
    trainers: Sequence[StepTrainer],
    units: Sequence[int],
    h: Activation,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    epoch: int,
    stats: EpochStats,
) -> Activation:
    """Run the step of each unit in ``units`` on one batch, adding its stats into ``stats``.

    The units of one stage share one backward (:func:`~deinforeg_sklearn.training.step.step_jointly`)
    when each of them allows it (the estimator's ``backward``); otherwise each steps on its own.

    Raises
    ------
    FloatingPointError
        When a unit's loss is not finite, naming the block and the (1-based) epoch.
    """
    stage = [trainers[u] for u in units]
    # data-parallel replicas always share one backward and one gradient sum: each collective
    # costs a fixed latency, and the joint step moves the weights as per-unit steps do
    joint = all(trainer.steps_per_stage() for trainer in stage) or active_group() is not None
    if len(stage) > 1 and joint:
        try:
            h, steps = step_jointly(stage, h, y, mask)
        except NonFiniteLoss as exc:
            raise non_finite(units[exc.position], epoch) from exc
        for u, step in zip(units, steps, strict=True):
            stats.add(u, step, len(y))
        return h
    for u in units:
        try:
            h, step = trainers[u].step(h, y, mask)
        except FloatingPointError as exc:
            raise non_finite(u, epoch) from exc
        stats.add(u, step, len(y))
    return h


def non_finite(unit: int, epoch: int) -> FloatingPointError:
    return FloatingPointError(
        f"Block {unit} produced a non-finite loss in epoch {epoch + 1}: lower "
        "learning_rate, scale the input (e.g. StandardScaler), or check the data."
    )
