"""One optimiser step on one unit of a network: the thing every engine schedules.

A ``StepTrainer`` owns a unit (see :class:`~deinforeg_sklearn.training.protocols.TrainableUnit`),
its optimiser and its learning-rate schedule. ``step`` reads the previous unit's output (already
detached), does forward, loss, backward and the optimiser step, and returns its own output
detached plus the unit's named stats. Nothing it does touches another unit, which is why engines
may run units in any order consistent with the data flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deinforeg_sklearn.optim import cosine_lr, make_optimizer
from deinforeg_sklearn.training.protocols import Activation, TrainableUnit
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
    lr, final_lr : float, float or None
        Cosine schedule per step from ``lr`` to ``final_lr`` over ``total_steps``. A parameter
        group with an ``lr_scale`` key follows the schedule times that scale.
    total_steps : int
    """

    def __init__(
        self,
        unit: TrainableUnit,
        optimizer: torch.optim.Optimizer,
        lr: float,
        final_lr: float | None,
        total_steps: int,
    ) -> None:
        self.unit = unit
        self.optimizer = optimizer
        self.lr = lr
        self.final_lr = final_lr
        self.total_steps = total_steps
        self.steps_done = 0
        self.record_gradients = False
        self.grad_sum: torch.Tensor | None = None  # per encoder group, summed over steps
        self.grad_steps = 0

    def step(self, h: Activation, y: torch.Tensor, mask: torch.Tensor | None) -> tuple[Activation, StepStats]:
        """Train on one batch; return the unit's output (detached) and its stats."""
        rate = cosine_lr(self.steps_done, self.total_steps, self.lr, self.final_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        h_out, loss, stats = self.unit.step_loss(h, y, mask)
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        loss.backward()
        if self.record_gradients:
            self._record_gradients()
        self.optimizer.step()
        self.steps_done += 1
        # A unit may hand on a tuple (associated learning passes its label-side state too)
        if isinstance(h_out, tuple):
            return tuple(t.detach() for t in h_out), stats
        return h_out.detach(), stats

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

    def reset_schedule(self, total_steps: int) -> None:
        """Start a new cosine schedule of ``total_steps`` steps (a new ``fit``)."""
        self.total_steps = total_steps
        self.steps_done = 0
        self.record_gradients = False
        self.grad_sum: torch.Tensor | None = None  # per encoder group, summed over steps
        self.grad_steps = 0


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

    def __call__(self, unit: TrainableUnit) -> StepTrainer:
        optimizer = make_optimizer(
            unit.optimizer_groups(), self.optimizer, self.learning_rate, self.weight_decay
        )
        return StepTrainer(unit, optimizer, self.learning_rate, self.final_learning_rate, self.total_steps)
