"""CUDA placement, streams and hand-over. Skipped without a GPU; run them where one is present.

The process-engine tests put several ranks on one GPU: they check the gloo path (activations
staged through host memory). The NCCL path needs a GPU per stage (NCCL refuses two ranks on one
GPU) and runs only with at least 2 GPUs.
"""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from equivalence import assert_same_training

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Embedding

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DENSE = [Dense(32), Dense(32), Dense(32), Dense(32)]
IMAGE = [Conv((8,)), Conv((8, "M")), Dense(16), Dense(16)]


@pytest.fixture(autouse=True)
def deterministic_kernels():
    # Same inputs, same kernels: otherwise cuDNN may pick a different (non-deterministic)
    # algorithm per run, and the engines could not be compared to 1e-5.
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def fit(X, y, blocks=DENSE, **kw):
    params = {"blocks": blocks, "max_iter": 2, "batch_size": 32, "random_state": 0, "devices": "cuda:0"}
    params.update(kw)
    return DeInfoRegClassifier(**params).fit(X, y)


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    X = rng.rand(203, 2 * 6 * 6).astype(np.float32)  # 182 training rows: 5 batches of 32 + 22
    return X, rng.randint(0, 3, 203)


def test_fit_on_one_gpu_learns_and_keeps_the_model_there(digits):
    X, y = digits
    kw = {"blocks": DENSE, "max_iter": 15, "random_state": 0}
    gpu = DeInfoRegClassifier(devices="cuda:0", **kw).fit(X[:1400], y[:1400])
    assert {p.device.type for p in gpu.network_.parameters()} == {"cuda"}
    cpu = DeInfoRegClassifier(**kw).fit(X[:1400], y[:1400])
    # Different kernels, same model: CPU accuracy here is 0.894. The devices agree on nearly
    # every prediction and on the accuracy.
    assert gpu.score(X[1400:], y[1400:]) == pytest.approx(cpu.score(X[1400:], y[1400:]), abs=0.02)
    assert np.mean(gpu.predict(X[1400:]) == cpu.predict(X[1400:])) >= 0.95


def test_uint8_rows_travel_as_uint8_and_train_as_the_scaled_floats(digits):
    """X is read in place and each batch is converted to float32 on the GPU (data.inputs.Rows)."""
    X, y = digits
    X_u8 = np.round(X * 16).astype(np.uint8)
    X_float = X_u8.astype(np.float32) / 16
    from_u8 = fit(X_u8, y, input_scale=1 / 16)
    from_float = fit(X_float, y)
    np.testing.assert_allclose(from_u8.predict_proba(X_u8), from_float.predict_proba(X_float), atol=1e-5)


def test_checkpoint_resumes_a_gpu_fit_with_its_cuda_random_state(images, tmp_path, monkeypatch):
    """Augmentation draws on the GPU's generator: the checkpoint keeps its state too."""
    from deinforeg_sklearn.training import loop as loop_module

    X, y = images
    kw = {"blocks": IMAGE, "input_shape": (2, 6, 6), "augment": "basic", "max_iter": 3}
    reference = fit(X, y, **kw)
    real = loop_module.FitLoop._epoch

    def crash_in_third_epoch(self, network, engine, plan, history, reporter):
        if len(history) == 2:
            raise RuntimeError("simulated crash")
        return real(self, network, engine, plan, history, reporter)

    with monkeypatch.context() as patch:
        patch.setattr(loop_module.FitLoop, "_epoch", crash_in_third_epoch)
        with pytest.raises(RuntimeError, match="simulated crash"):
            fit(X, y, checkpoint=tmp_path, **kw)
    resumed = fit(X, y, checkpoint=tmp_path, **kw)
    assert len(resumed.history_) == 3
    assert_same_training(reference, resumed, X)


@pytest.mark.parametrize("n_stages", [2, 4])
def test_thread_stages_sharing_one_gpu_match_sequential(n_stages, images):
    X, y = images
    sequential = fit(X, y)
    piped = fit(X, y, devices=["cuda:0"] * n_stages, engine="threads")
    assert piped.stage_sizes_ == [4 // n_stages] * n_stages
    assert_same_training(sequential, piped, X)


def test_conv_thread_stages_on_one_gpu_match_sequential(images):
    X, y = images
    kw = {"blocks": IMAGE, "input_shape": (2, 6, 6)}
    assert_same_training(fit(X, y, **kw), fit(X, y, devices=["cuda:0", "cuda:0"], engine="threads", **kw), X)


def test_process_stages_sharing_one_gpu_match_sequential(images):
    X, y = images
    sequential = fit(X, y)
    piped = fit(X, y, devices=["cuda:0", "cuda:0"], engine="processes")
    assert_same_training(sequential, piped, X)


@pytest.mark.parametrize("devices", [["cuda:0", "cpu"], ["cpu", "cuda:0"]])
def test_mixed_cpu_and_gpu_stages_agree_across_engines(devices, images):
    # Device to host and host to device hand-overs; both engines place each block alike, so they
    # run the same kernels and must train the same network.
    X, y = images
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        threads = fit(X, y, devices=devices, engine="threads")
        processes = fit(X, y, devices=devices, engine="processes")
    finally:
        torch.set_num_threads(saved)
    assert_same_training(threads, processes, X)
    first, last = threads.network_.trainers[0].unit, threads.network_.trainers[-1].unit
    assert next(first.parameters()).device.type == torch.device(devices[0]).type
    assert next(last.parameters()).device.type == torch.device(devices[1]).type


def test_token_masks_through_gpu_stages():
    rng = np.random.RandomState(0)
    X = rng.randint(2, 40, size=(90, 6))
    X[np.arange(6) >= rng.randint(1, 7, 90)[:, None]] = 0
    y = X[:, 0] % 2
    kw = {"blocks": [Embedding(6), LSTM(4), LSTM(4)], "max_iter": 2, "batch_size": 16, "random_state": 0}
    sequential = DeInfoRegClassifier(devices="cuda:0", **kw).fit(X, y)
    for engine in ("threads", "processes"):
        piped = DeInfoRegClassifier(devices=["cuda:0", "cuda:0"], engine=engine, placement=[1, 2], **kw)
        assert_same_training(sequential, piped.fit(X, y), X)


def test_backprop_on_gpu(digits):
    X, y = digits
    kw = {"blocks": DENSE, "max_iter": 10, "random_state": 0}
    gpu = BackpropClassifier(devices=0, **kw).fit(X[:1400], y[:1400])
    cpu = BackpropClassifier(**kw).fit(X[:1400], y[:1400])  # 0.864 on the CPU
    assert gpu.score(X[1400:], y[1400:]) == pytest.approx(cpu.score(X[1400:], y[1400:]), abs=0.02)


def test_gpu_model_pickles(images):
    X, y = images
    est = fit(X, y, devices=["cuda:0", "cuda:0"], engine="threads")
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict_proba(X), est.predict_proba(X), atol=1e-6)


def test_memory_benchmark_reports_the_cuda_peak():
    # benchmarks/memory.py (Table 8) on a GPU: one measurement, in its own process as the script
    # runs it. The peak must at least hold the trained parameters (float32) on the device.
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(root / "benchmarks" / "memory.py"), "--quick", "--device", "cuda:0"]
    done = subprocess.run(
        [*command, "--child", "DeInfoReg", "--seeds", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT ") :])
    assert result["gpu_peak_mib"] >= result["parameters"] * 4 / 2**20 > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs one GPU per stage")
def test_nccl_process_stages_match_threads(images):
    X, y = images
    threads = fit(X, y, devices=[0, 1], engine="threads")
    processes = fit(X, y, devices=[0, 1], engine="processes")  # GPU to GPU over NCCL
    assert_same_training(threads, processes, X)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("backend", ["gloo", "nccl"])
def test_process_rank_pins_its_gpu_and_gives_the_caller_its_own_back(images, monkeypatch, backend):
    # Rank 0 is this process. Its stage is on cuda:1: while it steps its blocks, cuda:1 must be
    # the current device (on the gloo path too), and after the fit the caller's cuda:0 again.
    from deinforeg_sklearn.engines import processes

    seen, step_units = [], processes.step_units

    def recording_step_units(*args, **kwargs):
        seen.append(torch.cuda.current_device())
        return step_units(*args, **kwargs)

    monkeypatch.setattr(processes, "step_units", recording_step_units)
    monkeypatch.setenv("DEINFOREG_DATA_BACKEND", backend)
    torch.cuda.set_device(0)
    X, y = images
    fit(X, y, devices=[1, 0], engine="processes")
    assert seen and set(seen) == {1}
    assert torch.cuda.current_device() == 0


def test_dropout_draws_are_found_on_a_gpu_and_two_stages_there_run_as_processes(monkeypatch):
    # Two thread stages on one GPU would share its generator: "auto" takes processes instead.
    from stage_helpers import dropout_block

    import deinforeg_sklearn.engines.setup as setup
    from deinforeg_sklearn.blocks import Custom
    from deinforeg_sklearn.engines.randomness import draws_random_numbers

    rng = np.random.RandomState(0)
    X, y = rng.rand(96, 6).astype(np.float32), rng.randint(0, 2, 96)
    clf = fit(X, y, blocks=[Custom(dropout_block), Dense(8)], max_iter=1)
    x, yb = torch.tensor(X[:16], device="cuda:0"), torch.tensor(y[:16], device="cuda:0")
    state = torch.cuda.get_rng_state(0)
    assert draws_random_numbers(clf.network_.trainers, x, yb, None)
    assert torch.equal(state, torch.cuda.get_rng_state(0))  # the fit's stream is untouched
    chosen = []
    real = setup.pipeline_engine
    monkeypatch.setattr(
        setup, "pipeline_engine", lambda *a, **k: chosen.append(a[-1]) or real(*a[:-1], "threads", **k)
    )
    fit(X, y, blocks=[Custom(dropout_block)] * 2, devices=["cuda:0", "cuda:0"], max_iter=1)
    assert chosen == ["processes"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_dropout_stages_on_two_gpus_train_alike_under_threads_and_processes(images):
    # Each GPU gets the stream a stage process of its rank would own (randomness.cuda_stage_seeds):
    # with dropout in both stages, the engines agree; with one seed for both GPUs they would not.
    from stage_helpers import dropout_block

    from deinforeg_sklearn.blocks import Custom

    X, y = images
    blocks = [Custom(dropout_block), Custom(dropout_block)]
    threads = fit(X, y, blocks=blocks, devices=[0, 1], engine="threads")
    processes = fit(X, y, blocks=blocks, devices=[0, 1], engine="processes")
    assert_same_training(threads, processes, X)


def test_wavefront_on_a_gpu_matches_sequential(images):
    # GPU kernels sum in their own order (no bit-for-bit claim there); without BatchNorm no
    # parameter has a gradient of pure rounding noise, so the fits agree to rounding
    X, y = images
    blocks = [Dense(32, batch_norm=False)] * 4
    a = fit(X, y, blocks=blocks, schedule="sequential")
    b = fit(X, y, blocks=blocks, schedule="wavefront")
    assert_same_training(a, b, X, atol=1e-4)


def test_auto_schedule_stays_sequential_on_a_gpu(images, monkeypatch):
    from deinforeg_sklearn.engines.sequential import SequentialEngine
    from deinforeg_sklearn.training.loop import FitLoop

    seen = []
    original = FitLoop.run

    def recording(self, network, engine, plan, history):
        seen.append(type(engine))
        return original(self, network, engine, plan, history)

    monkeypatch.setattr(FitLoop, "run", recording)
    fit(*images)
    assert seen == [SequentialEngine]


def test_two_replicas_on_one_gpu_train_the_one_gpu_model(digits):
    # Two ranks on one GPU: NCCL refuses that, so the replicas gather and sum through host
    # memory over gloo (docs/distributed.md); SGD, as in tests/test_replicas.py.
    X, y = digits
    kw = {
        "blocks": [Dense(32), Dense(32)],
        "max_iter": 3,
        "batch_size": 64,
        "optimizer": "sgd",
        "random_state": 0,
    }
    one = DeInfoRegClassifier(devices="cuda:0", **kw).fit(X[:512], y[:512])
    two = DeInfoRegClassifier(devices=[["cuda:0", "cuda:0"]], **kw).fit(X[:512], y[:512])
    assert {p.device.type for p in two.network_.parameters()} == {"cuda"}
    for (name, a), b in zip(
        one.network_.state_dict().items(), two.network_.state_dict().values(), strict=True
    ):
        if a.is_floating_point():
            assert float((a - b).norm() / a.norm().clamp_min(1e-12)) < 1e-4, name
