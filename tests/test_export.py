"""Export to TorchScript and ONNX (``to_torchscript``, ``to_onnx``).

Invariant (``deinforeg_sklearn/export/module.py``): the exported file, run without this
package, gives ``predict_proba``'s probabilities within 1e-5 for raw rows, any number of them.
"""

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Embedding, Residual, Transformer
from deinforeg_sklearn.export.torchscript import CLASSES_FILE

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning", "ignore::FutureWarning"
)

RNG = np.random.RandomState(0)
IMAGES = (RNG.rand(80, 3 * 8 * 8) * 255).astype(np.float32)  # raw 0-255 rows
SEQUENCES = RNG.randn(80, 6 * 4).astype(np.float32)
TOKENS = RNG.randint(1, 20, (80, 10))
TOKENS[np.arange(10)[None, :] >= 10 - RNG.randint(0, 8, (80, 1))] = 0  # padding of every length 0-7
Y = RNG.randint(0, 3, 80)

FIT = dict(max_iter=2, random_state=0, validation_fraction=None)
CASES = {
    "dense": lambda: DeInfoRegClassifier(blocks=[Dense(16), Dense(16)], input_scale=1 / 255, **FIT),
    "conv": lambda: DeInfoRegClassifier(
        blocks=[Conv((8,)), Conv((8,))], input_shape=(3, 8, 8), input_scale=1 / 255, **FIT
    ),
    "residual": lambda: DeInfoRegClassifier(
        blocks=[Residual(8), Residual(8)], input_shape=(3, 8, 8), input_scale=1 / 255, **FIT
    ),
    "transformer": lambda: DeInfoRegClassifier(
        blocks=[Transformer(8, heads=2, layers=1)] * 2, input_shape=(6, 4), **FIT
    ),
    "lstm": lambda: DeInfoRegClassifier(blocks=[LSTM(8), LSTM(8)], input_shape=(6, 4), **FIT),
    "tokens": lambda: DeInfoRegClassifier(blocks=[Embedding(8), Transformer(8, heads=2, layers=1)], **FIT),
    "bp": lambda: BackpropClassifier(blocks=[Dense(16), Dense(16)], input_scale=1 / 255, **FIT),
    "scpl": lambda: SCPLClassifier(blocks=[Dense(16), Dense(16)], input_scale=1 / 255, **FIT),
    "al": lambda: ALClassifier(blocks=[Dense(16), Dense(16)], input_scale=1 / 255, **FIT),
}


def _data(name: str) -> np.ndarray:
    return {"transformer": SEQUENCES, "lstm": SEQUENCES, "tokens": TOKENS}.get(name, IMAGES)


@pytest.fixture(scope="module")
def fitted():
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = CASES[name]().fit(_data(name), Y)
        return cache[name]

    return get


def _run_without_the_package(code: str) -> dict:
    """Run ``code`` in a fresh interpreter where ``import deinforeg_sklearn`` fails; its JSON."""
    script = "import sys\nsys.modules['deinforeg_sklearn'] = None  # not importable\n" + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_file_gives_predict_proba_in_onnxruntime(name, fitted, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    est, X = fitted(name), _data(name)
    path = tmp_path / "model.onnx"
    est.to_onnx(path)
    np.save(tmp_path / "X.npy", X)
    result = _run_without_the_package(
        f"""
        import json, numpy as np, onnxruntime as ort
        session = ort.InferenceSession({str(path)!r})
        X = np.load({str(tmp_path / "X.npy")!r})
        X = X.astype(np.int64 if X.dtype.kind == "i" else np.float32)
        parts = [session.run(None, {{"input": X[a:b]}})[0] for a, b in ((0, 1), (1, 38), (38, len(X)))]
        meta = session.get_modelmeta().custom_metadata_map
        names = [i.name for i in session.get_inputs()] + [o.name for o in session.get_outputs()]
        proba = np.concatenate(parts).tolist()
        print(json.dumps({{"proba": proba, "classes": json.loads(meta["classes"]), "names": names}}))
        """
    )
    np.testing.assert_allclose(result["proba"], est.predict_proba(X), atol=1e-5, rtol=0)
    assert result["classes"] == est.classes_.tolist()
    assert result["names"] == ["input", "probabilities"]


@pytest.mark.parametrize("name", list(CASES))
def test_torchscript_file_gives_predict_proba_without_the_package(name, fitted, tmp_path):
    est, X = fitted(name), _data(name)
    path = tmp_path / "model.pt"
    traced = est.to_torchscript(path)
    assert isinstance(traced, torch.jit.ScriptModule)
    np.save(tmp_path / "X.npy", X)
    result = _run_without_the_package(
        f"""
        import json, warnings, numpy as np, torch
        warnings.simplefilter("ignore")
        extra = {{{CLASSES_FILE!r}: ""}}
        module = torch.jit.load({str(path)!r}, _extra_files=extra)
        X = torch.from_numpy(np.load({str(tmp_path / "X.npy")!r}))
        with torch.no_grad():
            proba = torch.cat([module(X[a:b]) for a, b in ((0, 1), (1, 38), (38, len(X)))])
        print(json.dumps({{"proba": proba.tolist(), "classes": json.loads(extra[{CLASSES_FILE!r}])}}))
        """
    )
    np.testing.assert_allclose(result["proba"], est.predict_proba(X), atol=1e-5, rtol=0)
    assert result["classes"] == est.classes_.tolist()


def test_an_lstm_over_token_ids_is_a_clear_onnx_error_and_exports_to_torchscript(tmp_path):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    est = DeInfoRegClassifier(blocks=[Embedding(8), LSTM(8)], **FIT).fit(TOKENS, Y)
    with pytest.raises(NotImplementedError, match="LSTM block over token ids.*to_torchscript"):
        est.to_onnx(tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
    traced = est.to_torchscript(tmp_path / "model.pt")
    with torch.no_grad():  # the traced packing follows each row's own padding
        proba = traced(torch.from_numpy(TOKENS)).numpy()
    np.testing.assert_allclose(proba, est.predict_proba(TOKENS), atol=1e-5, rtol=0)


def test_string_labels_and_adaptive_inference_export_the_inference_block(tmp_path):
    labels = np.array(["cat", "dog", "emu"])[Y]
    est = DeInfoRegClassifier(
        blocks=[Dense(16), Dense(16), Dense(16)], inference="adaptive", input_scale=1 / 255, **FIT
    ).fit(IMAGES, labels)
    traced = est.to_torchscript(tmp_path / "model.pt")
    with torch.no_grad():
        proba = traced(torch.from_numpy(IMAGES)).numpy()
    staged = list(est.staged_predict_proba(IMAGES))[est.inference_block_]
    np.testing.assert_allclose(proba, staged, atol=1e-5, rtol=0)
    extra = {CLASSES_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(tmp_path / "model.pt", _extra_files=extra)
    assert json.loads(extra[CLASSES_FILE]) == ["cat", "dog", "emu"]


def _branching_block(input_shape):
    return _Branching(int(np.prod(input_shape)))


class _Branching(torch.nn.Module):
    """A custom block whose Python branch depends on the data: no exporter can keep it."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, 8)

    def forward(self, x):
        x = x.flatten(1)
        if x.sum() > 0:
            return self.linear(x)
        return -self.linear(x)


def test_a_block_the_exporter_cannot_convert_is_an_error_naming_the_blocks(tmp_path):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    est = DeInfoRegClassifier(blocks=[_branching_block, Dense(8)], **FIT).fit(SEQUENCES, Y)
    with pytest.raises(RuntimeError, match=r"could not export the network \(blocks: Custom, Dense\)"):
        est.to_onnx(tmp_path / "model.onnx")


def test_export_needs_a_fitted_estimator(tmp_path):
    with pytest.raises(NotFittedError):
        DeInfoRegClassifier().to_torchscript(tmp_path / "model.pt")
    with pytest.raises(NotFittedError):
        DeInfoRegClassifier().to_onnx(tmp_path / "model.onnx")


def test_export_leaves_the_estimator_as_it_was(fitted, tmp_path):
    est = fitted("al")
    before = est.predict_proba(IMAGES)
    dtypes = {p.dtype for p in est.network_.parameters()}
    est.to_torchscript(tmp_path / "model.pt")
    assert {p.dtype for p in est.network_.parameters()} == dtypes == {torch.float32}
    assert len(est.network_.trainers) == 2  # the served copy dropped them, not the estimator
    np.testing.assert_array_equal(est.predict_proba(IMAGES), before)
