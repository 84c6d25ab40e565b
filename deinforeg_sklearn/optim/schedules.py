"""Learning-rate schedules: what a user names in ``lr_schedule``, and the rate each step gets.

Why per step and per unit: every unit (block) of a decoupled network has its own optimiser
and steps once per batch, whichever engine schedules it (sequential, wavefront, threads,
processes). So the rate of a step is a function of that unit's step counter alone (cosine,
one-cycle, warm-up), times one factor that changes only between epochs (reduce-on-plateau,
fed the validation score that every rank of a pipeline sees alike). That keeps every engine
exact without any message: each rank computes the same rates from the same counters and
scores.

Invariant: :meth:`RateSchedule.rate` of step ``s`` equals the ``s``-th rate of the torch
``lr_scheduler`` the docstrings name (``tests/test_schedules.py`` checks each step for step),
and a schedule's whole state (its factor and plateau counters) travels in pickles,
checkpoints and snapshots with the trainer that owns it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: The names ``lr_schedule`` accepts; each is the class of the same name with its defaults.
SCHEDULE_NAMES = ("constant", "cosine", "one_cycle", "plateau")


@dataclass(frozen=True)
class OneCycle:
    """One cycle per fit: up from ``learning_rate / div_factor`` to ``learning_rate``, then down.

    The rates of :class:`torch.optim.lr_scheduler.OneCycleLR` with ``max_lr=learning_rate``,
    ``total_steps`` the fit's steps after warm-up, ``three_phase=False`` and
    ``cycle_momentum=False`` (the momentum, or Adam's beta1, stays as the optimiser has it).
    Steps past the cycle (``partial_fit`` after a full fit) keep its last rate.

    Parameters
    ----------
    pct_start : float, default=0.3
        Share of the steps spent rising.
    anneal_strategy : {"cos", "linear"}, default="cos"
    div_factor : float, default=25.0
        The first rate is ``learning_rate / div_factor``.
    final_div_factor : float, default=1e4
        The last rate is the first divided by this.
    """

    pct_start: float = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        if not 0 < self.pct_start < 1:
            raise ValueError(f"OneCycle pct_start must lie in (0, 1), got {self.pct_start!r}.")
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"OneCycle anneal_strategy must be 'cos' or 'linear', got {self.anneal_strategy!r}."
            )
        if self.div_factor <= 0 or self.final_div_factor <= 0:
            raise ValueError("OneCycle div_factor and final_div_factor must be positive.")


@dataclass(frozen=True)
class ReduceOnPlateau:
    """Multiply the rate by ``factor`` when the validation score stops improving.

    The rule of :class:`torch.optim.lr_scheduler.ReduceLROnPlateau` with ``mode="max"``, fed
    once per epoch the validation score that early stopping follows (the inference block's
    accuracy; the best block's under ``inference="best"``). Needs validation data. Epochs that
    end inside the warm-up are not counted.

    Parameters
    ----------
    factor : float, default=0.1
    patience : int, default=10
        Epochs without improvement that are tolerated; the next one reduces the rate.
    threshold : float, default=1e-4
    threshold_mode : {"rel", "abs"}, default="rel"
        An improvement is a score above ``best * (1 + threshold)`` ("rel") or
        ``best + threshold`` ("abs").
    cooldown : int, default=0
        Epochs after a reduction during which no epoch counts as bad.
    min_lr : float, default=0.0
        The rate never goes below this.
    eps : float, default=1e-8
        A reduction smaller than this is skipped.
    """

    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not 0 < self.factor < 1:
            raise ValueError(f"ReduceOnPlateau factor must lie in (0, 1), got {self.factor!r}.")
        if self.patience < 0 or self.cooldown < 0 or self.min_lr < 0:
            raise ValueError("ReduceOnPlateau patience, cooldown and min_lr must be >= 0.")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"ReduceOnPlateau threshold_mode must be 'rel' or 'abs', got {self.threshold_mode!r}."
            )


ScheduleSpec = str | OneCycle | ReduceOnPlateau


def check_schedule(value: object) -> str | OneCycle | ReduceOnPlateau:
    """``lr_schedule`` as given, or a ValueError that lists what it may be."""
    if isinstance(value, (OneCycle, ReduceOnPlateau)):
        return value
    if isinstance(value, str) and value in SCHEDULE_NAMES:
        return value
    raise ValueError(
        f"lr_schedule={value!r} is not a schedule: use one of {', '.join(map(repr, SCHEDULE_NAMES))}, "
        "or a deinforeg_sklearn.schedules.OneCycle / ReduceOnPlateau instance for other settings."
    )


def needs_validation(spec: object) -> bool:
    """Whether the schedule reads the validation score (reduce-on-plateau)."""
    return spec == "plateau" or isinstance(spec, ReduceOnPlateau)


def cosine_lr(step: int, total: int, start: float, final: float | None) -> float:
    """Learning rate at ``step`` of ``total``: cosine from ``start`` to ``final``, then ``final``.

    ``final=None`` keeps the rate constant.
    """
    if final is None or total <= 0:
        return start
    progress = min(step, total) / total
    return final + 0.5 * (start - final) * (1.0 + math.cos(math.pi * progress))


def _anneal(strategy: str, start: float, end: float, pct: float) -> float:
    # OneCycleLR's two annealing functions, written as torch writes them
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def one_cycle_lr(step: int, total: int, max_lr: float, spec: OneCycle) -> float:
    """OneCycleLR's rate at ``step`` of a cycle of ``total`` steps (the last one past it)."""
    initial = max_lr / spec.div_factor
    if total <= 1:
        return initial
    step = min(step, total - 1)
    minimum = initial / spec.final_div_factor
    up_end = float(spec.pct_start * total) - 1
    if step <= up_end:
        return _anneal(spec.anneal_strategy, initial, max_lr, step / up_end if up_end > 0 else 1.0)
    down = (total - 1) - up_end
    return _anneal(spec.anneal_strategy, max_lr, minimum, (step - up_end) / down)


class RateSchedule:
    """The learning rate of each step of one unit: linear warm-up, then the named schedule.

    Parameters
    ----------
    spec : str, OneCycle or ReduceOnPlateau
        As the estimator's ``lr_schedule``.
    base : float
        The estimator's ``learning_rate``.
    final : float or None
        The estimator's ``final_learning_rate``, the end of "cosine" (None: constant).
    total_steps : int
        Steps of the fit, warm-up included.
    warmup_steps : int, default=0
        Step ``s < warmup_steps`` gets ``r0 * (s + 1) / warmup_steps``, where ``r0`` is the
        rate the main schedule starts with (``base``; ``base / div_factor`` for one-cycle):
        torch's ``LinearLR(start_factor=1/warmup_steps, total_iters=warmup_steps - 1)``
        followed, in ``SequentialLR`` with that milestone, by the main schedule from its own
        step 0.
    """

    def __init__(
        self, spec: ScheduleSpec, base: float, final: float | None, total_steps: int, warmup_steps: int = 0
    ) -> None:
        self.spec = check_schedule(spec)
        self.base, self.final = base, final
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.factor = 1.0  # reduce-on-plateau's product of reductions so far
        self.best = -math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0

    def rate(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based) of the fit."""
        if step < self.warmup_steps:
            return self._main_rate(0) * (step + 1) / self.warmup_steps
        return self._main_rate(step - self.warmup_steps)

    def _main_rate(self, step: int) -> float:
        main = max(self.total_steps - self.warmup_steps, 0)
        spec = self.spec
        if spec == "cosine":
            return cosine_lr(step, main, self.base, self.final)
        if spec == "one_cycle" or isinstance(spec, OneCycle):
            return one_cycle_lr(step, main, self.base, OneCycle() if isinstance(spec, str) else spec)
        return self.base * self.factor  # constant, and reduce-on-plateau between reductions

    def end_epoch(self, score: float | None, steps_done: int) -> None:
        """Reduce-on-plateau's step after an epoch that ended at ``steps_done`` (others: none)."""
        if not needs_validation(self.spec) or score is None or steps_done <= self.warmup_steps:
            return
        rule = self.spec if isinstance(self.spec, ReduceOnPlateau) else ReduceOnPlateau()
        if self._improves(score, rule):
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > rule.patience:
            old = self.base * self.factor
            new = max(old * rule.factor, rule.min_lr)
            if old - new > rule.eps:
                self.factor = new / self.base
            self.cooldown_left, self.bad_epochs = rule.cooldown, 0

    def _improves(self, score: float, rule: ReduceOnPlateau) -> bool:
        if rule.threshold_mode == "rel":
            return score > self.best * (1.0 + rule.threshold)
        return score > self.best + rule.threshold

    def state(self) -> tuple[float, float, int, int]:
        """What changes between epochs (for snapshots): the factor and plateau counters."""
        return self.factor, self.best, self.bad_epochs, self.cooldown_left

    def load_state(self, state: tuple[float, float, int, int]) -> None:
        self.factor, self.best, self.bad_epochs, self.cooldown_left = state
