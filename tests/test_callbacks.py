"""Callbacks: hooks into every estimator's fit, on rank 0 only, that can stop it or fail it.

Invariant: ``on_fit_begin`` runs once before the first epoch, ``on_epoch_end`` once per epoch
with the record that becomes that ``history_`` entry, ``on_fit_end`` once after the fitted
attributes are set, all in the caller's process (also under the process engine); a True
return stops the fit after that epoch on every rank; a raise ends the fit with that error,
leaves the estimator as it was before the fit and no stage process behind. Callbacks clone,
pickle and run in a parallel search; ``CSVLogger`` holds no open file.
"""

import copy
import csv
import os
import pickle

import numpy as np
import pytest
import torch
from callback_helpers import Recorder
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from stage_helpers import stage_processes

from deinforeg_sklearn import (
    ALClassifier,
    BackpropClassifier,
    DeInfoRegClassifier,
    SCPLClassifier,
)
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.callbacks import Callback, CSVLogger, flat_record

ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier]
FAST = {"blocks": [Dense(8), Dense(8)], "max_iter": 4, "random_state": 0}
PROCESSES = {"devices": ["cpu", "cpu"], "engine": "processes", "placement": [1, 1]}


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_hooks_run_in_order_with_each_epochs_record(cls, small_data):
    X, y = small_data
    recorder = Recorder()
    est = cls(**FAST, callbacks=[recorder]).fit(X, y)
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["begin"] + ["epoch"] * 4 + ["end"]
    assert recorder.calls[0][2] is False  # not yet fitted when the fit begins
    assert [c[2] for c in recorder.calls[1:-1]] == est.history_  # the records history_ keeps
    assert recorder.calls[-1][2] == 4  # fitted when the fit ends
    # and without callbacks the same model: the hooks change nothing
    np.testing.assert_array_equal(cls(**FAST).fit(X, y).predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("pipeline", [{}, PROCESSES], ids=["one-device", "processes"])
def test_a_true_return_stops_the_fit_after_that_epoch(small_data, pipeline):
    X, y = small_data
    recorder = Recorder(stop_after=2)
    est = DeInfoRegClassifier(**{**FAST, "max_iter": 6}, **pipeline, callbacks=[recorder]).fit(X, y)
    assert est.n_iter_ == 2 and len(est.history_) == 2
    two = DeInfoRegClassifier(**{**FAST, "max_iter": 6}, **pipeline)
    # the first 2 epochs of the same 6-epoch schedule
    two.set_params(callbacks=[Recorder(stop_after=2)])
    np.testing.assert_allclose(two.fit(X, y).predict_proba(X), est.predict_proba(X), atol=1e-6)
    # every hook ran in this process, once per epoch: never in a stage process
    assert {c[1] for c in recorder.calls} == {os.getpid()}
    assert [c[0] for c in recorder.calls].count("epoch") == 2
    assert not stage_processes()


@pytest.mark.parametrize("pipeline", [{}, PROCESSES], ids=["one-device", "processes"])
def test_a_failing_callback_ends_the_fit_and_keeps_the_last_good_state(small_data, pipeline):
    X, y = small_data
    est = DeInfoRegClassifier(**FAST, warm_start=True, **pipeline).fit(X, y)
    before = est.predict_proba(X)
    est.set_params(callbacks=[Recorder(fail_at=6)], max_iter=4)  # epoch 6: the 2nd of this fit
    with pytest.raises(RuntimeError, match="callback failed at epoch 6"):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)
    assert est.n_iter_ == 4
    assert not stage_processes()
    fresh = DeInfoRegClassifier(**FAST, callbacks=[Recorder(fail_at=1)])
    with pytest.raises(RuntimeError, match="callback failed"):
        fresh.fit(X, y)
    assert not hasattr(fresh, "history_")


def test_bad_callbacks_are_refused_before_any_work(small_data):
    X, y = small_data
    with pytest.raises(TypeError, match="wrap a single callback in a list"):
        DeInfoRegClassifier(callbacks=Recorder()).fit(X, y)
    with pytest.raises(TypeError, match=r"callbacks\[1\] \(object\) has none of the hooks"):
        DeInfoRegClassifier(callbacks=[Recorder(), object()]).fit(X, y)


def test_callbacks_clone_pickle_and_run_in_a_parallel_search(small_data, tmp_path):
    X, y = small_data
    logger = CSVLogger(tmp_path / "log.csv")
    est = DeInfoRegClassifier(**FAST, callbacks=[logger, Recorder()])
    cloned = clone(est)
    assert cloned.get_params()["callbacks"][0] is not logger
    assert cloned.get_params()["callbacks"][0].path == logger.path
    est.fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    copy.deepcopy(est)  # a fitted logger holds no file to copy
    est.set_params(callbacks=[Recorder()])
    assert isinstance(est.get_params()["callbacks"][0], Recorder)
    grid = {"learning_rate": [1e-3, 3e-3]}
    base = DeInfoRegClassifier(**FAST, callbacks=[Recorder(stop_after=3)])
    serial = GridSearchCV(base, grid, cv=2, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(base, grid, cv=2, n_jobs=2).fit(X, y)
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_estimator_.n_iter_ == 3  # the callback stopped every fit, the refit too


def test_csv_logger_writes_one_row_per_epoch_and_appends_on_warm_starts(small_data, tmp_path):
    X, y = small_data
    path = tmp_path / "runs" / "log.csv"
    est = DeInfoRegClassifier(**FAST, warm_start=True, callbacks=[CSVLogger(path)]).fit(X, y)
    est.set_params(max_iter=2).fit(X, y)  # a warm start: epochs 5 and 6 appended
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3, 4, 5, 6]
    for row, record in zip(rows, est.history_, strict=True):
        assert float(row["block2/loss"]) == pytest.approx(record["blocks"][1]["loss"])
        assert float(row["validation_score/1"]) == pytest.approx(record["validation_scores"][0])
        assert float(row["learning_rate"]) == pytest.approx(record["learning_rate"])
        assert float(row["time"]) == pytest.approx(record["time"])
    DeInfoRegClassifier(**FAST, callbacks=[CSVLogger(path)]).fit(X, y)  # a new model: starts over
    with path.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_flat_record_names_and_the_learning_rate_in_history(small_data):
    X, y = small_data
    # 108 training rows / 36 = 3 steps per epoch, 12 in all: each record holds the rate of
    # its epoch's last step, on torch's cosine curve (CosineAnnealingLR, T_max=12, eta_min=0)
    kw = {**FAST, "batch_size": 36, "learning_rate": 0.01}
    est = DeInfoRegClassifier(**kw, final_learning_rate=0.0).fit(X, y)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=12, eta_min=0.0)
    expected = []
    for step in range(12):
        if step % 3 == 2:
            expected.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    np.testing.assert_allclose([r["learning_rate"] for r in est.history_], expected, rtol=1e-12)
    constant = DeInfoRegClassifier(**kw, final_learning_rate=None).fit(X, y)
    assert [r["learning_rate"] for r in constant.history_] == [0.01] * 4
    flat = flat_record(est.history_[0])
    assert {"epoch", "time", "learning_rate", "validation_score/2", "block1/loss"} <= set(flat)
    assert all(isinstance(v, float) for v in flat.values())


def test_a_fit_failed_by_a_callback_resumes_from_its_checkpoint(small_data, tmp_path):
    X, y = small_data
    kw = {**FAST, "checkpoint": tmp_path / "ckpt"}
    with pytest.raises(RuntimeError, match="callback failed at epoch 3"):
        DeInfoRegClassifier(**kw, callbacks=[Recorder(fail_at=3)]).fit(X, y)
    recorder = Recorder()  # a new object: callbacks may change on resume
    resumed = DeInfoRegClassifier(**kw, callbacks=[recorder]).fit(X, y)
    assert [c[2]["epoch"] for c in recorder.calls if c[0] == "epoch"] == [3, 4]  # after epoch 2
    np.testing.assert_array_equal(
        resumed.predict_proba(X), DeInfoRegClassifier(**FAST).fit(X, y).predict_proba(X)
    )


def test_the_base_class_hooks_do_nothing(small_data):
    X, y = small_data
    est = DeInfoRegClassifier(**FAST, callbacks=[Callback()]).fit(X, y)
    assert est.n_iter_ == 4


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_logger_writes_scalars_that_tensorboard_reads_back(small_data, tmp_path):
    pytest.importorskip(
        "tensorboard",
        reason='TensorBoardLogger needs the extra: pip install "deinforeg-sklearn[tensorboard]"',
    )
    import threading

    from deinforeg_sklearn.callbacks import TensorBoardLogger

    X, y = small_data
    threads = threading.active_count()
    logger = TensorBoardLogger(tmp_path / "tb")
    est = DeInfoRegClassifier(**FAST, warm_start=True, callbacks=[logger]).fit(X, y)
    scalars = _scalars(tmp_path / "tb")
    assert {"block1/loss", "block2/train_accuracy", "validation_score/2", "learning_rate", "time"} <= set(
        scalars
    )
    assert [step for step, _ in scalars["block2/loss"]] == [1, 2, 3, 4]
    expected = [r["blocks"][1]["loss"] for r in est.history_]
    np.testing.assert_allclose([v for _, v in scalars["block2/loss"]], expected, rtol=1e-6)
    # the writer is closed after the fit: the logger clones and pickles, no writer thread is left
    assert getattr(logger, "_writer", None) is None and threading.active_count() == threads
    clone(est)
    pickle.loads(pickle.dumps(est))
    # a fit that fails still closes the writer; the epochs before the failure were written
    est.set_params(callbacks=[logger, Recorder(fail_at=6)], max_iter=3)
    with pytest.raises(RuntimeError, match="callback failed at epoch 6"):
        est.fit(X, y)
    assert getattr(logger, "_writer", None) is None and threading.active_count() == threads
    assert [step for step, _ in _scalars(tmp_path / "tb")["block1/loss"]] == [1, 2, 3, 4, 5, 6]


def test_mlflow_logger_logs_params_once_and_metrics_per_epoch(small_data, tmp_path):
    extra = 'MLflowLogger needs the extra: pip install "deinforeg-sklearn[mlflow]"'
    pytest.importorskip("mlflow", reason=extra)
    store = "this test's local MLflow store is sqlite: it needs sqlalchemy and alembic"
    pytest.importorskip("sqlalchemy", reason=store)
    pytest.importorskip("alembic", reason=store)
    from mlflow.tracking import MlflowClient

    from deinforeg_sklearn.callbacks import MLflowLogger

    X, y = small_data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLflowLogger(tracking_uri=uri, experiment_name="tests")
    est = DeInfoRegClassifier(**FAST, callbacks=[logger]).fit(X, y)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["max_iter"] == "4" and run.data.params["alpha"] == "1.0"
    history = client.get_metric_history(logger.run_id, "block2/loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    np.testing.assert_allclose([m.value for m in history], [r["blocks"][1]["loss"] for r in est.history_])
    rates = [m.value for m in client.get_metric_history(logger.run_id, "learning_rate")]
    np.testing.assert_allclose(rates, [r["learning_rate"] for r in est.history_])
    assert getattr(logger, "_client", None) is None
    clone(est)
    pickle.loads(pickle.dumps(est))
    # a failed fit ends its run as FAILED, with the epochs it finished
    est.set_params(callbacks=[logger, Recorder(fail_at=2)])
    with pytest.raises(RuntimeError, match="callback failed at epoch 2"):
        est.fit(X, y)
    failed = client.get_run(logger.run_id)
    assert failed.info.status == "FAILED" and failed.info.run_id != run.info.run_id
    assert [m.step for m in client.get_metric_history(logger.run_id, "block1/loss")] == [1, 2]
