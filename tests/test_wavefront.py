"""The wavefront schedule trains the same network as the sequential loop.

The invariant (``engines/wavefront.py``): unit k trains on batch t after batches 0..t-1, on unit
k-1's forward of batch t, as in the per-batch loop; same-shaped blocks stacked into one
computation (``training/stacked.py``) compute each block's gradient with the kernels of its own
step and take their own optimiser steps. So weights, buffers, optimiser state, schedule,
history and predictions agree with ``schedule="sequential"``: bit for bit at 1 thread on a CPU
(atol 0), for every method and every feature of a fit.
"""

import numpy as np
import pytest
from equivalence import assert_same_training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from torch import nn

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Custom, Dense, Embedding
from deinforeg_sklearn.engines.sequential import SequentialEngine
from deinforeg_sklearn.engines.wavefront import WavefrontEngine, WavefrontRun
from deinforeg_sklearn.training.loop import FitLoop
from deinforeg_sklearn.training.stacked import StackedGroup, stack_groups

ATOL = 0.0  # the same kernels on the same rows: the same bits
PLAIN = [Dense(32)] * 4  # blocks 1-3 stack


@pytest.fixture(scope="module")
def digits500():
    X, y = load_digits(return_X_y=True)
    return (X[:500] / 16.0).astype(np.float32), y[:500]


def _pair(cls, X, y, fit=None, **params):
    """The same estimator fitted with each schedule (``fit`` calls it, default ``est.fit(X, y)``)."""
    fitted = []
    for schedule in ("sequential", "wavefront"):
        est = cls(schedule=schedule, **params)
        (fit or (lambda e: e.fit(X, y)))(est)
        fitted.append(est)
    return fitted


BASE = {"max_iter": 3, "batch_size": 48, "random_state": 0}  # 450 training rows: a last batch of 18


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"optimizer": "sgd", "learning_rate": 0.05},
        {"optimizer": "lars", "learning_rate": 0.1, "weight_decay": 1e-4},
        {"weight_decay": 1e-3, "final_learning_rate": None},
        {"alpha": 1e-3, "loss_weights": (1.0, 0.0, 0.5)},  # invariance off: no label target
        {"projector": (48, 32)},  # a hidden projector layer with BatchNorm
        {"blocks": [Dense(32, batch_norm=False)] * 4},
        {"record_gradients": True},
    ],
    ids=[
        "adam-cosine",
        "sgd",
        "lars",
        "weight-decay",
        "no-invariance",
        "deep-projector",
        "no-batch-norm",
        "gradients",
    ],
)
def test_stacked_dense_blocks_equal_the_sequential_loop(params, digits500, one_thread):
    X, y = digits500
    a, b = _pair(DeInfoRegClassifier, X, y, **{"blocks": PLAIN, **BASE, **params})
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)
    if params.get("record_gradients"):
        for ra, rb in zip(a.history_, b.history_, strict=True):
            assert ra["encoder_gradients"] == rb["encoder_gradients"]


NARROW = [Dense(128)] * 3  # digits' 64 features: block 0 joins blocks 1-2, its input zero-padded


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"optimizer": "lars", "learning_rate": 0.1, "weight_decay": 1e-4},
        {"weight_decay": 1e-3, "final_learning_rate": None},
        {"optimizer": "sgd", "learning_rate": 0.05},
        {"blocks": [Dense(128, batch_norm=False)] * 3},
        {"record_gradients": True},
    ],
    ids=["adam-cosine", "lars", "weight-decay", "sgd", "no-batch-norm", "gradients"],
)
def test_a_narrower_first_block_trains_padded_in_the_stack_with_the_same_bits(params, digits500, one_thread):
    # the padded first weight keeps its own storage and steps there (training/stacked.py);
    # the epoch's short last batch and the fill ticks run block 0 on its own modules
    X, y = digits500
    a, b = _pair(DeInfoRegClassifier, X, y, **{"blocks": NARROW, **BASE, **params})
    assert stack_groups(b.network_.trainers) == [(0, 3)]
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)
    if params.get("record_gradients"):
        for ra, rb in zip(a.history_, b.history_, strict=True):
            assert ra["encoder_gradients"] == rb["encoder_gradients"]


def test_padding_joins_a_narrow_first_block_only_where_it_costs_little(digits500, one_thread):
    X, y = digits500
    wide = DeInfoRegClassifier(blocks=[Dense(256)] * 4, max_iter=1, schedule="sequential").fit(X, y)
    assert stack_groups(wide.network_.trainers) == [(0, 4)]  # padding 64 -> 256 adds 41 %
    two = DeInfoRegClassifier(blocks=[Dense(64)] * 3, max_iter=1, schedule="sequential").fit(X[:, :2], y)
    assert stack_groups(two.network_.trainers) == [(1, 3)]  # 2 -> 64 would add 55 %: block 0 alone
    # inside a network too: block 1 reads block 0's 32 features and pads into block 2's 96
    a, b = _pair(DeInfoRegClassifier, X, y, blocks=[Dense(32), Dense(96), Dense(96)], **BASE)
    assert stack_groups(b.network_.trainers) == [(1, 3)]
    assert_same_training(a, b, X, atol=0.0, history_atol=1e-6)


@pytest.fixture
def engines(monkeypatch):
    """The engine of every fit made while the test runs."""
    seen = []
    original = FitLoop.run

    def recording(self, network, engine, plan, history):
        seen.append(engine)
        return original(self, network, engine, plan, history)

    monkeypatch.setattr(FitLoop, "run", recording)
    return seen


def test_the_wavefront_stacks_blocks_2_to_4(digits500, engines):
    X, y = digits500
    est = DeInfoRegClassifier(blocks=[Dense(32)] * 4, max_iter=1, random_state=0).fit(X, y)
    assert isinstance(engines[-1], WavefrontEngine)  # chosen by "auto"
    assert stack_groups(est.network_.trainers) == [(1, 4)]
    DeInfoRegClassifier(blocks=[Dense(32)] * 4, max_iter=1, schedule="sequential").fit(X, y)
    assert isinstance(engines[-1], SequentialEngine)
    DeInfoRegClassifier(blocks=[Conv([8]), Dense(32)], input_shape=(1, 8, 8), max_iter=1).fit(X, y)
    assert isinstance(engines[-1], SequentialEngine)  # nothing to stack: "auto" stays sequential


def test_stacking_groups_runs_of_equal_blocks(digits500):
    X, y = digits500
    est = DeInfoRegClassifier(
        blocks=[Dense(32), Dense(32), Dense(16), Dense(16), Dense(16), Dense(16, batch_norm=False)],
        max_iter=1,
        schedule="sequential",
    ).fit(X, y)
    # block 0 reads 64 features, block 2 reads 32 (unlike 3 and 4), block 5 has no BatchNorm
    assert stack_groups(est.network_.trainers) == [(3, 5)]
    half = DeInfoRegClassifier(blocks=[Dense(16)] * 3, precision="bf16", max_iter=1).fit(X, y)
    assert stack_groups(half.network_.trainers) == []  # the stacked forward runs in float32


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.sampled_from([3, 8, 16, 20, 32, 48, 96]),  # multiples of 16 stack; 96 pads block 0
    depth=st.integers(2, 5),
    batch_size=st.integers(8, 80),
    batch_norm=st.booleans(),
)
def test_any_width_and_batch_size_trains_the_same_bits(
    width, depth, batch_size, batch_norm, digits500, one_thread
):
    # tiny products (bmm's own loop), odd last batches and transposed gradients all met here
    X, y = digits500
    params = {
        "blocks": [Dense(width, batch_norm=batch_norm)] * depth,
        "max_iter": 2,
        "batch_size": batch_size,
    }
    a, b = _pair(DeInfoRegClassifier, X[:300], y[:300], random_state=0, **params)
    assert_same_training(a, b, X[:300], atol=0, history_atol=1e-5)


def test_two_threads_agree_to_rounding(digits500):
    # with 2 threads a batched kernel may split its sums otherwise than the per-block one
    X, y = digits500
    a, b = _pair(DeInfoRegClassifier, X, y, blocks=[Dense(32, batch_norm=False)] * 4, **BASE)
    assert_same_training(a, b, X, atol=1e-4)


@pytest.mark.parametrize(
    "cls, params",
    [
        (SCPLClassifier, {}),
        (ALClassifier, {}),
        (BackpropClassifier, {}),
        (DeInfoRegClassifier, {"blocks": [Conv([8]), Conv([8, "M"]), Dense(32)], "input_shape": (1, 8, 8)}),
        (
            DeInfoRegClassifier,
            {"blocks": [Conv([8]), Dense(32)], "input_shape": (1, 8, 8), "augment": "basic"},
        ),
        (DeInfoRegClassifier, {"precision": "bf16"}),
    ],
    ids=["scpl", "al", "bp", "conv", "augment", "bf16"],
)
def test_unstacked_units_equal_the_sequential_loop(cls, params, digits500, one_thread):
    X, y = digits500
    params = {"blocks": PLAIN, **BASE, **params}
    a, b = _pair(cls, X, y, **params)
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)


def test_token_masks_and_sequence_blocks(one_thread):
    rng = np.random.RandomState(0)
    X = rng.randint(1, 30, size=(160, 12))
    X[:, 8:] = 0  # padding the mask must hide
    y = (X[:, 0] > 15).astype(int)
    params = {"blocks": [Embedding(16), LSTM(16), LSTM(16)], **BASE}
    a, b = _pair(DeInfoRegClassifier, X, y, **params)
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_validation_early_stopping_and_weights(digits500, one_thread):
    X, y = digits500
    weights = np.random.RandomState(1).randint(0, 3, len(y))
    params = {
        "blocks": PLAIN,
        **BASE,
        "max_iter": 8,
        "early_stopping": True,
        "n_iter_no_change": 2,
        "class_weight": "balanced",
    }
    a, b = _pair(DeInfoRegClassifier, X, y, fit=lambda e: e.fit(X, y, sample_weight=weights), **params)
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)
    np.testing.assert_array_equal(a.block_scores_, b.block_scores_)


def test_warm_start_and_partial_fit(digits500, one_thread):
    X, y = digits500

    def twice(est):
        est.fit(X, y)
        est.set_params(max_iter=2)
        est.fit(X, y)

    a, b = _pair(DeInfoRegClassifier, X, y, fit=twice, blocks=PLAIN, warm_start=True, **BASE)
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)

    def partial(est):
        for _ in range(3):
            est.partial_fit(X, y, classes=np.unique(y))

    a, b = _pair(DeInfoRegClassifier, X, y, fit=partial, blocks=PLAIN, **BASE)
    assert_same_training(a, b, X, atol=ATOL, history_atol=1e-6)


def test_a_checkpoint_resumes_exactly_on_the_wavefront(digits500, tmp_path, monkeypatch):
    X, y = digits500
    params = {"blocks": PLAIN, **BASE, "max_iter": 4, "schedule": "wavefront"}
    whole = DeInfoRegClassifier(**params).fit(X, y)
    original = FitLoop._epoch

    def failing(self, network, engine, plan, history, reporter):
        if len(history) == 2:
            raise RuntimeError("simulated crash")
        return original(self, network, engine, plan, history, reporter)

    with monkeypatch.context() as patch:
        patch.setattr(FitLoop, "_epoch", failing)
        with pytest.raises(RuntimeError, match="simulated crash"):
            DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(X, y)
    resumed = DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(X, y)
    assert_same_training(whole, resumed, X, atol=0)


def test_ctrl_c_in_an_epoch_keeps_the_last_completed_epoch(digits500, monkeypatch):
    X, y = digits500
    # a constant rate: the cosine schedule would depend on max_iter
    params = {"blocks": PLAIN, **BASE, "schedule": "wavefront", "final_learning_rate": None}
    two = DeInfoRegClassifier(**{**params, "max_iter": 2}).fit(X, y)
    ticks = {"n": 0}
    original = WavefrontRun._tick

    def interrupted(self, *args):
        ticks["n"] += 1
        if ticks["n"] == 2 * 13 + 5:  # 10 batches + 3 drain ticks per epoch: in epoch 3
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(WavefrontRun, "_tick", interrupted)
    with pytest.warns(UserWarning, match="after epoch 2"):
        est = DeInfoRegClassifier(**params).fit(X, y)
    assert_same_training(two, est, X, atol=0)


def test_a_non_finite_loss_in_a_stacked_block_names_it(digits500, monkeypatch):
    X, y = digits500
    original = StackedGroup.forward

    def poison_second_slice(group, lo, hi, *args):
        # the group holds blocks 1-3: its position 1 is block 2, poisoned whenever it runs
        h_out, total, per_block, terms, correct = original(group, lo, hi, *args)
        if lo <= 1 < hi:
            per_block = per_block.clone()
            per_block[1 - lo] = float("nan")
            total = total * float("nan")
        return h_out, total, per_block, terms, correct

    monkeypatch.setattr(StackedGroup, "forward", poison_second_slice)
    est = DeInfoRegClassifier(blocks=PLAIN, max_iter=2, random_state=0, schedule="wavefront")
    with pytest.raises(FloatingPointError, match=r"Block 2 produced a non-finite loss in epoch 1"):
        est.fit(X, y)
    assert not hasattr(est, "network_")


def _dropout_block(shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(shape[-1], 32), nn.Dropout(0.2), nn.ReLU())


def test_blocks_that_draw_random_numbers_stay_sequential(digits500, engines):
    X, y = digits500
    blocks = [Custom(_dropout_block), Dense(32), Dense(32)]
    DeInfoRegClassifier(blocks=blocks, max_iter=1).fit(X, y)
    assert isinstance(engines[-1], SequentialEngine)
    with pytest.warns(UserWarning, match="draw random numbers"):
        DeInfoRegClassifier(blocks=blocks, max_iter=1, schedule="wavefront").fit(X, y)
    assert isinstance(engines[-1], WavefrontEngine)


def test_an_unknown_schedule_is_refused(digits500):
    X, y = digits500
    with pytest.raises(ValueError, match="schedule"):
        DeInfoRegClassifier(schedule="ticks").fit(X, y)


STAGED = [Dense(32)] * 6  # stage 0: blocks 0-2 (1-2 stack), stage 1: blocks 3-5 (all stack)


@pytest.mark.parametrize("engine", ["threads", "processes"])
@pytest.mark.parametrize("schedule", ["auto", "wavefront"])
def test_every_pipeline_stage_trains_as_a_wavefront_and_equals_the_sequential_fit(
    engine, schedule, digits500, one_thread, monkeypatch
):
    X, y = digits500
    params = {"blocks": STAGED, **BASE}
    reference = DeInfoRegClassifier(**params, schedule="sequential").fit(X, y)
    fed = []
    original = WavefrontRun.feed

    def counting(self, *args):
        fed.append(tuple(self.units))
        return original(self, *args)

    monkeypatch.setattr(WavefrontRun, "feed", counting)
    piped = DeInfoRegClassifier(
        **params, devices=["cpu", "cpu"], engine=engine, placement=[3, 3], schedule=schedule
    ).fit(X, y)
    assert piped.stage_sizes_ == [3, 3]
    if engine == "threads":  # (a spawned rank's runs are not counted here)
        assert set(fed) == {(0, 1, 2), (3, 4, 5)}
    else:
        assert set(fed) == {(0, 1, 2)}
    # the weights bit for bit; the reported loss terms come from batched kernels (rounding)
    assert_same_training(reference, piped, X, atol=ATOL, history_atol=1e-6)


def test_a_sequential_schedule_keeps_pipeline_stages_sequential(digits500, one_thread, monkeypatch):
    X, y = digits500
    fed = []
    monkeypatch.setattr(WavefrontRun, "feed", lambda self, *args: fed.append(1))
    DeInfoRegClassifier(
        blocks=STAGED, **BASE, devices=["cpu", "cpu"], engine="threads", schedule="sequential"
    ).fit(X, y)
    assert not fed
