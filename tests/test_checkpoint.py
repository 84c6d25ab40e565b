"""Checkpoints: written after every epoch, resumed exactly (``checkpoint=<folder>``).

Invariant (stated in :mod:`deinforeg_sklearn.training.checkpoint`): a fit resumed from the
checkpoint of its last completed epoch ends where the uninterrupted fit ends, and a checkpoint
of another configuration is refused before any training step.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training import loop as loop_module
from deinforeg_sklearn.training.checkpoint import CHECKPOINT_FILE
from tests.equivalence import assert_same_training

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(blocks=[Dense(24), Dense(24)], max_iter=4, random_state=0)


@pytest.fixture(scope="module")
def part():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16.0).astype(np.float32), y[:400]


def _crash_in_epoch(monkeypatch, epoch: int):
    """Make the fit fail at the start of ``epoch`` (1-based), as a crash would."""
    real = loop_module.FitLoop._epoch

    def failing(self, network, engine, plan, history, reporter):
        if len(history) + 1 == epoch:
            raise RuntimeError("simulated crash")
        return real(self, network, engine, plan, history, reporter)

    monkeypatch.setattr(loop_module.FitLoop, "_epoch", failing)


def _saved(folder: Path) -> dict:
    return torch.load(folder / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("Est", [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier])
def test_resume_after_a_crash_equals_the_uninterrupted_fit(Est, part, tmp_path, monkeypatch):
    X, y = part
    params = dict(FAST, early_stopping=True, n_iter_no_change=10)
    reference = Est(**params).fit(X, y)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 3)
        crashed = Est(**params, checkpoint=tmp_path)
        with pytest.raises(RuntimeError, match="simulated crash"):
            crashed.fit(X, y)
    assert not hasattr(crashed, "network_")  # the failed fit left the estimator unfitted
    saved = _saved(tmp_path)
    assert not saved["finished"] and len(saved["progress"].history) == 2
    resumed = Est(**params, checkpoint=tmp_path).fit(X, y)
    assert_same_training(reference, resumed, X, atol=0)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    assert _saved(tmp_path)["finished"]


@pytest.mark.parametrize("engine", ["threads", "processes"])
def test_resume_on_a_pipeline(engine, part, tmp_path, monkeypatch, one_thread):
    X, y = part
    reference = DeInfoRegClassifier(**FAST).fit(X, y)
    piped = dict(FAST, devices=["cpu", "cpu"], engine=engine)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 2)
        with pytest.raises(RuntimeError):
            DeInfoRegClassifier(**piped, checkpoint=tmp_path).fit(X, y)
    # resumed on one device: engines train the same network, so the checkpoint moves freely
    resumed = DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)
    assert_same_training(reference, resumed, X)


@pytest.mark.slow  # 16 s: three process-stage fits
def test_dropout_on_every_stage_process_resumes_its_own_stream(part, tmp_path, monkeypatch, one_thread):
    # Each stage process draws dropout masks from its own stream, seeded from random_state and
    # its rank; the checkpoint keeps every rank's stream, so the resumed fit draws the masks
    # the uninterrupted one drew and ends where it ends.
    from deinforeg_sklearn.blocks import Custom
    from tests.stage_helpers import dropout_block

    X, y = part
    piped = dict(FAST, blocks=[Custom(dropout_block)] * 2, devices=["cpu", "cpu"], engine="processes")
    reference = DeInfoRegClassifier(**piped).fit(X, y)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 3)
        with pytest.raises(RuntimeError):
            DeInfoRegClassifier(**piped, checkpoint=tmp_path).fit(X, y)
    assert set(_saved(tmp_path)["progress"].rank_rngs) == {1}
    resumed = DeInfoRegClassifier(**piped, checkpoint=tmp_path).fit(X, y)
    assert_same_training(reference, resumed, X, atol=0)


def test_stage_processes_get_distinct_seeds_that_follow_the_fit_seed():
    from deinforeg_sklearn.engines.randomness import rank_seed

    seeds = {rank_seed(seed, rank) for seed in (0, 1, 2) for rank in (1, 2, 3)}
    assert len(seeds) == 9  # no two ranks, and no two fit seeds, share a stream
    assert rank_seed(5, 1) == rank_seed(5, 1)
    assert all(0 <= s < 2**63 for s in seeds)  # a valid torch.manual_seed


def test_a_finished_checkpoint_is_not_resumed(part, tmp_path):
    X, y = part
    first = DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)
    again = DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)  # trains from scratch
    assert_same_training(first, again, X, atol=0)
    assert len(again.history_) == FAST["max_iter"]


def test_resume_with_weights_and_early_stopping_that_already_stopped(part, tmp_path, monkeypatch):
    X, y = part
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(y))
    params = dict(FAST, max_iter=30, early_stopping=True, n_iter_no_change=1, tol=0.5)  # stops at 2
    reference = DeInfoRegClassifier(**params).fit(X, y, sample_weight=w)
    assert len(reference.history_) == 2
    real_finish = loop_module.FitLoop.run

    def killed_before_the_end(self, *args):
        real_finish(self, *args)
        raise RuntimeError("killed after the last checkpoint")

    with monkeypatch.context() as patch:
        patch.setattr(loop_module.FitLoop, "run", killed_before_the_end)
        with pytest.raises(RuntimeError):
            DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(X, y, sample_weight=w)
    resumed = DeInfoRegClassifier(**params, checkpoint=tmp_path).fit(X, y, sample_weight=w)
    assert len(resumed.history_) == 2  # nothing trained after the stop
    assert_same_training(reference, resumed, X, atol=0)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(max_iter=5), "max_iter"),
        (dict(blocks=[Dense(24), Dense(32)]), "blocks"),
        (dict(data=slice(0, 300)), "shape"),
        # another fold of the same shape: a cross-validation must not resume its sibling
        (dict(data=np.r_[100:400, 0:100]), "labels"),
    ],
)
def test_a_checkpoint_of_another_configuration_is_refused(change, match, part, tmp_path, monkeypatch):
    X, y = part
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 2)
        with pytest.raises(RuntimeError):
            DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)
    rows = change.pop("data", slice(None))
    monkeypatch.setattr("deinforeg_sklearn.estimators._base.start_engine", _no_training)
    with pytest.raises(ValueError, match=rf"(?s){match}.*delete the file"):
        DeInfoRegClassifier(**{**FAST, **change}, checkpoint=tmp_path).fit(X[rows], y[rows])


def _no_training(*args, **kwargs):
    raise AssertionError("training started before the checkpoint was checked")


def test_a_file_that_is_no_checkpoint_is_refused(part, tmp_path):
    X, y = part
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a checkpoint of this library"):
        DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)
    torch.save({"something": 1}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="not a checkpoint of this library"):
        DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)
    with pytest.raises(ValueError, match="is a file"):
        DeInfoRegClassifier(**FAST, checkpoint=tmp_path / CHECKPOINT_FILE).fit(X, y)


@pytest.mark.slow  # 33 s: two fits in subprocesses, one killed
def test_a_process_killed_mid_epoch_resumes_exactly(tmp_path):
    job = str(Path(__file__).with_name("checkpoint_job.py"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    subprocess.run([sys.executable, job, str(tmp_path / "reference.npy")], env=env, check=True, timeout=300)
    folder = tmp_path / "checkpoint"
    child = subprocess.Popen([sys.executable, job, str(tmp_path / "killed.npy"), str(folder)], env=env)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and child.poll() is None:
            if (folder / CHECKPOINT_FILE).is_file() and len(_saved(folder)["progress"].history) >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # into the next epoch
        assert child.poll() is None, "the fit ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    saved = _saved(folder)
    assert not saved["finished"] and 2 <= len(saved["progress"].history) < 6
    subprocess.run(
        [sys.executable, job, str(tmp_path / "resumed.npy"), str(folder)], env=env, check=True, timeout=300
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "reference.npy"), atol=1e-5
    )


def test_a_warm_start_resumes_from_its_own_checkpoint(part, tmp_path, monkeypatch):
    """The second fit of a warm start has its own checkpoint (it starts at epoch 4, not 0)."""
    X, y = part
    reference = DeInfoRegClassifier(**FAST, warm_start=True).fit(X, y).fit(X, y)
    est = DeInfoRegClassifier(**FAST, warm_start=True, checkpoint=tmp_path).fit(X, y)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 7)  # the third epoch of the second fit
        with pytest.raises(RuntimeError):
            est.fit(X, y)
    assert len(est.history_) == 4  # the failed fit left the first fit's state
    saved = _saved(tmp_path)
    assert not saved["finished"] and len(saved["progress"].history) == 6
    assert saved["fingerprint"]["start_epoch"] == 4
    est.fit(X, y)
    assert_same_training(reference, est, X, atol=0)
    assert [r["epoch"] for r in est.history_] == list(range(1, 9))


def test_ctrl_c_keeps_the_last_epoch_and_the_next_fit_continues(part, tmp_path, monkeypatch):
    X, y = part
    reference = DeInfoRegClassifier(**FAST).fit(X, y)
    real = loop_module.FitLoop._epoch

    def interrupted(self, network, engine, plan, history, reporter):
        if len(history) == 2:
            raise KeyboardInterrupt
        return real(self, network, engine, plan, history, reporter)

    est = DeInfoRegClassifier(**FAST, checkpoint=tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(loop_module.FitLoop, "_epoch", interrupted)
        with pytest.warns(UserWarning, match="interrupted; keeping the model after epoch 2"):
            est.fit(X, y)
    assert len(est.history_) == 2 and not _saved(tmp_path)["finished"]
    est.fit(X, y)  # continues after epoch 2
    assert_same_training(reference, est, X, atol=0)


def test_a_folder_in_use_by_another_fit_is_an_error_naming_it(part, tmp_path):
    """One fit at a time per folder; the lock of a killed fit is taken over."""
    from deinforeg_sklearn.training.checkpoint_lock import CheckpointInUseError

    X, y = part
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from deinforeg_sklearn.training.checkpoint_lock import FitLock; "
            "lock = FitLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        est = DeInfoRegClassifier(**FAST, checkpoint=tmp_path)
        held = rf"in use by another fit \(process {holder.pid} on .*'runs/{{fit}}'"
        with pytest.raises(CheckpointInUseError, match=held):
            est.fit(X, y)
        assert not hasattr(est, "network_") and not (tmp_path / CHECKPOINT_FILE).exists()
        holder.send_signal(signal.SIGKILL)  # dies holding the lock
        holder.wait(timeout=30)
        est.fit(X, y)  # the operating system dropped the dead process's lock
        assert _saved(tmp_path)["finished"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    from deinforeg_sklearn.training.checkpoint_lock import FitLock

    # in this process too: a second fit is refused, not waited for
    with FitLock(tmp_path), pytest.raises(CheckpointInUseError):
        DeInfoRegClassifier(**FAST, checkpoint=tmp_path).fit(X, y)


def test_fit_key_gives_each_configuration_and_fold_its_own_folder(part, tmp_path, monkeypatch):
    X, y = part
    template = str(tmp_path / "{fit}")
    params = dict(FAST, early_stopping=False)
    reference = DeInfoRegClassifier(**params).fit(X, y)
    with monkeypatch.context() as patch:
        _crash_in_epoch(patch, 3)
        with pytest.raises(RuntimeError, match="simulated crash"):
            DeInfoRegClassifier(**params, checkpoint=template).fit(X, y)
    # another configuration and other rows write their own folders instead of being refused
    DeInfoRegClassifier(**dict(params, alpha=0.5), checkpoint=template).fit(X, y)
    DeInfoRegClassifier(**params, checkpoint=template).fit(X[:300], y[:300])
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 3 and all(len(p.name) == 16 for p in folders)
    unfinished = [p for p in folders if not _saved(p)["finished"]]
    assert len(unfinished) == 1 and len(_saved(unfinished[0])["progress"].history) == 2
    resumed = DeInfoRegClassifier(**params, checkpoint=template).fit(X, y)  # finds its own folder
    assert_same_training(reference, resumed, X, atol=0)
    assert _saved(unfinished[0])["finished"]


@pytest.mark.slow
def test_a_killed_parallel_search_resumes_every_fit_to_the_same_cv_results(tmp_path):
    import json

    job = str(Path(__file__).with_name("search_job.py"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    subprocess.run([sys.executable, job, str(tmp_path / "reference.json")], env=env, check=True, timeout=600)
    template = tmp_path / "runs" / "{fit}"
    runs = tmp_path / "runs"
    child = subprocess.Popen(
        [sys.executable, job, str(tmp_path / "killed.json"), str(template)], env=env, start_new_session=True
    )

    def started() -> int:
        files = list(runs.glob(f"*/{CHECKPOINT_FILE}")) if runs.is_dir() else []
        saved = [torch.load(f, weights_only=False) for f in files]
        return sum(1 for c in saved if not c["finished"] and len(c["progress"].history) >= 2)

    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None and started() < 1:
            time.sleep(0.1)
        assert child.poll() is None, "the search ended before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)  # the search and its workers
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    saved = [torch.load(f, weights_only=False) for f in runs.glob(f"*/{CHECKPOINT_FILE}")]
    assert sum(not s["finished"] for s in saved) >= 1  # fits that the rerun resumes
    subprocess.run(
        [sys.executable, job, str(tmp_path / "resumed.json"), str(template)], env=env, check=True, timeout=600
    )
    reference = json.loads((tmp_path / "reference.json").read_text())
    assert json.loads((tmp_path / "resumed.json").read_text()) == reference
    assert len(list(runs.glob(f"*/{CHECKPOINT_FILE}"))) == 5  # 2 candidates x 2 folds, and the refit
