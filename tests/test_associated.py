"""The AL baseline: isolated blocks, prediction through the chain of inverses, accuracy."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deinforeg_sklearn import ALClassifier
from deinforeg_sklearn.blocks import LSTM, Dense, Embedding


@pytest.fixture
def fitted(small_data):
    X, y = small_data
    return ALClassifier(blocks=[Dense(8)] * 3, max_iter=3, random_state=0).fit(X, y)


def test_blocks_are_isolated(fitted, small_data):
    X, y = small_data
    net = fitted.network_
    x, yt = torch.tensor(X[:32]), torch.tensor(y[:32])
    for target in range(3):
        net.zero_grad(set_to_none=True)
        h = x
        for i, block in enumerate(net.blocks):
            if i == target:
                _, loss, _ = block.step_loss(h, yt, None)
                loss.backward()
                break
            with torch.no_grad():
                h, _, _ = block.step_loss(h, yt, None)
        for i, block in enumerate(net.blocks):
            grads = [p.grad for p in block.parameters()]
            if i == target:
                for part in (block.encoder, block.bridge, block.g, block.inverse):
                    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
            else:
                assert all(g is None for g in grads), f"block {target}'s loss reached block {i}"


def test_prediction_walks_the_inverses(fitted, small_data):
    X, _ = small_data
    net = fitted.network_.eval()
    with torch.no_grad():
        h = torch.tensor(X)
        for block in net.blocks:
            h = block.encoder(h, None)
        s = net.blocks[-1].bridge(h)
        for block in reversed(net.blocks):
            s = block.inverse(s)
    expected = (s / s.sum(1, keepdim=True)).numpy()
    np.testing.assert_allclose(fitted.predict_proba(X), expected, rtol=1e-5)


def test_history_and_pickle(fitted, small_data):
    X, _ = small_data
    record = fitted.history_[-1]
    assert set(record["blocks"][0]) >= {"bridge", "reconstruction", "loss"}
    assert record["validation_scores"] == [pytest.approx(fitted.block_scores_[0])]
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(fitted)).predict_proba(X), fitted.predict_proba(X)
    )


@pytest.mark.parametrize("final", [None, 1e-4])
def test_encoders_and_label_side_learn_at_their_own_rates(small_data, final):
    X, y = small_data
    est = ALClassifier(
        blocks=[Dense(8)] * 2,
        learning_rate=1e-3,
        label_learning_rate=2e-2,
        final_learning_rate=final,
        max_iter=2,
        random_state=0,
    ).fit(X, y)
    for block, trainer in zip(est.network_.blocks, est.network_.trainers, strict=True):
        encoder = {id(p) for p in block.encoder.parameters()}
        label_side = {id(p) for m in (block.g, block.bridge, block.inverse) for p in m.parameters()}
        rate = {}
        for group in trainer.optimizer.param_groups:
            ids = {id(p) for p in group["params"]}
            side = "encoder" if ids == encoder else "label" if ids == label_side else None
            assert side is not None, "each group holds one side, whole"
            rate[side] = group["lr"]  # the rate of the last step
        assert rate["label"] == pytest.approx(20 * rate["encoder"])
        if final is None:
            assert rate["encoder"] == pytest.approx(1e-3)


def test_token_input_is_refused_clearly():
    with pytest.raises(ValueError, match="does not read token ids"):
        ALClassifier(blocks=[Embedding(4), LSTM(4)]).fit(np.ones((10, 3), dtype=int) * 2, np.arange(10) % 2)


def test_al_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), ALClassifier(blocks=[Dense(256)] * 4, random_state=0))
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.95
