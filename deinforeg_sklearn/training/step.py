"""One optimiser step on one unit of a network: the thing every engine schedules.

A ``StepTrainer`` owns a unit (see :class:`~deinforeg_sklearn.training.protocols.TrainableUnit`),
its optimiser and its learning-rate schedule. ``step`` reads the previous unit's output (already
detached), does forward, loss, backward and the optimiser step, and returns its own output
detached plus the unit's named stats. Nothing it does touches another unit, which is why engines
may run units in any order consistent with the data flow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from deinforeg_sklearn.optim import RateSchedule, make_optimizer
from deinforeg_sklearn.optim.schedules import ScheduleSpec
from deinforeg_sklearn.training.precision import CompiledCall, autocast, loss_scaler
from deinforeg_sklearn.training.protocols import Activation, TrainableUnit
from deinforeg_sklearn.training.replicas import active_group, reduce_gradients
from deinforeg_sklearn.training.stats import StepStats


@dataclass(frozen=True)
class LossConfig:
    """How a unit's loss is made: the local-loss term weights and the weight of cross-entropy."""

    n_classes: int
    alpha: float = 1e-3
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)


class StepTrainer:
    """Optimiser, schedule and step counter of one unit.

    Parameters
    ----------
    unit : TrainableUnit
    optimizer : torch.optim.Optimizer
    schedule : RateSchedule
        The learning rate of each step (``optim/schedules.py``). A parameter group with an
        ``lr_scale`` key follows the schedule times that scale.
    backward : {"per_block", "per_stage"}, default="per_block"
        Whether the unit's backward may be merged with the other units of its pipeline stage
        (:func:`step_jointly`).
    precision : {"32", "bf16", "16"}, default="32"
        Autocast dtype of the forward (``training/precision.py``); "16" scales the loss.
    compile : bool, default=False
        Run the unit's forward and loss through ``torch.compile`` (eagerly, after a warning,
        where it cannot compile).
    """

    def __init__(
        self,
        unit: TrainableUnit,
        optimizer: torch.optim.Optimizer,
        schedule: RateSchedule,
        backward: str = "per_block",
        precision: str = "32",
        compile: bool = False,
    ) -> None:
        self.unit = unit
        self.optimizer = optimizer
        self.schedule = schedule
        self.steps_done = 0
        self.record_gradients = False
        self.grad_sum: torch.Tensor | None = None  # per encoder group, summed over steps
        self.grad_steps = 0
        self.backward = backward
        self.precision = precision
        self.compile = compile
        self._scaler: torch.amp.GradScaler | None = None
        self._compiled: CompiledCall | None = None

    def __getstate__(self) -> dict:
        # A compiled function is tied to this process and to the unit object it was made
        # from: copies (snapshots, stage processes, pickles) compile their own when needed.
        state = self.__dict__.copy()
        state["_compiled"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        if "schedule" not in state:  # pickled before lr_schedule: always a cosine (or constant)
            state["schedule"] = RateSchedule(
                "cosine", state.pop("lr"), state.pop("final_lr"), state.pop("total_steps")
            )
        self.__dict__.update(state)

    @property
    def total_steps(self) -> int:
        """Steps of the fit this trainer's schedule runs over."""
        return self.schedule.total_steps

    def step(self, h: Activation, y: torch.Tensor, mask: torch.Tensor | None) -> tuple[Activation, StepStats]:
        """Train on one batch; return the unit's output (detached) and its stats."""
        h_out, loss, stats = self.forward(h, y, mask)
        self.scaled(loss).backward()
        self.update()
        return detached(h_out), stats

    def forward(
        self, h: Activation, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[Activation, torch.Tensor, StepStats]:
        """First half of :meth:`step`: set the rate, clear the gradients, compute the loss.

        Returns the output (still attached), the loss and the stats. The caller runs the
        backward of the loss (alone, or summed with other units' losses: see
        :func:`step_jointly`) and then :meth:`update`.

        Raises
        ------
        FloatingPointError
            The loss is not finite (checked before any backward, so no weight has changed).
        """
        self.set_rate()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.unit_device()):
            h_out, loss, stats = self._step_loss()(h, y, mask)
        loss = loss.float()
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        return h_out, loss, stats

    def set_rate(self) -> None:
        """Set the schedule's learning rate of the next step on every parameter group."""
        rate = self.schedule.rate(self.steps_done)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_scale", 1.0)

    def last_rate(self) -> float:
        """The schedule's learning rate of the last step taken (of the next, before any)."""
        return float(self.schedule.rate(max(self.steps_done - 1, 0)))

    def end_epoch(self, score: float | None) -> None:
        """After an epoch and its validation: the schedule's per-epoch step (reduce-on-plateau)."""
        self.schedule.end_epoch(score, self.steps_done)

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` as its backward must see it: scaled up under float16, else as it is."""
        if self.precision != "16":
            return loss
        if self._scaler is None:
            self._scaler = loss_scaler(self.precision, loss.device)
        return self._scaler.scale(loss)

    def _active_scaler(self) -> torch.amp.GradScaler | None:
        # The scaler only while the precision is "16": a warm start may have changed it, and
        # unscaling gradients that were never scaled would shrink them by the scale.
        return self._scaler if self.precision == "16" else None

    def _step_loss(self):
        if not self.compile:
            return self.unit.step_loss
        if self._compiled is None:
            self._compiled = CompiledCall(self.unit.step_loss, f"the step of {type(self.unit).__name__}")
        return self._compiled

    def update(self, reduce: bool = True) -> None:
        """Second half of :meth:`step`, after the backward: the optimiser step.

        With data-parallel replicas the gradients are first summed over them
        (``training/replicas.py``), so every replica takes the step of the global batch;
        ``reduce=False``: the caller has summed them already (:func:`step_jointly`).
        """
        if reduce and active_group() is not None:
            reduce_gradients([p for group in self.optimizer.param_groups for p in group["params"]])
        scaler = self._active_scaler()
        if scaler is not None:
            # float16: gradients back to their true size (before recording them), and a step
            # skipped when they overflowed
            scaler.unscale_(self.optimizer)
        if self.record_gradients:
            self._record_gradients()
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.steps_done += 1

    def steps_per_stage(self) -> bool:
        """Whether this unit may share one backward with the other units of its stage."""
        return self.backward == "per_stage"

    def _record_gradients(self) -> None:
        # Mean absolute gradient over all encoder parameters of each block (the paper's Figure 3
        # quantity), kept on the device and summed; read once per epoch.
        means = []
        for group in self.unit.encoder_parameter_groups():
            grads = [p.grad.abs().flatten() for p in group if p.grad is not None]
            means.append(torch.cat(grads).mean() if grads else torch.zeros((), device=self.unit_device()))
        step = torch.stack(means).detach()
        self.grad_sum = step if self.grad_sum is None else self.grad_sum + step
        self.grad_steps += 1

    def unit_device(self) -> torch.device:
        return next(self.unit.parameters()).device

    def take_gradients(self) -> list[float]:
        """Per encoder group, the mean gradient magnitude since the last call (then reset)."""
        if self.grad_sum is None or not self.grad_steps:
            return []
        values = (self.grad_sum / self.grad_steps).double().cpu().tolist()
        self.grad_sum, self.grad_steps = None, 0
        return values

    def reset_schedule(self, schedule: RateSchedule) -> None:
        """Start ``schedule`` from its step 0 (a new ``fit``)."""
        self.schedule = schedule
        self.steps_done = 0
        self.record_gradients = False
        self.grad_sum: torch.Tensor | None = None  # per encoder group, summed over steps
        self.grad_steps = 0


def detached(h: Activation) -> Activation:
    """``h`` cut from the graph (each tensor of a tuple: associated learning hands on two)."""
    if isinstance(h, tuple):
        return tuple(t.detach() for t in h)
    return h.detach()


def step_jointly(
    trainers: Sequence[StepTrainer], h: Activation, y: torch.Tensor, mask: torch.Tensor | None
) -> tuple[Activation, list[StepStats]]:
    """One batch through consecutive units on one device, with one backward for all of them.

    Each unit reads the previous unit's output detached, so the units' graphs share nothing
    and the gradient of the summed losses gives every parameter exactly its own unit's
    gradient: the weights move as under per-unit :meth:`StepTrainer.step`
    (``tests/test_joint_step.py``). What changes is cost: one backward pass instead of one per
    unit (on 2 CPU cores within 3 % of per-unit steps either way), and memory: every unit's
    graph stays alive until the shared backward, where per-unit steps free each one at once.

    Raises
    ------
    NonFiniteLoss
        A unit's loss is not finite (before any backward: no weight has changed); it carries
        the unit's position in ``trainers``.
    """
    losses, stats = [], []
    for position, trainer in enumerate(trainers):
        try:
            h_out, loss, step_stats = trainer.forward(h, y, mask)
        except FloatingPointError as exc:
            raise NonFiniteLoss(position) from exc
        losses.append(loss)
        stats.append(step_stats)
        h = detached(h_out)
    torch.stack([t.scaled(loss) for t, loss in zip(trainers, losses, strict=True)]).sum().backward()
    # with data-parallel replicas, one gradient sum for every unit (one collective, not one each)
    if active_group() is not None:
        reduce_gradients([p for t in trainers for group in t.optimizer.param_groups for p in group["params"]])
    for trainer in trainers:
        trainer.update(reduce=False)
    return h, stats


class NonFiniteLoss(FloatingPointError):
    """The loss of the unit at ``position`` of a joint step was not finite."""

    def __init__(self, position: int) -> None:
        super().__init__(f"non-finite loss in unit {position} of the joint step")
        self.position = position


#: What a network calls once per unit it builds to get that unit's trainer (a TrainerFactory).
MakeTrainer = Callable[[TrainableUnit], "StepTrainer"]


@dataclass(frozen=True, kw_only=True)
class TrainerFactory:
    """Makes the :class:`StepTrainer` of each unit from the estimator's optimiser settings.

    Networks call it once per unit they build, so every unit gets its own optimiser over its own
    parameter groups (``unit.optimizer_groups()``) and the same schedule.
    """

    optimizer: str
    learning_rate: float
    weight_decay: float
    final_learning_rate: float | None
    total_steps: int
    lr_schedule: ScheduleSpec = "cosine"
    warmup_steps: int = 0
    backward: str = "per_block"
    precision: str = "32"
    compile: bool = False

    def schedule(self) -> RateSchedule:
        """A fresh learning-rate schedule of the factory's ``total_steps``."""
        return RateSchedule(
            self.lr_schedule,
            self.learning_rate,
            self.final_learning_rate,
            self.total_steps,
            self.warmup_steps,
        )

    def __call__(self, unit: TrainableUnit) -> StepTrainer:
        optimizer = make_optimizer(
            unit.optimizer_groups(), self.optimizer, self.learning_rate, self.weight_decay
        )
        return StepTrainer(
            unit,
            optimizer,
            self.schedule(),
            self.backward,
            self.precision,
            self.compile,
        )
