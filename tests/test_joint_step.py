"""One backward per stage trains the same network as one backward per block.

The invariant (``training/step.py``, ``step_jointly``): each block reads its predecessor's
output detached, so the gradient of the summed block losses gives every parameter exactly its
own block's gradient. Weights, buffers, optimiser state, schedule and history therefore agree
with per-block stepping, for every method, optimiser and schedule, on one device and inside the
stages of a pipeline.
"""

import numpy as np
import pytest
import torch
from equivalence import assert_same_training
from sklearn.datasets import load_digits

from deinforeg_sklearn import ALClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training.step import StepTrainer


@pytest.fixture(scope="module")
def digits400():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16.0).astype(np.float32), y[:400]


def _fit(cls, X, y, backward, **params):
    est = cls(
        blocks=[Dense(32), Dense(32), Dense(24)],
        max_iter=2,
        batch_size=64,
        random_state=0,
        backward=backward,
        **params,
    )
    return est.fit(X, y)


METHODS = [DeInfoRegClassifier, SCPLClassifier, ALClassifier]
OPTIMISERS = [
    {"optimizer": "adam"},
    {"optimizer": "sgd", "learning_rate": 0.05},
    {"optimizer": "lars", "learning_rate": 0.1, "weight_decay": 1e-4},
    {"optimizer": "adam", "final_learning_rate": 1e-5},  # the cosine schedule
]


@pytest.mark.parametrize("cls", METHODS)
@pytest.mark.parametrize("params", OPTIMISERS, ids=["adam", "sgd", "lars", "cosine"])
def test_per_stage_backward_equals_per_block(cls, params, digits400):
    X, y = digits400
    per_block = _fit(cls, X, y, "per_block", **params)
    per_stage = _fit(cls, X, y, "per_stage", **params)
    assert_same_training(per_block, per_stage, X, atol=1e-6)


def test_per_stage_backward_equals_per_block_inside_pipeline_stages(digits400, one_thread):
    X, y = digits400
    per_block = _fit(DeInfoRegClassifier, X, y, "per_block")
    staged = _fit(
        DeInfoRegClassifier, X, y, "per_stage", devices=["cpu", "cpu"], placement=[2, 1], engine="threads"
    )
    assert_same_training(per_block, staged, X, atol=1e-6)


def test_the_per_stage_path_runs_one_backward(digits400, monkeypatch):
    # Guards the test above against passing vacuously: "per_stage" must really take the
    # joint path, and "per_block" must not.
    calls = {"joint": 0, "single": 0}
    joint_forward, single_step = StepTrainer.forward, StepTrainer.step

    def counting_step(self, *args):
        calls["single"] += 1
        return single_step(self, *args)

    def counting_forward(self, *args):
        calls["joint"] += 1
        return joint_forward(self, *args)

    monkeypatch.setattr(StepTrainer, "step", counting_step)
    monkeypatch.setattr(StepTrainer, "forward", counting_forward)
    X, y = digits400
    _fit(DeInfoRegClassifier, X, y, "per_stage")
    assert calls["single"] == 0 and calls["joint"] > 0
    calls.update(joint=0, single=0)
    _fit(DeInfoRegClassifier, X, y, "per_block")
    assert calls["single"] > 0 and calls["joint"] == calls["single"]  # step calls forward


@pytest.mark.parametrize("backward", ["per_block", "per_stage"])
def test_a_non_finite_loss_names_its_block_and_keeps_the_last_good_state(backward, digits400, monkeypatch):
    from deinforeg_sklearn.training.decoupled import LocalBlock

    X, y = digits400
    est = _fit(DeInfoRegClassifier, X, y, backward)
    before = {k: v.clone() for k, v in est.network_.state_dict().items()}
    original = LocalBlock.step_loss

    def poison_block_1(block, h, y_, mask):
        h_out, loss, stats = original(block, h, y_, mask)
        if h.shape[1] == 32 and block.encoder.net[1].out_features == 32:  # the second block
            loss = loss * float("nan")
        return h_out, loss, stats

    monkeypatch.setattr(LocalBlock, "step_loss", poison_block_1)
    est.set_params(warm_start=True)
    # epoch 3: the warm start continues after the first fit's 2 epochs
    with pytest.raises(FloatingPointError, match="Block 1 produced a non-finite loss in epoch 3"):
        est.fit(X, y)
    for key, value in est.network_.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
