"""Pipelined multi-device training: placement, the engine invariant, faults, torchrun."""

import os
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
from equivalence import assert_same_training
from stage_helpers import dropout_block, killed_on_third, raise_on_third, stage_processes

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Custom, Dense, Embedding
from deinforeg_sklearn.engines import balance, default_engine
from deinforeg_sklearn.engines.launch import StageProcessError
from deinforeg_sklearn.engines.processes import data_backend

IMAGE_BLOCKS = [Conv((4,)), Conv((4, "M")), Dense(8), Dense(8)]


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    X = rng.rand(203, 2 * 6 * 6).astype(np.float32)  # 182 training rows: 5 batches of 32 + 22
    return X, rng.randint(0, 3, 203)


def fit(X, y, **kw):
    params = {
        "blocks": IMAGE_BLOCKS,
        "input_shape": (2, 6, 6),
        "max_iter": 2,
        "batch_size": 32,
        "random_state": 0,
    }
    params.update(kw)
    return DeInfoRegClassifier(**params).fit(X, y)


@pytest.mark.parametrize("engine", ["threads", "processes"])
@pytest.mark.parametrize("n_stages", [2, 4])
def test_pipeline_matches_sequential(engine, n_stages, images, one_thread):
    X, y = images
    sequential = fit(X, y)
    piped = fit(X, y, devices=["cpu"] * n_stages, engine=engine)
    assert sum(piped.stage_sizes_) == 4 and len(piped.stage_sizes_) == n_stages
    assert_same_training(sequential, piped, X)


def test_process_pipeline_carries_padding_masks(one_thread):
    rng = np.random.RandomState(0)
    X = rng.randint(2, 40, size=(90, 6))
    X[np.arange(6) >= rng.randint(1, 7, 90)[:, None]] = 0
    y = X[:, 0] % 2
    kw = {"blocks": [Embedding(6), LSTM(4), LSTM(4)], "max_iter": 2, "batch_size": 16, "random_state": 0}
    sequential = DeInfoRegClassifier(**kw).fit(X, y)
    piped = DeInfoRegClassifier(devices=["cpu", "cpu"], engine="processes", placement=[1, 2], **kw).fit(X, y)
    assert_same_training(sequential, piped, X)


def test_warm_start_and_early_stopping_through_threads(images, one_thread):
    X, y = images
    kw = {"warm_start": True, "early_stopping": True, "n_iter_no_change": 1, "max_iter": 3}
    a = fit(X, y, **kw)
    b = fit(X, y, devices=["cpu", "cpu"], engine="threads", **kw)
    a.fit(X, y)
    b.fit(X, y)
    assert_same_training(a, b, X)


def test_balance():
    assert balance([1, 1, 1, 1], 2) == [2, 2]
    assert balance([5, 1, 1, 1], 2) == [1, 3]
    assert balance([1, 1, 1, 9], 2) == [3, 1]
    assert balance([2, 2, 2], 3) == [1, 1, 1]
    with pytest.raises(ValueError):
        balance([1, 1], 3)


def test_balanced_placement_follows_measured_cost(images, one_thread):
    X, y = images
    heavy = [Conv((32, 32, 32)), Dense(4), Dense(4), Dense(4)]
    est = fit(X, y, blocks=heavy, devices=["cpu", "cpu"], engine="threads", max_iter=1)
    assert est.stage_sizes_ == [1, 3]


def test_explicit_placement(images):
    X, y = images
    est = fit(X, y, devices=["cpu", "cpu"], placement=[3, 1], engine="threads", max_iter=1)
    assert est.stage_sizes_ == [3, 1]


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"devices": ["cpu"] * 5}, "only 4 blocks"),
        ({"devices": ["cpu", "cpu"], "placement": [2, 1]}, "adding up to the 4 blocks"),
        ({"devices": ["cpu", "cpu"], "placement": [4]}, "each of the 2 devices"),
        ({"devices": ["cpu", "cuda:5"]}, "not present"),
    ],
)
def test_bad_pipeline_configuration(kw, match, images):
    X, y = images
    with pytest.raises(ValueError, match=match):
        fit(X, y, **kw)


def test_default_engine():
    cpu = [torch.device("cpu")] * 2
    assert default_engine(cpu, 0.003) == "processes"  # small steps: the GIL would serialise threads
    assert default_engine(cpu, 0.1) == "threads"  # large kernels: threads avoid activation copies
    assert default_engine([torch.device("cuda", 0), torch.device("cuda", 1)], 0.003) == "threads"


def test_auto_engine_follows_the_measured_step(images, monkeypatch):
    import deinforeg_sklearn.engines.setup as module

    chosen = []
    real = module.pipeline_engine
    monkeypatch.setattr(
        module, "pipeline_engine", lambda *a, **k: chosen.append(a[-1]) or real(*a[:-1], "threads", **k)
    )
    monkeypatch.setattr(module, "cpu_pipeline_pays", lambda *a: (True, "threads"))  # keep the stages
    X, y = images
    fit(X, y, blocks=[Dense(4)] * 4, input_shape=None, devices=["cpu", "cpu"], max_iter=1)
    assert chosen == ["processes"]  # tiny dense blocks step in well under 20 ms


@pytest.mark.parametrize("dropout", [False, True])
def test_auto_runs_dropout_stages_on_one_device_as_processes(dropout, images, monkeypatch):
    # Thread stages on one device share its random generator and would draw dropout masks in
    # no fixed order; "auto" then takes processes (a generator each) whatever the step time.
    import deinforeg_sklearn.engines.setup as module

    chosen = []
    real = module.pipeline_engine
    monkeypatch.setattr(module, "default_engine", lambda *a: "threads")  # as for large steps
    monkeypatch.setattr(module, "cpu_pipeline_pays", lambda *a: (True, "threads"))  # keep the stages
    monkeypatch.setattr(
        module, "pipeline_engine", lambda *a, **k: chosen.append(a[-1]) or real(*a[:-1], "threads", **k)
    )
    X, y = images
    blocks = [Custom(dropout_block) if dropout else Dense(8)] * 2
    fit(X, y, blocks=blocks, input_shape=None, devices=["cpu", "cpu"], max_iter=1)
    assert chosen == ["processes" if dropout else "threads"]


def test_explicit_threads_on_one_device_warn_when_blocks_draw_random_numbers(images):
    X, y = images
    kw = dict(input_shape=None, devices=["cpu", "cpu"], engine="threads", max_iter=1)
    with pytest.warns(UserWarning, match="not reproducible"):
        fit(X, y, blocks=[Custom(dropout_block)] * 2, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no warning when no block draws
        fit(X, y, blocks=[Dense(8)] * 2, **kw)


def test_dropout_pipeline_under_auto_is_reproducible(images, monkeypatch):
    import deinforeg_sklearn.engines.setup as module

    monkeypatch.setattr(module, "cpu_pipeline_pays", lambda *a: (True, "threads"))  # keep the stages
    X, y = images
    kw = dict(blocks=[Custom(dropout_block)] * 2, input_shape=None, devices=["cpu", "cpu"], max_iter=2)
    assert_same_training(fit(X, y, **kw), fit(X, y, **kw), X, atol=0)


def test_explicit_cpu_stages_that_do_not_pay_train_on_one_device(images, monkeypatch):
    # engine="auto" (the default) merges CPU stages whose hand-over costs more than it gains
    import deinforeg_sklearn.engines.setup as module

    monkeypatch.setattr(module, "cpu_pipeline_pays", lambda *a: (False, "threads"))
    X, y = images
    kw = dict(blocks=[Dense(8)] * 3, input_shape=None, max_iter=2)
    with pytest.warns(UserWarning, match=r"one device in this process.*engine='threads'"):
        merged = fit(X, y, devices=["cpu", "cpu"], **kw)
    assert merged.get_params()["devices"] == ["cpu", "cpu"]
    assert merged.devices_ == [torch.device("cpu")]
    assert_same_training(merged, fit(X, y, **kw), X, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a named engine runs the stages, silently
        forced = fit(X, y, devices=["cpu", "cpu"], engine="threads", **kw)
    assert forced.devices_ == [torch.device("cpu")] * 2


def test_tiny_explicit_cpu_stages_are_merged_by_the_real_probe(images):
    # steps of a few microseconds on 5 batches cannot repay the stages' start-up
    X, y = images
    with pytest.warns(UserWarning, match=r"predicts .* s on stages .* against .* s on one device"):
        est = fit(X, y, blocks=[Dense(4)] * 4, input_shape=None, devices=["cpu", "cpu"], max_iter=1)
    assert est.devices_ == [torch.device("cpu")]


def stage_threads():
    return [t for t in threading.enumerate() if t.name.startswith("deinforeg-stage")]


@pytest.mark.parametrize("engine", ["threads", "processes"])
@pytest.mark.parametrize("failing_stage", [0, 1])
def test_exception_in_a_stage(engine, failing_stage):
    rng = np.random.RandomState(0)
    X, y = rng.randn(120, 6).astype(np.float32), rng.randint(0, 2, 120)
    blocks = [Dense(6), Dense(6), Dense(6)]
    blocks[0 if failing_stage == 0 else 2] = raise_on_third
    threads_before = torch.get_num_threads()
    est = DeInfoRegClassifier(
        blocks=blocks, devices=["cpu", "cpu"], placement=[1, 2], engine=engine, batch_size=16
    )
    start = time.monotonic()
    expected = StageProcessError if engine == "processes" and failing_stage == 1 else RuntimeError
    with pytest.raises(expected, match="boom on training batch 3"):
        est.fit(X, y)
    assert time.monotonic() - start < 30
    assert not hasattr(est, "network_")
    assert not stage_threads() and not stage_processes()
    assert torch.get_num_threads() == threads_before


def test_killed_stage_process_is_reported():
    rng = np.random.RandomState(0)
    X, y = rng.randn(120, 6).astype(np.float32), rng.randint(0, 2, 120)
    est = DeInfoRegClassifier(blocks=[Dense(6)] * 3, batch_size=16, max_iter=1, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    # the third block SIGKILLs its own process (stage 1, spawned) on its third batch
    est.set_params(
        blocks=[Dense(6), Dense(6), killed_on_third],
        devices=["cpu", "cpu"],
        placement=[2, 1],
        engine="processes",
    )
    start = time.monotonic()
    with pytest.raises(StageProcessError, match="stage 1 .* died with exit code -9"):
        est.fit(X, y)
    assert time.monotonic() - start < 30
    assert not stage_processes()
    np.testing.assert_array_equal(est.predict_proba(X), before)  # the last good state


def test_two_process_torchrun_job(tmp_path, one_thread):
    sys.path.insert(0, os.path.dirname(__file__))
    from torchrun_job import PARAMS, data, launch

    launch(tmp_path)
    X, y = data()
    expected = DeInfoRegClassifier(**PARAMS).fit(X, y).predict_proba(X)
    for rank in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), expected, atol=1e-5)
    # the callbacks ran on rank 0 alone, once per hook and epoch
    assert (tmp_path / "hooks-rank0.txt").read_text().split("\n") == [
        "begin",
        "epoch 1",
        "epoch 2",
        "end",
        "",
    ]
    assert not (tmp_path / "hooks-rank1.txt").exists()
    # rank 0's checkpoint holds the whole trained network (every stage synced to it)
    from deinforeg_sklearn.persistence import network_from_bytes
    from deinforeg_sklearn.training.checkpoint import CHECKPOINT_FILE

    saved = torch.load(tmp_path / "checkpoint" / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    assert saved["finished"] and len(saved["progress"].history) == PARAMS["max_iter"]
    assert not list((tmp_path / "checkpoint").glob(".checkpoint-*"))  # no write left half done
    network = network_from_bytes(saved["network"])
    reference = DeInfoRegClassifier(**PARAMS).fit(X, y).network_
    for (name, a), b in zip(network.state_dict().items(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=name)


def test_failed_start_stops_spawned_ranks(images):
    import functools

    import torch.distributed as dist
    from stage_helpers import wait_for_peers

    from deinforeg_sklearn.engines import ProcessEngine
    from deinforeg_sklearn.engines.launch import dumps, spawned_group

    X, y = images
    network = fit(X, y, max_iter=1).network_
    launcher = functools.partial(spawned_group, 2, {1: dumps(None)}, wait_for_peers, 1)
    engine = ProcessEngine(network, [[0], [1], [2, 3]], [torch.device("cpu")] * 3, None, launcher=launcher)
    start = time.monotonic()
    with pytest.raises(ValueError, match="2 ranks but the pipeline has 3 stages"), engine:
        pass
    assert time.monotonic() - start < 30
    assert not stage_processes() and not dist.is_initialized()


def test_data_backend_choice():
    gpu = [("a", "cuda:0"), ("a", "cuda:1")]
    assert data_backend([None, None]) == "gloo"
    assert data_backend([("a", "cuda:0"), None]) == "gloo"  # NCCL needs CUDA on every stage
    assert data_backend([("a", "cuda:0"), ("a", "cuda:0")]) == "gloo"  # NCCL refuses a shared GPU
    assert data_backend([("a", "cuda:0"), ("b", "cuda:0")]) == (
        "nccl" if dist.is_nccl_available() else "gloo"
    )
    assert data_backend(gpu) == ("nccl" if dist.is_nccl_available() else "gloo")
    assert data_backend(gpu, "gloo") == "gloo"
    with pytest.raises(ValueError, match="every pipeline stage on a CUDA device"):
        data_backend([("a", "cuda:0"), None], "nccl")
    with pytest.raises(ValueError, match="use 'auto', 'gloo' or 'nccl'"):
        data_backend(gpu, "mpi")


def test_cpu_pipeline_pays_rule():
    from deinforeg_sklearn.engines.choice import (
        PIPELINE_BATCH_S,
        PIPELINE_MARGIN,
        PIPELINE_START_S,
        cpu_pipeline_pays,
    )

    conv = [0.05] * 4  # 50 ms per block step: threads overlap large kernels
    assert cpu_pipeline_pays(conv, conv, [2, 2], batches=100, epochs=10) == (True, "threads")
    assert cpu_pipeline_pays(conv, conv, [2, 2], batches=1, epochs=1) == (False, "threads")
    # few batches per epoch: filling and draining the stages every epoch eats the gain
    assert not cpu_pipeline_pays(conv, conv, [2, 2], batches=1, epochs=100)[0]
    # one device already uses both cores: its steps are shorter than a stage's one-thread steps
    assert not cpu_pipeline_pays([0.025] * 4, conv, [2, 2], batches=100, epochs=10)[0]
    small = [0.001] * 4  # 1 ms: the stages' hand-over costs as much as the work it saves
    pays, kind = cpu_pipeline_pays(small, small, [2, 2], batches=100, epochs=1000)
    assert kind == "processes" and not pays
    # break-even in epochs: the saving per epoch must repay the start-up
    big, batches = [0.004] * 4, 50
    one = sum(big) * batches
    piped = (2 * 0.004 + PIPELINE_BATCH_S["processes"]) * batches + 0.008
    epochs = PIPELINE_START_S["processes"] / (PIPELINE_MARGIN * one - piped)
    assert cpu_pipeline_pays(big, big, [2, 2], batches, int(epochs) + 1)[0]
    assert not cpu_pipeline_pays(big, big, [2, 2], batches, int(epochs) - 1)[0]


def test_auto_devices(monkeypatch):
    from deinforeg_sklearn.engines import choice

    monkeypatch.setattr(choice, "available_cores", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choice.auto_devices(3) == [torch.device("cpu")] * 3  # one stage per block at most
    assert choice.auto_devices(8) == [torch.device("cpu")] * 4  # one per core at most
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # the caller asked for 1 thread
    assert choice.auto_devices(8) == [torch.device("cpu")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert choice.auto_devices(8) == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert choice.auto_devices(1) == [torch.device("cuda", 0)]


@pytest.mark.parametrize("pays", [False, True])
def test_devices_auto_on_cpu(monkeypatch, pays):
    from deinforeg_sklearn.engines import choice, setup

    monkeypatch.setattr(choice, "available_cores", lambda: 2)
    monkeypatch.setattr(setup, "cpu_pipeline_pays", lambda *args: (pays, "threads"))
    rng = np.random.RandomState(0)
    X, y = rng.randn(120, 6).astype(np.float32), rng.randint(0, 2, 120)
    kw = {"blocks": [Dense(6)] * 3, "max_iter": 2, "batch_size": 16, "random_state": 0}
    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # a budget of 2 threads: 2 candidate stages
    try:
        auto = DeInfoRegClassifier(devices="auto", engine="threads", **kw).fit(X, y)
        # the same choice made by hand, with the same threads (and the split the probe chose)
        chosen = {"devices": ["cpu", "cpu"], "engine": "threads", "placement": auto.stage_sizes_}
        chosen = chosen if pays else {}
        by_hand = DeInfoRegClassifier(**chosen, **kw).fit(X, y)
    finally:
        torch.set_num_threads(saved)
    assert auto.get_params()["devices"] == "auto"
    assert auto.devices_ == [torch.device("cpu")] * (2 if pays else 1)
    assert sum(auto.stage_sizes_) == 3
    np.testing.assert_allclose(auto.predict_proba(X), by_hand.predict_proba(X), atol=1e-6)


def test_devices_auto_errors_and_single_device_estimators():
    from deinforeg_sklearn import BackpropClassifier

    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 6).astype(np.float32), rng.randint(0, 2, 40)
    with pytest.raises(ValueError, match="devices='auto' chooses the stages itself"):
        DeInfoRegClassifier(blocks=[Dense(6)] * 2, devices="auto", placement=[1, 1]).fit(X, y)
    bp = BackpropClassifier(blocks=[Dense(6)] * 2, devices="auto", max_iter=1).fit(X, y)
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert bp.devices_ == [expected] and bp.device_ == expected
