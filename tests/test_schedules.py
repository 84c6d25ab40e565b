"""Learning-rate schedules (``lr_schedule``, ``warmup_epochs``).

Invariant (``deinforeg_sklearn/optim/schedules.py``): the rate of every step is the rate torch's
own ``lr_scheduler`` gives that step, and a fit's schedule is the same whichever engine runs
it, across a crash and resume, and under warm_start (restarted) and partial_fit (continued).
"""

import numpy as np
import pytest
import torch

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.optim.schedules import RateSchedule
from deinforeg_sklearn.schedules import OneCycle, ReduceOnPlateau
from deinforeg_sklearn.training import loop as loop_module
from deinforeg_sklearn.training.step import StepTrainer
from tests.equivalence import assert_same_training

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

BASE = 0.02


def _torch_rates(make_scheduler, steps: int, base: float = BASE) -> list[float]:
    """The rate torch gives each of ``steps`` optimiser steps (read before each step)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def _ours(schedule: RateSchedule, steps: int) -> list[float]:
    return [schedule.rate(s) for s in range(steps)]


# ------------------------------------------------------------------ step for step against torch
@pytest.mark.parametrize("total", [1, 7, 40])
def test_cosine_is_torchs_cosine_annealing(total):
    expected = _torch_rates(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=1e-4), total
    )
    np.testing.assert_allclose(_ours(RateSchedule("cosine", BASE, 1e-4, total), total), expected, rtol=1e-9)


def test_constant_and_cosine_without_an_end_keep_the_rate():
    for schedule in (RateSchedule("constant", BASE, 0.0, 9), RateSchedule("cosine", BASE, None, 9)):
        assert _ours(schedule, 9) == [BASE] * 9


@pytest.mark.parametrize(
    "spec",
    [
        OneCycle(),
        OneCycle(pct_start=0.5, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0),
        OneCycle(pct_start=0.05),  # the rising phase shorter than one step
    ],
)
@pytest.mark.parametrize("total", [5, 37, 200])
def test_one_cycle_is_torchs_one_cycle(spec, total):
    expected = _torch_rates(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o,
            max_lr=BASE,
            total_steps=total,
            pct_start=spec.pct_start,
            anneal_strategy=spec.anneal_strategy,
            div_factor=spec.div_factor,
            final_div_factor=spec.final_div_factor,
            cycle_momentum=False,
        ),
        total,
    )
    ours = RateSchedule(spec, BASE, None, total)
    np.testing.assert_allclose(_ours(ours, total), expected, rtol=1e-12)
    assert ours.rate(total + 5) == ours.rate(total - 1)  # past the cycle: its last rate


def test_one_cycle_by_name_has_torchs_defaults():
    expected = _torch_rates(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=BASE, total_steps=30, cycle_momentum=False),
        30,
    )
    np.testing.assert_allclose(_ours(RateSchedule("one_cycle", BASE, None, 30), 30), expected, rtol=1e-12)


@pytest.mark.parametrize("main", ["cosine", "one_cycle"])
def test_warm_up_then_the_schedule_is_torchs_sequential_lr(main):
    warm, total = 6, 30

    def torch_schedule(o):
        first = torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / warm, total_iters=warm - 1)
        if main == "cosine":
            second = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - warm, eta_min=1e-4)
        else:
            second = torch.optim.lr_scheduler.OneCycleLR(
                o, max_lr=BASE, total_steps=total - warm, cycle_momentum=False
            )
        return torch.optim.lr_scheduler.SequentialLR(o, [first, second], milestones=[warm])

    expected = _torch_rates(torch_schedule, total)
    ours = _ours(RateSchedule(main, BASE, 1e-4, total, warmup_steps=warm), total)
    # the warm-up, then the schedule from its own step 0
    start = ours[warm]  # up to the rate the schedule starts with (lr / 25 for one-cycle)
    np.testing.assert_allclose(ours[:warm], [start * (s + 1) / warm for s in range(warm)], rtol=1e-12)
    np.testing.assert_allclose(ours, expected, rtol=1e-9)


SCORES = [0.5, 0.6, 0.6, 0.59, 0.6, 0.61, 0.61, 0.61, 0.7, 0.7, 0.69, 0.69, 0.69, 0.7, 0.7, 0.7]


@pytest.mark.parametrize(
    "rule",
    [
        ReduceOnPlateau(patience=1),
        ReduceOnPlateau(factor=0.5, patience=0, cooldown=2),
        ReduceOnPlateau(factor=0.3, patience=1, threshold=0.02, threshold_mode="abs", min_lr=1e-3),
        ReduceOnPlateau(factor=0.5, patience=0, threshold=0.5),  # nothing counts as better
    ],
)
def test_plateau_is_torchs_reduce_lr_on_plateau(rule):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=rule.factor,
        patience=rule.patience,
        threshold=rule.threshold,
        threshold_mode=rule.threshold_mode,
        cooldown=rule.cooldown,
        min_lr=rule.min_lr,
        eps=rule.eps,
    )
    ours = RateSchedule(rule, BASE, None, total_steps=100)
    steps_per_epoch = 3
    for epoch, score in enumerate(SCORES, start=1):
        reference.step(score)
        ours.end_epoch(score, epoch * steps_per_epoch)
        assert ours.rate(epoch * steps_per_epoch) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
    assert ours.rate(0) < BASE  # the rules above do reduce on these scores


def test_plateau_counts_no_epoch_of_the_warm_up():
    ours = RateSchedule(ReduceOnPlateau(patience=0, threshold=0.5), BASE, None, 100, warmup_steps=6)
    ours.end_epoch(0.5, 3)
    ours.end_epoch(0.5, 6)  # the warm-up's last epoch
    assert ours.state() == (1.0, -np.inf, 0, 0)
    ours.end_epoch(0.5, 9)
    ours.end_epoch(0.5, 12)
    assert ours.factor == pytest.approx(0.1)


# ------------------------------------------------------------------ in a fit
DATA_ROWS, BATCH = 240, 40


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:DATA_ROWS] / 16.0).astype(np.float32), y[:DATA_ROWS]


def _kw(Est, **extra):
    kw = dict(blocks=[Dense(16), Dense(16)], batch_size=BATCH, max_iter=6, random_state=0)
    if Est is DeInfoRegClassifier:
        kw["inference"] = "last"  # the score the schedule follows: the last block's
    return {**kw, **extra}


def _epoch_rates(est) -> list[float]:
    return [r["learning_rate"] for r in est.history_]


def _steps_per_epoch(est) -> int:
    return est.network_.trainers[0].steps_done // len(est.history_)


@pytest.mark.parametrize("Est", [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier])
def test_one_cycle_with_warm_up_in_every_estimator_follows_torch(Est, digits):
    X, y = digits
    est = Est(**_kw(Est, lr_schedule="one_cycle", warmup_epochs=2, learning_rate=BASE)).fit(X, y)
    per_epoch = _steps_per_epoch(est)
    total, warm = 6 * per_epoch, 2 * per_epoch
    expected = _torch_rates(
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / warm, total_iters=warm - 1),
                torch.optim.lr_scheduler.OneCycleLR(
                    o, max_lr=BASE, total_steps=total - warm, cycle_momentum=False
                ),
            ],
            milestones=[warm],
        ),
        total,
    )
    # each epoch's record holds the rate of its last step
    np.testing.assert_allclose(_epoch_rates(est), expected[per_epoch - 1 :: per_epoch], rtol=1e-9)
    for trainer in est.network_.trainers:  # every block followed the same schedule
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
            expected[-1] * _scale(trainer), rel=1e-9
        )


def _scale(trainer) -> float:
    return trainer.optimizer.param_groups[0].get("lr_scale", 1.0)


def _followed_plateau(est, rule: ReduceOnPlateau) -> list[float]:
    """Torch's ReduceLROnPlateau fed the fit's validation scores: the rate after each epoch."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=est.learning_rate)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=rule.factor, patience=rule.patience, threshold=rule.threshold
    )
    rates = []
    for record in est.history_:
        rates.append(optimizer.param_groups[0]["lr"])
        reference.step(record["validation_scores"][-1])
    return rates


# threshold 0.5 (relative): an epoch counts as better only when its score rises by half, so
# every fit here plateaus within its 6 epochs whatever the machine's rounding (at 0.05 a fit
# whose scores kept rising 5 % an epoch on one machine never reduced its rate)
PLATEAU = ReduceOnPlateau(factor=0.5, patience=0, threshold=0.5)


@pytest.mark.parametrize("Est", [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier])
def test_plateau_follows_torch_on_the_validation_scores(Est, digits):
    X, y = digits
    est = Est(**_kw(Est, lr_schedule=PLATEAU, learning_rate=BASE, validation_fraction=0.25)).fit(X, y)
    expected = _followed_plateau(est, PLATEAU)
    np.testing.assert_allclose(_epoch_rates(est), expected, rtol=1e-12)
    assert min(expected) < BASE  # the test exercises a reduction


def test_plateau_needs_validation_data(digits):
    X, y = digits
    with pytest.raises(ValueError, match="validation_fraction > 0"):
        DeInfoRegClassifier(lr_schedule="plateau", validation_fraction=None).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(lr_schedule="step"), "'constant', 'cosine', 'one_cycle', 'plateau'"),
        (dict(lr_schedule=torch.optim.lr_scheduler.StepLR), "not a schedule"),
        (dict(warmup_epochs=6, max_iter=6), "smaller than max_iter=6"),
        (dict(warmup_epochs=-1), "warmup_epochs"),
    ],
)
def test_bad_schedules_are_refused_before_training(params, match, digits):
    X, y = digits
    est = DeInfoRegClassifier(**params)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "network_")


def test_bad_schedule_settings_are_refused_when_made():
    with pytest.raises(ValueError, match="pct_start"):
        OneCycle(pct_start=1.5)
    with pytest.raises(ValueError, match="factor"):
        ReduceOnPlateau(factor=2.0)


@pytest.mark.parametrize("engine", ["threads", "processes"])
def test_a_pipeline_trains_on_the_same_schedule(engine, digits, one_thread):
    X, y = digits
    params = _kw(DeInfoRegClassifier, lr_schedule=PLATEAU, warmup_epochs=1, validation_fraction=0.25)
    one = DeInfoRegClassifier(**params).fit(X, y)
    piped = DeInfoRegClassifier(**params, devices=["cpu", "cpu"], engine=engine).fit(X, y)
    assert _epoch_rates(piped) == _epoch_rates(one)
    assert min(_epoch_rates(one)[1:]) < one.learning_rate
    assert_same_training(one, piped, X, atol=1e-6)


def test_a_crash_resumes_mid_plateau_to_the_uninterrupted_fit(digits, tmp_path, monkeypatch):
    X, y = digits
    params = _kw(DeInfoRegClassifier, lr_schedule=PLATEAU, validation_fraction=0.25)
    reference = DeInfoRegClassifier(**params).fit(X, y)
    real = loop_module.FitLoop._epoch

    def failing(self, network, engine, plan, history, reporter):
        if len(history) + 1 == 4:
            raise RuntimeError("simulated crash")
        return real(self, network, engine, plan, history, reporter)

    with monkeypatch.context() as patch:
        patch.setattr(loop_module.FitLoop, "_epoch", failing)
        with pytest.raises(RuntimeError, match="simulated crash"):
            DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(X, y)
    resumed = DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(X, y)
    assert _epoch_rates(resumed) == _epoch_rates(reference)
    assert min(_epoch_rates(reference)[:3]) < reference.learning_rate  # reduced before the crash
    assert_same_training(reference, resumed, X, atol=0)


def test_ctrl_c_goes_back_to_the_last_epoch_with_its_plateau_counters(digits, monkeypatch):
    X, y = digits
    params = _kw(DeInfoRegClassifier, lr_schedule=PLATEAU, validation_fraction=0.25, max_iter=4)
    reference = DeInfoRegClassifier(**{**params, "max_iter": 3}).fit(X, y)
    real = loop_module.FitLoop._epoch

    def interrupted(self, network, engine, plan, history, reporter):
        if len(history) + 1 == 4:
            raise KeyboardInterrupt
        return real(self, network, engine, plan, history, reporter)

    monkeypatch.setattr(loop_module.FitLoop, "_epoch", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        kept = DeInfoRegClassifier(**params).fit(X, y)
    # the first three epochs of a 4-epoch fit are those of a 3-epoch fit (a constant rate
    # between reductions), and the counters are those after epoch 3
    assert _epoch_rates(kept) == _epoch_rates(reference)
    for a, b in zip(kept.network_.trainers, reference.network_.trainers, strict=True):
        assert a.schedule.state() == b.schedule.state()


def test_warm_start_restarts_the_schedule_and_partial_fit_continues_it(digits):
    X, y = digits
    est = DeInfoRegClassifier(**_kw(DeInfoRegClassifier, lr_schedule="one_cycle", warm_start=True)).fit(X, y)
    first = _epoch_rates(est)
    est.set_params(lr_schedule="cosine", final_learning_rate=0.0, max_iter=3)
    est.fit(X, y)
    fresh = DeInfoRegClassifier(
        **_kw(DeInfoRegClassifier, lr_schedule="cosine", final_learning_rate=0.0, max_iter=3)
    )
    fresh.fit(X, y)
    assert _epoch_rates(est)[:6] == first
    assert _epoch_rates(est)[6:] == _epoch_rates(fresh)  # the new fit's own cosine, from step 0

    streamed = DeInfoRegClassifier(**_kw(DeInfoRegClassifier, lr_schedule="one_cycle", max_iter=4))
    classes = np.unique(y)
    for _ in range(2):
        streamed.partial_fit(X, y, classes=classes)
    trainer = streamed.network_.trainers[0]
    per_call = trainer.steps_done // 2
    # one schedule over max_iter epochs of the first call's batches, continued by each call
    assert trainer.total_steps == 4 * per_call
    assert _epoch_rates(streamed) == [
        trainer.schedule.rate(per_call - 1),
        trainer.schedule.rate(2 * per_call - 1),
    ]


def test_a_trainer_pickled_before_schedules_loads_as_its_cosine():
    trainer = StepTrainer.__new__(StepTrainer)
    trainer.__setstate__({"lr": 0.1, "final_lr": 0.0, "total_steps": 10, "steps_done": 4})
    assert trainer.total_steps == 10 and trainer.schedule.rate(10) == pytest.approx(0.0)
    assert trainer.schedule.rate(0) == pytest.approx(0.1)
