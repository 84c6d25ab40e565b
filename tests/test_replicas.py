"""Data-parallel replicas (``devices`` as a list of lists) train the model of one device.

Invariant (``deinforeg_sklearn/training/replicas.py``): R replicas that each hold a shard of
every batch compute the gradient one device computes on the whole batch, so the fit equals the
one-device fit with the same global ``batch_size``, up to float32 rounding.

Why the equality runs with ``optimizer="sgd"``: with Adam, the bias of a linear layer right
before BatchNorm has an exact gradient of 0 (BatchNorm removes it), so its computed gradient is
rounding noise, which Adam divides by its own size into steps of the learning rate. Any change
of summation order moves those biases: one device at 2 threads against 1 thread differs there
as much as 2 replicas do (0.07 relative, measured), while every other parameter and the
predictions agree. With SGD the noise stays noise (both differences about 1.5e-7 relative).
Adam is tested on blocks without BatchNorm, where every parameter agrees.
"""

import os
import tempfile
import time

import numpy as np
import pytest
import torch

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Conv, Dense
from deinforeg_sklearn.devices import resolve_device_grid
from deinforeg_sklearn.engines.choice import REPLICA_SYNC_S, cpu_replicas_seconds
from deinforeg_sklearn.engines.launch import StageProcessError
from deinforeg_sklearn.engines.probe import probes_cpu_replicas
from deinforeg_sklearn.training.replicas import shard, shard_sizes, synchronisations_per_step
from tests.stage_helpers import killed_in_rank_1, raise_in_rank_1, stage_processes

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RELATIVE = 1e-5


@pytest.fixture(scope="module")
def part():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:360] / 16.0).astype(np.float32), y[:360]


def assert_same_parameters(a, b, rel=RELATIVE):
    """Every floating tensor of the two networks' state within ``rel`` of its norm."""
    sa, sb = a.network_.state_dict(), b.network_.state_dict()
    assert sa.keys() == sb.keys()
    for name, value in sa.items():
        if not value.is_floating_point():
            torch.testing.assert_close(value, sb[name], rtol=0, atol=0, msg=name)
            continue
        gap = float((value - sb[name]).norm() / value.norm().clamp_min(1e-12))
        assert gap <= rel, f"{name}: relative gap {gap:.2e}"


def test_shards_split_every_batch_evenly():
    assert shard_sizes(10, 3) == [4, 3, 3]
    assert shard_sizes(2, 4) == [1, 1, 0, 0]
    index = np.arange(10)
    assert np.concatenate([shard(index, 3, r) for r in range(3)]).tolist() == index.tolist()


def test_device_grid_is_checked():
    cpu = torch.device("cpu")
    assert resolve_device_grid(["cpu", "cpu"]) == [[cpu], [cpu]]
    assert resolve_device_grid([["cpu", "cpu"]]) == [[cpu, cpu]]
    with pytest.raises(ValueError, match="same number of replicas"):
        resolve_device_grid([["cpu", "cpu"], ["cpu"]])
    with pytest.raises(ValueError, match="mixes devices and lists"):
        resolve_device_grid(["cpu", ["cpu"]])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(engine="threads"), "engine='threads' cannot run data-parallel replicas"),
        (dict(schedule="wavefront"), "schedule='wavefront' does not run with data-parallel"),
    ],
)
def test_what_replicas_cannot_run_with_is_refused_before_any_work(kw, match, part):
    X, y = part
    est = DeInfoRegClassifier(devices=[["cpu", "cpu"]], **kw)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "network_")


def test_one_stage_estimators_take_replicas_but_not_stages(part):
    X, y = part
    with pytest.raises(ValueError, match="trains on one device"):
        BackpropClassifier(devices=[["cpu"], ["cpu"]]).fit(X, y)


def test_synchronisations_per_step_count_batch_norms_losses_and_the_gradient_sum():
    units = [torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)), torch.nn.Linear(4, 2)]
    assert synchronisations_per_step(units) == 2 * 1 + 2 + 1
    assert synchronisations_per_step([torch.nn.Conv2d(1, 1, 3)]) == 0 + 1 + 1


def test_cpu_replicas_pay_when_steps_are_long_against_their_synchronisations():
    # the conv model of benchmarks/data_parallel.py, per unit and batch: 80 ms on one device,
    # 45 ms on a replica's half; 23 synchronisations of 1.5 ms per batch
    replicated, one = cpu_replicas_seconds([0.08] * 4, [0.045] * 4, [23], [4], batches=100, epochs=10)
    assert replicated == pytest.approx((0.18 + 23 * REPLICA_SYNC_S) * 1000 + 3.0)
    assert replicated < one == pytest.approx(320.0)
    # 4 x Dense(256): 3 ms per unit on one device, 21 synchronisations: the waits dominate
    replicated, one = cpu_replicas_seconds([0.003] * 4, [0.0025] * 4, [21], [4], batches=100, epochs=10)
    assert replicated > one
    # two stages of replicas pipeline: the slower stage sets the pace, plus the hand-over
    replicated, _ = cpu_replicas_seconds([0.08] * 4, [0.045] * 4, [12, 12], [2, 2], batches=100, epochs=1)
    slowest = 0.09 + 12 * REPLICA_SYNC_S
    assert replicated == pytest.approx((slowest + 0.0025) * 100 + slowest + 3.0)


def test_only_replicas_this_fit_launches_on_the_cpu_are_probed(monkeypatch):
    cpu = torch.device("cpu")
    assert probes_cpu_replicas([[cpu, cpu]])
    assert not probes_cpu_replicas([[torch.device("cuda", 0), torch.device("cuda", 1)]])
    for name, value in dict(RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="1").items():
        monkeypatch.setenv(name, value)
    assert not probes_cpu_replicas([[cpu, cpu]])  # torchrun's ranks: the user laid them out


CONV = [Conv([8]), Conv([8, "M"])]


@pytest.mark.parametrize(
    "Est, blocks, extra",
    [
        (DeInfoRegClassifier, [Dense(32), Dense(32)], {}),
        (BackpropClassifier, [Dense(32), Dense(32)], {}),
        (SCPLClassifier, [Dense(32), Dense(32)], {}),
        (ALClassifier, [Dense(32), Dense(32)], {}),
        # without the validation split: its 324 training rows end each epoch with a batch of
        # 4, where this conv model turns BatchNorm's rounding into a 4e-4 relative gap, on one
        # device too when its BatchNorm sums as the replicas' does (docs/distributed.md)
        (DeInfoRegClassifier, CONV, dict(input_shape=(1, 8, 8), validation_fraction=0.0)),
    ],
    ids=["deinforeg", "bp", "scpl", "al", "deinforeg-conv"],
)
def test_two_replicas_train_the_one_device_model(Est, blocks, extra, part, one_thread):
    X, y = part
    params = dict(blocks=blocks, max_iter=3, batch_size=64, optimizer="sgd", random_state=0, **extra)
    reference = Est(**params).fit(X, y)
    # so small a fit is shorter on one device: the probe says so, and the replicas run as asked
    with pytest.warns(UserWarning, match="predicts .* s with them against .* s on one device"):
        replicated = Est(**params, devices=[["cpu", "cpu"]]).fit(X, y)
    assert_same_parameters(reference, replicated)
    np.testing.assert_allclose(replicated.predict_proba(X), reference.predict_proba(X), atol=1e-5)
    # one report: the history holds the epochs once, with the loss of the global batches
    assert len(replicated.history_) == 3
    for mine, theirs in zip(replicated.history_, reference.history_, strict=True):
        for a, b in zip(mine["blocks"], theirs["blocks"], strict=True):
            for key in a:
                if isinstance(a[key], float):
                    assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    # the fitted estimator holds one copy of the model, with torch's BatchNorm classes
    assert all(
        type(m).__module__.startswith("torch.")
        for m in replicated.network_.modules()
        if "Norm" in type(m).__name__
    )
    assert not stage_processes()


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_one_step_gradient_is_the_global_batch_gradient(kind, one_thread):
    # The invariant itself, on one step of one DeInfoReg block with BatchNorm in its encoder
    # and projector: 2 gloo processes with 32 rows each against one process with all 64.
    import torch.multiprocessing as mp

    from tests.replica_job import one_device_step, replica_step

    with tempfile.TemporaryDirectory() as folder:
        store = os.path.join(folder, "store")
        mp.spawn(replica_step, args=(kind, store), nprocs=2, join=True)
        replicated, replicated_loss = torch.load(store + ".out")
    reference, loss = one_device_step(kind)
    assert replicated_loss == pytest.approx(loss, rel=1e-6)
    for name, grad in reference.items():
        if grad.norm() < 1e-6:
            # the bias right before a BatchNorm: its exact gradient is 0, its computed one
            # rounding noise in either run
            assert replicated[name].norm() < 1e-6, name
            continue
        gap = float((grad - replicated[name]).norm() / grad.norm())
        assert gap < 1e-5, f"{name}: {gap:.2e}"


@pytest.mark.slow
def test_four_replicas_with_batches_that_do_not_divide(part, one_thread):
    X, y = part
    # 360 rows in batches of 50: shards of 13 + 13 + 12 + 12, and a last batch of 10 (3+3+2+2)
    params = dict(blocks=[Dense(32), Dense(32)], max_iter=3, batch_size=50, optimizer="sgd", random_state=0)
    reference = DeInfoRegClassifier(**params).fit(X, y)
    replicated = DeInfoRegClassifier(**params, devices=[["cpu"] * 4]).fit(X, y)
    assert_same_parameters(reference, replicated)


@pytest.mark.slow
def test_two_stages_of_two_replicas(part, one_thread):
    X, y = part
    params = dict(blocks=[Dense(32), Dense(32), Dense(32)], max_iter=3, optimizer="sgd", random_state=0)
    reference = DeInfoRegClassifier(**params).fit(X, y)
    grid = DeInfoRegClassifier(**params, devices=[["cpu", "cpu"], ["cpu", "cpu"]], placement=[2, 1]).fit(X, y)
    assert_same_parameters(reference, grid)
    assert grid.stage_sizes_ == [2, 1]


@pytest.mark.slow
def test_adam_without_batch_norm_agrees_on_every_parameter(part, one_thread):
    X, y = part
    blocks = [Dense(32, batch_norm=False), Dense(32, batch_norm=False)]
    params = dict(blocks=blocks, max_iter=3, random_state=0)
    reference = DeInfoRegClassifier(**params).fit(X, y)
    replicated = DeInfoRegClassifier(**params, devices=[["cpu", "cpu"]]).fit(X, y)
    assert_same_parameters(reference, replicated, rel=1e-4)


@pytest.mark.slow
def test_validation_and_early_stopping_take_one_decision(part, one_thread):
    X, y = part
    params = dict(
        blocks=[Dense(32), Dense(32)],
        max_iter=6,
        optimizer="sgd",
        validation_fraction=0.2,
        early_stopping=True,
        n_iter_no_change=1,
        tol=10.0,  # no epoch improves by that much: stops after the second
        random_state=0,
    )
    reference = DeInfoRegClassifier(**params).fit(X, y)
    replicated = DeInfoRegClassifier(**params, devices=[["cpu", "cpu"]]).fit(X, y)
    assert len(replicated.history_) == len(reference.history_) < 6
    assert_same_parameters(reference, replicated)


@pytest.mark.parametrize(
    "resume_on",
    [None, pytest.param([["cpu"] * 4], marks=pytest.mark.slow)],
    ids=["one-device", "four-replicas"],
)
def test_a_checkpoint_of_two_replicas_resumes_elsewhere(resume_on, part, tmp_path, monkeypatch, one_thread):
    from tests.test_checkpoint import _crash_in_epoch

    X, y = part
    params = dict(blocks=[Dense(32), Dense(32)], max_iter=4, optimizer="sgd", random_state=0)
    uninterrupted = DeInfoRegClassifier(**params, devices=[["cpu", "cpu"]]).fit(X, y)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 3)
        crashed = DeInfoRegClassifier(**params, devices=[["cpu", "cpu"]], checkpoint=tmp_path)
        with pytest.raises(RuntimeError):
            crashed.fit(X, y)
    assert not hasattr(crashed, "network_")
    resumed = DeInfoRegClassifier(**params, devices=resume_on, checkpoint=tmp_path).fit(X, y)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    assert_same_parameters(uninterrupted, resumed)


@pytest.mark.parametrize("kill", [False, True], ids=["raises", "sigkill"])
def test_a_failing_replica_surfaces_fast_naming_its_stage_and_replica(kill, part):
    X, y = part
    est = DeInfoRegClassifier(blocks=[Dense(16)] * 2, max_iter=1, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    est.set_params(
        blocks=[Dense(16), killed_in_rank_1 if kill else raise_in_rank_1],
        devices=[["cpu", "cpu"]],
        max_iter=3,
    )
    start = time.monotonic()
    expected = "died with exit code -9" if kill else "boom in rank 1 on training batch 3"
    with pytest.raises(StageProcessError, match=f"pipeline stage 0, replica 1 (.|\n)*{expected}"):
        est.fit(X, y)
    assert time.monotonic() - start < 30
    assert not stage_processes()
    np.testing.assert_array_equal(est.predict_proba(X), before)  # the last good state


def test_a_replica_process_receives_no_copy_of_X(part, tmp_path):
    from deinforeg_sklearn.data.inputs import to_rows
    from deinforeg_sklearn.data.mapped import mapped_rows
    from deinforeg_sklearn.engines.launch import dumps

    X = np.random.RandomState(0).rand(5000, 64).astype(np.float32)
    rows = to_rows(X, (64,))
    mapped = mapped_rows(rows, str(tmp_path))
    assert len(dumps(mapped)) < 2000  # a file name, not 1.3 MB of rows
    index = np.array([3, 4000, 7])
    torch.testing.assert_close(
        mapped.batch(index, torch.device("cpu")), rows.batch(index, torch.device("cpu"))
    )


def test_two_replicas_under_torchrun(tmp_path, one_thread):
    from tests.torchrun_job import REPLICA_PARAMS, data, launch

    launch(tmp_path, "replicas")
    X, y = data()
    expected = DeInfoRegClassifier(**REPLICA_PARAMS).fit(X, y).predict_proba(X)
    for rank in (0, 1):  # every rank holds the one model
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), expected, atol=1e-5)
    assert (tmp_path / "hooks-rank0.txt").read_text().split("\n") == [
        "begin",
        "epoch 1",
        "epoch 2",
        "end",
        "",
    ]
    assert not (tmp_path / "hooks-rank1.txt").exists()


def test_ctrl_c_keeps_the_last_epoch_and_stops_every_replica(part, monkeypatch, one_thread):
    from deinforeg_sklearn.training import loop as loop_module

    X, y = part
    params = dict(blocks=[Dense(32), Dense(32)], max_iter=4, optimizer="sgd", random_state=0)
    real = loop_module.FitLoop._epoch

    def interrupted(self, network, engine, plan, history, reporter):
        if len(history) + 1 == 3:  # the caller (rank 0) is interrupted before its third epoch
            raise KeyboardInterrupt
        return real(self, network, engine, plan, history, reporter)

    monkeypatch.setattr(loop_module.FitLoop, "_epoch", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        reference = DeInfoRegClassifier(**params).fit(X, y)
    start = time.monotonic()
    with pytest.warns(UserWarning, match="interrupted"):
        kept = DeInfoRegClassifier(**params, devices=[["cpu", "cpu"]]).fit(X, y)
    assert time.monotonic() - start < 30
    assert len(kept.history_) == len(reference.history_) == 2
    assert_same_parameters(reference, kept)
    assert not stage_processes()


@pytest.mark.slow
@pytest.mark.parametrize("Est", [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier])
@pytest.mark.parametrize(
    "kind, replicas", [("dense", 4), ("conv", 2), ("conv", 4)], ids=["dense-4", "conv-2", "conv-4"]
)
def test_every_estimator_with_dense_and_conv_blocks_and_2_or_4_replicas(
    Est, kind, replicas, part, one_thread
):
    X, y = part
    blocks = [Dense(32), Dense(32)] if kind == "dense" else CONV
    extra = {} if kind == "dense" else dict(input_shape=(1, 8, 8), validation_fraction=0.0)
    params = dict(blocks=blocks, max_iter=3, batch_size=64, optimizer="sgd", random_state=0, **extra)
    reference = Est(**params).fit(X, y)
    replicated = Est(**params, devices=[["cpu"] * replicas]).fit(X, y)
    assert_same_parameters(reference, replicated)
    np.testing.assert_allclose(replicated.predict_proba(X), reference.predict_proba(X), atol=1e-5)


@pytest.mark.slow
def test_dropout_draws_a_reproducible_stream_per_replica(part, one_thread):
    from tests.stage_helpers import dropout_block

    X, y = part
    params = dict(blocks=[dropout_block, Dense(16)], max_iter=2, random_state=0, devices=[["cpu", "cpu"]])
    first = DeInfoRegClassifier(**params).fit(X, y)
    again = DeInfoRegClassifier(**params).fit(X, y)
    for (name, a), b in zip(
        first.network_.state_dict().items(), again.network_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # the replicas draw their own masks: not the one-device fit, which draws one stream
    one_device = DeInfoRegClassifier(**{**params, "devices": None}).fit(X, y)
    assert not np.allclose(one_device.predict_proba(X), first.predict_proba(X), atol=1e-6)


def test_a_memory_mapped_X_is_mapped_by_the_replicas_not_copied(tmp_path):
    from deinforeg_sklearn.data.inputs import to_rows
    from deinforeg_sklearn.data.mapped import MappedRows, mapped_rows

    path = tmp_path / "X.npy"
    np.save(path, np.random.RandomState(0).rand(300, 12).astype(np.float32))
    X = np.load(path, mmap_mode="r")  # a memmap with a header before the rows
    for view in (X, X[100:]):  # the whole map, and rows of it
        rows = to_rows(np.asarray(view), (3, 4))
        folder = tmp_path / f"fit-{len(view)}"
        folder.mkdir()
        mapped = mapped_rows(rows, str(folder))
        assert isinstance(mapped, MappedRows) and mapped.path == str(path)
        assert not list(folder.iterdir())  # nothing written
        index = np.array([0, 5, len(view) - 1])
        torch.testing.assert_close(
            mapped.batch(index, torch.device("cpu")), rows.batch(index, torch.device("cpu"))
        )
