"""Bad input gets a clear error before training starts, and a failed fit loses nothing."""

import numpy as np
import pytest
import torch
from torch import nn

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training import StepTrainer


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any optimiser step runs: errors must come before training."""

    def forbidden(*args, **kwargs):
        raise AssertionError("training started before the input was rejected")

    monkeypatch.setattr(StepTrainer, "step", forbidden)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_inf(value, small_data, no_training):
    X, y = small_data
    X = X.copy()
    X[3, 2] = value
    with pytest.raises(ValueError, match="NaN|infinity"):
        DeInfoRegClassifier().fit(X, y)


def test_empty_x(no_training):
    with pytest.raises(ValueError, match="0 sample"):
        DeInfoRegClassifier().fit(np.empty((0, 3)), [])


def test_single_sample(no_training):
    with pytest.raises(ValueError, match="1 sample"):
        DeInfoRegClassifier().fit(np.ones((1, 3)), [0])


def test_single_class(small_data, no_training):
    with pytest.raises(ValueError, match="single class"):
        DeInfoRegClassifier().fit(small_data[0], np.zeros(len(small_data[0])))


def test_continuous_target(small_data, no_training):
    with pytest.raises(ValueError, match="Unknown label type"):
        DeInfoRegClassifier().fit(small_data[0], np.linspace(0, 1, len(small_data[0])))


def test_unknown_block_spec(small_data, no_training):
    with pytest.raises(ValueError, match=r"blocks\[0\] is 42"):
        DeInfoRegClassifier(blocks=[42]).fit(*small_data)


def test_input_shape_mismatch(small_data, no_training):
    with pytest.raises(ValueError, match="must equal n_features"):
        DeInfoRegClassifier(input_shape=(1, 2, 2)).fit(*small_data)


@pytest.mark.parametrize("device", ["cuda:0", 0, "cuda:7", "tpu", ["cpu", "cuda:3"], [0, 1]])
def test_device_not_present(device, small_data, no_training):
    present = {"cuda:0": 1, 0: 1, "cuda:7": 8}.get(device if not isinstance(device, list) else None)
    if device == [0, 1]:
        present = 2
    if present is not None and torch.cuda.device_count() >= present:
        pytest.skip("this machine has that CUDA device")
    with pytest.raises(ValueError, match="not present|not a device|not supported|one device"):
        DeInfoRegClassifier(devices=device).fit(*small_data)


def test_backprop_refuses_several_devices(small_data, no_training):
    with pytest.raises(ValueError, match="trains on one device"):
        BackpropClassifier(devices=["cpu", "cpu"]).fit(*small_data)


def test_bad_parameters_are_named(small_data, no_training):
    with pytest.raises(ValueError, match="'alpha' parameter"):
        DeInfoRegClassifier(alpha=-1).fit(*small_data)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        DeInfoRegClassifier(batch_size=1).fit(*small_data)
    with pytest.raises(ValueError, match="'optimizer' parameter"):
        DeInfoRegClassifier(optimizer="rmsprop").fit(*small_data)
    with pytest.raises(ValueError, match="loss_weights"):
        DeInfoRegClassifier(loss_weights=(1, 1)).fit(*small_data)
    with pytest.raises(ValueError, match="projector"):
        DeInfoRegClassifier(projector=(16, 0)).fit(*small_data)
    with pytest.raises(ValueError, match="image input"):
        DeInfoRegClassifier(augment="basic").fit(*small_data)


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_wrong_n_features_at_predict(cls, small_data):
    X, y = small_data
    est = cls(blocks=[Dense(4)], max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but .* is expecting 6"):
        est.predict(X[:, :5])


def test_batch_size_larger_than_data_is_clipped(small_data):
    X, y = small_data
    with pytest.warns(UserWarning, match="batch_size=500 is larger than the 108 training samples"):
        est = DeInfoRegClassifier(blocks=[Dense(4)], batch_size=500, max_iter=1, random_state=0).fit(X, y)
    assert est.network_.trainers[0].steps_done == 1


class NaNAfter(nn.Module):
    """A layer whose output turns to NaN from its ``k``-th training batch on."""

    def __init__(self, width, k):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.k = k
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        out = self.linear(x)
        return out * float("nan") if self.training and self.calls >= self.k else out


def nan_on_third_batch(shape):
    return NaNAfter(shape[0], 3)


def nan_on_fifth_batch(shape):
    return NaNAfter(shape[0], 5)


def test_nan_loss_names_block_and_epoch(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(
        blocks=[Dense(4), nan_on_third_batch], batch_size=54, max_iter=5, random_state=0
    )
    with pytest.raises(FloatingPointError, match=r"Block 1 produced a non-finite loss in epoch 2"):
        est.fit(X, y)  # 108 training rows -> 2 batches per epoch: the third is in epoch 2
    assert not hasattr(est, "network_") and not hasattr(est, "n_features_in_")


def test_failed_warm_fit_keeps_last_good_state(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(4)], max_iter=1, warm_start=True, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    state = {k: v.clone() for k, v in est.network_.state_dict().items()}
    with pytest.raises(ValueError):
        est.fit(X[:, :3], y)  # wrong width
    est.set_params(warm_start=False, blocks=[Dense(4), nan_on_fifth_batch], max_iter=3, batch_size=20)
    with pytest.raises(FloatingPointError):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)
    for k, v in est.network_.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert est.n_iter_ == 1


def interrupt_on_step(monkeypatch, n):
    calls = {"n": 0}
    original = StepTrainer.step

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(StepTrainer, "step", interrupted)


def test_interrupt_in_first_epoch_keeps_previous_state(small_data, monkeypatch):
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(4)], max_iter=2, warm_start=True, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    interrupt_on_step(monkeypatch, 1)  # nothing of the new fit completes
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)
    assert est.n_iter_ == 2


PIPELINE = {"devices": ["cpu", "cpu"], "engine": "threads", "placement": [1, 1]}
PROCESSES = {"devices": ["cpu", "cpu"], "engine": "processes", "placement": [1, 1]}


@pytest.mark.parametrize(
    ("pipeline", "step"),
    # 108 training rows / 36 = 3 batches x 2 blocks = 6 steps per epoch in this process: step 22
    # is in epoch 4. Under processes this process (rank 0) steps block 0 alone: 3 per epoch, and
    # Ctrl-C reaches only it (stage processes ignore SIGINT), as the patched step does here.
    [({}, 22), (PIPELINE, 22), (PROCESSES, 11)],
    ids=["one-device", "threads", "processes"],
)
def test_interrupt_keeps_last_completed_epoch(small_data, monkeypatch, pipeline, step):
    from stage_helpers import stage_processes

    X, y = small_data
    kw = {"blocks": [Dense(4), Dense(4)], "batch_size": 36, "random_state": 0, "final_learning_rate": None}
    kw.update(pipeline)
    three_epochs = DeInfoRegClassifier(max_iter=3, **kw).fit(X, y)
    interrupt_on_step(monkeypatch, step)
    est = DeInfoRegClassifier(max_iter=6, **kw)
    with pytest.warns(UserWarning, match="interrupted; keeping the model after epoch 3"):
        est.fit(X, y)
    assert est.n_iter_ == 3 and len(est.history_) == 3
    # the cosine schedule is off (constant rate), so 3 epochs of a 6-epoch fit = a 3-epoch fit
    np.testing.assert_allclose(est.predict_proba(X), three_epochs.predict_proba(X), atol=1e-6)
    assert not stage_processes()


def test_interrupt_without_last_epoch_copy_rolls_back(small_data, monkeypatch):
    X, y = small_data
    kw = {"blocks": [Dense(4), Dense(4)], "batch_size": 36, "random_state": 0, "max_iter": 2}
    est = DeInfoRegClassifier(warm_start=True, **kw).fit(X, y)
    before = est.predict_proba(X)
    est.set_params(keep_last_epoch=False, max_iter=6)
    interrupt_on_step(monkeypatch, 22)  # in the 4th epoch of the new fit
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)
    assert est.n_iter_ == 2


def test_one_snapshot_at_a_time_and_ctrl_c_while_taking_one(small_data, monkeypatch):
    """The loop drops the last epoch's copy before taking the next (peak memory: one copy of
    the network, not two), so a Ctrl-C while a copy is taken must keep the network itself,
    which holds that completed epoch."""
    import gc
    import weakref

    from deinforeg_sklearn.training import snapshot as snapshot_module

    X, y = small_data
    kw = {"blocks": [Dense(4), Dense(4)], "batch_size": 36, "random_state": 0, "final_learning_rate": None}
    kw.update(early_stopping=True, validation_fraction=0.2, n_iter_no_change=50)
    four_epochs = DeInfoRegClassifier(max_iter=4, **kw).fit(X, y)
    original = snapshot_module.Snapshot.take.__func__
    taken: list[weakref.ref] = []
    alive = []

    def counting(cls, *args):
        gc.collect()
        alive.append(sum(ref() is not None for ref in taken))
        if len(alive) == 4:  # epoch 4's copy: Ctrl-C while it is taken
            raise KeyboardInterrupt
        snapshot = original(cls, *args)
        taken.append(weakref.ref(snapshot))
        return snapshot

    monkeypatch.setattr(snapshot_module.Snapshot, "take", classmethod(counting))
    est = DeInfoRegClassifier(max_iter=6, **kw)
    with pytest.warns(UserWarning, match="interrupted; keeping the model after epoch 4"):
        est.fit(X, y)
    # no copy is taken while two are alive; one may be: early stopping's best, when older
    assert alive[0] == 0 and max(alive) <= 1
    assert len(est.history_) == 4 and est.n_iter_ == 4
    # epoch 4 was kept, then early stopping went to its best epoch, as the 4-epoch fit did
    # (the rate is constant, so the first 4 epochs of a 6-epoch fit are a 4-epoch fit)
    np.testing.assert_allclose(est.predict_proba(X), four_epochs.predict_proba(X), atol=1e-6)
    assert [r["epoch"] for r in est.history_] == [r["epoch"] for r in four_epochs.history_]
