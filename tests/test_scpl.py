"""The SCPL baseline: supervised contrastive loss, isolation of its blocks and head, accuracy."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deinforeg_sklearn import SCPLClassifier
from deinforeg_sklearn.blocks import Conv, Dense
from deinforeg_sklearn.losses import supervised_contrastive_loss


def numpy_supcon(z, y, t):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    total, anchors = 0.0, 0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        logits = np.array([z[i] @ z[j] / t for j in others])
        log_den = np.log(np.exp(logits - logits.max()).sum()) + logits.max()
        pos = [k for k, j in enumerate(others) if y[j] == y[i]]
        if pos:
            total += -np.mean([logits[k] - log_den for k in pos])
            anchors += 1
    return total / anchors if anchors else 0.0


@pytest.mark.parametrize("n,c,k,t,seed", [(8, 4, 2, 0.1, 0), (20, 6, 5, 0.5, 1), (5, 3, 5, 0.1, 2)])
def test_supcon_matches_numpy(n, c, k, t, seed):
    rng = np.random.RandomState(seed)
    z, y = rng.randn(n, c), rng.randint(0, k, n)
    got = supervised_contrastive_loss(torch.tensor(z), torch.tensor(y), t).item()
    np.testing.assert_allclose(got, numpy_supcon(z, y, t), rtol=1e-6, atol=1e-12)


def test_supcon_without_positives_is_zero_with_a_gradient():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(z, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(z.grad == 0)


def test_blocks_and_head_are_isolated(small_data):
    X, y = small_data
    est = SCPLClassifier(blocks=[Dense(8), Dense(8)], projector=(8,), max_iter=1, random_state=0).fit(X, y)
    net = est.network_
    x, yt = torch.tensor(X[:32]), torch.tensor(y[:32])
    units = [*net.blocks, net.head]
    for target, unit in enumerate(units):
        net.zero_grad(set_to_none=True)
        h = x
        for block in net.blocks[:target]:
            h = block(h, None)
        _, loss, _ = unit.step_loss(h, yt, None)
        loss.backward()
        for other, module in enumerate(units):
            grads = [p.grad for p in module.parameters()]
            if other == target:
                assert any(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads), f"unit {target} reached unit {other}"
    head_params = {id(p) for p in net.head.parameters()}
    assert not head_params & {id(p) for b in net.blocks for p in b.parameters()}  # the head owns no encoder


def test_history_rows_and_prediction(small_data):
    X, y = small_data
    est = SCPLClassifier(blocks=[Dense(8)] * 3, max_iter=2, random_state=0).fit(X, y)
    rows = est.history_[-1]["blocks"]
    assert len(rows) == 4
    assert all(r["train_accuracy"] is None and r["contrastive"] > 0 for r in rows[:3])
    assert rows[3]["train_accuracy"] is not None and rows[3]["validation_accuracy"] is not None
    assert est.block_scores_.shape == (1,) and est.inference_block_ == 0
    assert len(list(est.staged_predict_proba(X))) == 1
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict_proba(X), est.predict_proba(X))


def test_scpl_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), SCPLClassifier(blocks=[Dense(256)] * 4, random_state=0))
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.95
    conv = make_pipeline(
        StandardScaler(),
        SCPLClassifier(
            blocks=[Conv((16, "M")), Conv((32, "M"))], input_shape=(1, 8, 8), max_iter=20, random_state=0
        ),
    )
    assert conv.fit(X_train, y_train).score(X_test, y_test) >= 0.9
