"""``precision`` and ``compile``: other arithmetic, the same training.

Invariants: the weights, the optimiser state and the losses stay float32 whatever the
precision; a lower precision changes accuracy by rounding only; ``compile=True`` computes what
eager mode computes, and falls back to it (with a warning) where it cannot compile.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.losses import info_regularization_loss, supervised_contrastive_loss
from deinforeg_sklearn.training import precision as precision_module

ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier]


@pytest.fixture(scope="module")
def split(request):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16.0).astype(np.float32), y, test_size=0.25, random_state=0, stratify=y)


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, BackpropClassifier])
def test_bf16_fits_digits_within_a_point_of_float32(cls, split):
    X_train, X_test, y_train, y_test = split
    scores = {}
    for precision in ("32", "bf16"):
        est = cls(blocks=[Dense(128), Dense(128)], max_iter=15, random_state=0, precision=precision)
        scores[precision] = est.fit(X_train, y_train).score(X_test, y_test)
        for p in est.network_.parameters():
            assert p.dtype == torch.float32  # autocast leaves the weights in float32
    assert scores["32"] > 0.9
    assert abs(scores["bf16"] - scores["32"]) <= 0.01


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_estimator_trains_in_lower_precision(cls, split):
    X_train, X_test, y_train, y_test = split
    scores = {}
    for precision in ("32", "bf16", "16"):
        est = cls(blocks=[Dense(64), Dense(64)], max_iter=5, random_state=0, precision=precision)
        scores[precision] = est.fit(X_train, y_train).score(X_test, y_test)
        assert np.isfinite(est.predict_proba(X_test)).all()
        for trainer in est.network_.trainers:
            assert trainer.precision == precision
            # float16 scales its loss; bfloat16 has float32's range and needs no scaler
            assert (trainer._scaler is not None) == (precision == "16")
    # measured: within 0.01 of float32 for all four after 5 epochs
    assert abs(scores["bf16"] - scores["32"]) <= 0.03
    assert abs(scores["16"] - scores["32"]) <= 0.03


def test_a_warm_start_from_float16_to_float32_steps_like_float32(split):
    # The float16 fit leaves a loss scaler behind; the float32 continuation must not unscale
    # its (unscaled) gradients with it: it trains as a float32 warm start from the same weights.
    X_train, X_test, y_train, _ = split
    params = {"blocks": [Dense(32)], "max_iter": 1, "random_state": 0}
    first = DeInfoRegClassifier(**params, precision="16").fit(X_train, y_train)
    reference = pickle.loads(pickle.dumps(first))
    reference.network_.trainers[0]._scaler = None  # what a fit that never used float16 holds
    for est in (first, reference):
        est.set_params(warm_start=True, precision="32").fit(X_train, y_train)
    np.testing.assert_allclose(first.predict_proba(X_test), reference.predict_proba(X_test), atol=1e-6)


def test_the_block_output_is_in_the_autocast_dtype_and_the_loss_in_float32(split, monkeypatch):
    from deinforeg_sklearn.training.decoupled import LocalBlock

    seen = set()
    original = LocalBlock.block_loss

    def record(self, h, y, mask):
        h_out, loss, parts, logits = original(self, h, y, mask)
        seen.add((h_out.dtype, loss.dtype, parts["covariance"].dtype))
        return h_out, loss, parts, logits

    monkeypatch.setattr(LocalBlock, "block_loss", record)
    X_train, _, y_train, _ = split
    DeInfoRegClassifier(blocks=[Dense(32)], max_iter=1, precision="bf16").fit(X_train[:200], y_train[:200])
    assert seen == {(torch.bfloat16, torch.float32, torch.float32)}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_local_losses_run_in_float32(dtype):
    z = torch.randn(32, 48)
    y = torch.arange(32) % 4
    low = z.to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        total = info_regularization_loss(low, y, 4)
        contrastive = supervised_contrastive_loss(low, y)
    assert total.dtype == torch.float32 and contrastive.dtype == torch.float32
    # exactly the float32 loss of the rounded input: nothing inside ran in the low precision
    torch.testing.assert_close(total, info_regularization_loss(low.float(), y, 4), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(contrastive, supervised_contrastive_loss(low.float(), y), rtol=1e-6, atol=1e-7)


def test_precision_is_validated_before_any_work(split):
    X_train, _, y_train, _ = split
    with pytest.raises(ValueError, match="precision"):
        DeInfoRegClassifier(blocks=[Dense(8)], precision="fp8").fit(X_train, y_train)


def test_compile_falls_back_to_eager_with_a_warning(split, monkeypatch):
    class NoCompiler(RuntimeError):
        pass

    def failing_compile(fn, **kwargs):
        def compiled(*args):
            raise NoCompiler("no C++ compiler found")

        return compiled

    monkeypatch.setattr(precision_module, "_compiler_errors", lambda: (NoCompiler,))
    monkeypatch.setattr(torch, "compile", failing_compile)
    X_train, X_test, y_train, _ = split
    params = {"blocks": [Dense(32), Dense(32)], "max_iter": 2, "random_state": 0}
    eager = DeInfoRegClassifier(**params).fit(X_train, y_train)
    with pytest.warns(RuntimeWarning, match="could not compile .*training it eagerly"):
        fallback = DeInfoRegClassifier(**params, compile=True).fit(X_train, y_train)
    np.testing.assert_allclose(fallback.predict_proba(X_test), eager.predict_proba(X_test), atol=1e-6)
    pickle.loads(pickle.dumps(fallback))  # nothing compiled travels with the model


def test_compile_does_not_swallow_errors_of_the_model(split, monkeypatch):
    from deinforeg_sklearn.training.decoupled import LocalBlock

    def broken(self, h, y, mask):
        raise ValueError("an error of the model itself")

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # "compiled" = eager
    monkeypatch.setattr(LocalBlock, "step_loss", broken)
    X_train, _, y_train, _ = split
    est = DeInfoRegClassifier(blocks=[Dense(32)], max_iter=1, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # and no fallback warning
        with pytest.raises(ValueError, match="an error of the model itself"):
            est.fit(X_train, y_train)


@pytest.mark.slow
def test_compile_gives_the_predictions_of_eager(split):
    X_train, X_test, y_train, _ = split
    # 4 steps: kernels that sum in another order drift apart a little more with every step
    params = {"blocks": [Dense(32), Dense(32)], "max_iter": 1, "random_state": 0, "batch_size": 100}
    # the paper's small steps: a larger rate and alpha amplify the drift of reordered sums
    params.update(alpha=1e-3, learning_rate=1e-3, final_learning_rate=None)
    rows = slice(0, 400)
    eager = DeInfoRegClassifier(**params, validation_fraction=0).fit(X_train[rows], y_train[rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation notices while compiling
        compiled = DeInfoRegClassifier(**params, validation_fraction=0, compile=True)
        compiled.fit(X_train[rows], y_train[rows])
    np.testing.assert_allclose(compiled.predict_proba(X_test), eager.predict_proba(X_test), atol=1e-4)
    pickle.loads(pickle.dumps(compiled))
