"""Progress, history and plots, adaptive inference, saving and loading, inputs, parallel search."""

import io
import pickle
import zipfile

import joblib
import matplotlib
import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.model_selection import GridSearchCV

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.engines import available_cores

matplotlib.use("Agg")

FAST = {"max_iter": 2, "random_state": 0}


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    est = DeInfoRegClassifier(blocks=[Dense(32)] * 3, inference="last", max_iter=8, random_state=0)
    return est.fit(X[:900], y[:900])


# ---------------------------------------------------------------- progress
class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_verbose_zero_is_silent(small_data, capsys):
    DeInfoRegClassifier(blocks=[Dense(4)], **FAST).fit(*small_data)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_plain_lines_when_not_a_terminal(small_data, capsys):
    DeInfoRegClassifier(blocks=[Dense(4), Dense(4)], verbose=1, **FAST).fit(*small_data)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1")
    assert "b0 loss" in lines[0] and "b1 loss" in lines[0] and "acc" in lines[0] and "val" in lines[0]


def test_verbose_progress_bar_on_a_terminal():
    from deinforeg_sklearn.progress import EpochReporter

    stream = FakeTerminal()
    reporter = EpochReporter(1, n_batches=3, stream=stream)
    reporter.start(1)
    for _ in range(3):
        reporter.batch_done()
    row = {"loss": 0.5, "train_accuracy": 0.9, "validation_accuracy": None}
    reporter.end({"epoch": 1, "time": 0.1, "blocks": [row]})
    text = stream.getvalue()
    assert "epoch 1" in text and "3/3" in text and "b0 loss 0.5000 acc 0.900" in text


# ---------------------------------------------------------------- history and plots
@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_record_gradients(cls, small_data):
    est = cls(blocks=[Dense(8)] * 3, record_gradients=True, **FAST).fit(*small_data)
    for record in est.history_:
        grads = record["encoder_gradients"]
        assert len(grads) == 3 and all(np.isfinite(g) and g > 0 for g in grads)
    assert "encoder_gradients" not in cls(blocks=[Dense(8)], **FAST).fit(*small_data).history_[0]


def test_record_gradients_through_processes(small_data):
    kw = {"blocks": [Dense(8)] * 3, "record_gradients": True, "batch_size": 36, **FAST}
    one = DeInfoRegClassifier(**kw).fit(*small_data)
    two = DeInfoRegClassifier(devices=["cpu", "cpu"], engine="processes", **kw).fit(*small_data)
    for a, b in zip(one.history_, two.history_, strict=True):
        np.testing.assert_allclose(a["encoder_gradients"], b["encoder_gradients"], rtol=1e-4)


def test_plots(fitted, small_data):
    from deinforeg_sklearn import plotting

    assert len(plotting.plot_accuracy(fitted).lines) == 6  # train + validation per block
    assert len(plotting.plot_losses(fitted.history_).lines) == 12  # 4 terms x 3 blocks
    with pytest.raises(ValueError, match="record_gradients=True"):
        plotting.plot_gradients(fitted)
    est = DeInfoRegClassifier(blocks=[Dense(8)] * 2, record_gradients=True, **FAST).fit(*small_data)
    assert len(plotting.plot_gradients(est).lines) == 2
    with pytest.raises(ValueError, match="fitted estimator"):
        plotting.plot_accuracy(DeInfoRegClassifier())


# ---------------------------------------------------------------- adaptive inference
def reference_exit(stages, patience, threshold):
    """The per-sample rule written out on staged_predict_proba."""
    stages = np.stack(stages)  # (blocks, n, classes)
    n_blocks, n = stages.shape[:2]
    probs, depth = stages[-1].copy(), np.full(n, n_blocks)
    for i in range(n):
        count = 0
        for level in range(1, n_blocks):
            a, b = stages[level - 1, i], stages[level, i]
            cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
            count = count + 1 if a.argmax() == b.argmax() and cos > threshold else 0
            if count >= patience:
                probs[i], depth[i] = b, level + 1
                break
    return probs, depth


def test_adaptive_never_exiting_equals_last(fitted, digits):
    X = digits[0][900:1100]
    last = fitted.predict_proba(X)
    fitted.set_params(inference="adaptive", exit_threshold=1.01)
    try:
        np.testing.assert_allclose(fitted.predict_proba(X), last, atol=1e-6)
        assert (fitted.predict_exit_depth(X) == 3).all()
    finally:
        fitted.set_params(inference="last", exit_threshold=0.8)


@pytest.mark.parametrize("patience,threshold", [(1, 0.8), (1, 0.99), (2, 0.5)])
def test_adaptive_is_decided_per_sample(fitted, digits, patience, threshold):
    X = digits[0][900:1300]
    expected, depth = reference_exit(list(fitted.staged_predict_proba(X)), patience, threshold)
    fitted.set_params(inference="adaptive", patience=patience, exit_threshold=threshold)
    try:
        np.testing.assert_allclose(fitted.predict_proba(X), expected, atol=1e-6)
        np.testing.assert_array_equal(fitted.predict_exit_depth(X), depth)
    finally:
        fitted.set_params(inference="last", patience=1, exit_threshold=0.8)
    if patience == 1 and threshold == 0.8:
        assert 1 < depth.mean() < 3 and len(set(depth)) > 1  # samples leave at different blocks


def test_exit_depth_without_adaptive(fitted, digits):
    assert (fitted.predict_exit_depth(digits[0][:5]) == 3).all()


# ---------------------------------------------------------------- saving and loading
def test_save_and_load(fitted, digits, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    loaded = DeInfoRegClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(digits[0][:50]), fitted.predict_proba(digits[0][:50]))
    assert loaded.get_params()["blocks"] == fitted.blocks
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    with pytest.raises(TypeError, match="not a BackpropClassifier"):
        BackpropClassifier.load(path)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not written by"):
        DeInfoRegClassifier.load(tmp_path / "other.pt")


def as_if_saved_on_cuda(network_bytes: bytes) -> bytes:
    """Rewrite every storage's location tag from 'cpu' to 'cuda:0' in torch's zip format."""
    source, target = io.BytesIO(network_bytes), io.BytesIO()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                # pickle BINUNICODE strings: length (4 bytes, little endian) + text
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(item, data)
    return target.getvalue()


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a machine without CUDA")
def test_model_saved_on_cuda_loads_on_cpu(fitted, digits):
    state = fitted.__getstate__()
    state["network_"] = as_if_saved_on_cuda(state["network_"])
    with pytest.raises(RuntimeError, match="CUDA"):  # what plain torch.load does with it here
        torch.load(io.BytesIO(state["network_"]), weights_only=False)
    restored = DeInfoRegClassifier.__new__(DeInfoRegClassifier)
    with pytest.warns(UserWarning, match="saved on cuda:0, which is not present here"):
        restored.__setstate__(state)
    assert restored.device_ == torch.device("cpu")
    np.testing.assert_array_equal(
        restored.predict_proba(digits[0][:50]), fitted.predict_proba(digits[0][:50])
    )
    assert pickle.loads(pickle.dumps(restored)).predict(digits[0][:5]).shape == (5,)


# ---------------------------------------------------------------- inputs
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int8, bool])
def test_input_dtypes_are_cast(dtype, small_data):
    X, y = small_data
    X = (X > 0) if dtype is bool else (X * 3).astype(dtype)
    est = DeInfoRegClassifier(blocks=[Dense(4)], **FAST).fit(X, y)
    assert est.predict_proba(X).dtype == np.float64 and np.isfinite(est.predict_proba(X)).all()


def test_dataframe_keeps_feature_names(small_data):
    pd = pytest.importorskip("pandas")
    X, y = small_data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = DeInfoRegClassifier(blocks=[Dense(4)], **FAST).fit(frame, y)
    assert list(est.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X)


@pytest.mark.parametrize("labels", [np.array([-1, 1]), np.array(["no", "yes"]), np.array([False, True])])
def test_any_hashable_labels(labels, small_data):
    X, y = small_data
    target = labels[(y > 0).astype(int)]
    est = BackpropClassifier(blocks=[Dense(4)], **FAST).fit(X, target)
    assert set(est.predict(X)) <= set(labels)


def test_sparse_input_trains_a_dense_first_block(small_data):
    # More cases (every estimator, format and engine; blocks that refuse it) in test_sparse.py.
    X, y = small_data
    est = DeInfoRegClassifier(blocks=[Dense(4)], **FAST).fit(sparse.csr_matrix(X), y)
    np.testing.assert_array_equal(est.predict(sparse.csr_matrix(X)), est.predict(X))


# ---------------------------------------------------------------- parallel search
def _worker_threads(_):
    import torch

    return torch.get_num_threads()


def test_parallel_workers_do_not_oversubscribe():
    threads = joblib.Parallel(n_jobs=2)(joblib.delayed(_worker_threads)(i) for i in range(2))
    assert all(2 * t <= max(2, available_cores()) for t in threads)


def test_gridsearch_with_two_jobs(digits):
    X, y = digits
    grid = GridSearchCV(
        DeInfoRegClassifier(blocks=[Dense(16)], max_iter=3, random_state=0),
        {"alpha": [1e-3, 1e-1]},
        cv=2,
        n_jobs=2,
    ).fit(X[:300], y[:300])
    saved = torch.get_num_threads()
    worker_threads = joblib.Parallel(n_jobs=2)(joblib.delayed(_worker_threads)(i) for i in range(1))[0]
    torch.set_num_threads(worker_threads)  # the workers' thread count: the same kernels
    try:
        serial = GridSearchCV(
            DeInfoRegClassifier(blocks=[Dense(16)], max_iter=3, random_state=0), {"alpha": [1e-3, 1e-1]}, cv=2
        ).fit(X[:300], y[:300])
    finally:
        torch.set_num_threads(saved)
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])
