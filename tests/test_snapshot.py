"""Snapshots are copies: training after a snapshot (or after restoring it) never changes it.

Invariant (:mod:`deinforeg_sklearn.training.snapshot`): ``Snapshot.take`` copies every weight,
buffer and optimiser-state tensor, and ``restore`` puts copies back, so the snapshot of the
last good epoch stays what it was, whatever training does next.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training.snapshot import Snapshot


def _state(snapshot: Snapshot) -> list[torch.Tensor]:
    tensors = [v.clone() for v in snapshot.model.values()]
    for opt in snapshot.optimizers:
        for per_param in opt["state"].values():
            tensors += [v.clone() for v in per_param.values() if isinstance(v, torch.Tensor)]
    return tensors


def _train_a_bit(network, X, y):
    for trainer in network.trainers:
        trainer.step(X, y, None)


def test_a_snapshot_survives_training_and_its_restore():
    X, y = load_digits(return_X_y=True)
    est = DeInfoRegClassifier(blocks=[Dense(16)], max_iter=1, random_state=0).fit(X[:200] / 16, y[:200])
    network = est.network_
    Xb, yb = torch.tensor(X[:64] / 16, dtype=torch.float32), torch.tensor(y[:64])
    snapshot = Snapshot.take(network, 1, np.array([0.5]))
    before = _state(snapshot)
    assert snapshot.model.keys() == network.state_dict().keys()
    assert hasattr(snapshot.model, "_metadata")  # module versions travel with the copy
    _train_a_bit(network, Xb, yb)
    for a, b in zip(before, _state(snapshot), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    snapshot.restore(network)
    for name, value in network.state_dict().items():
        torch.testing.assert_close(value, snapshot.model[name], rtol=0, atol=0)
    _train_a_bit(network, Xb, yb)  # steps after a restore write into the live state, not the snapshot
    for a, b in zip(before, _state(snapshot), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
