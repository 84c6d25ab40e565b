"""Which pipelines would share a random stream (engines/randomness.py).

Invariant: "auto" never runs two thread stages that draw random numbers on one device, since
their draws from the shared generator would come in no fixed order.
"""

import numpy as np
import torch

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Custom, Dense
from deinforeg_sklearn.engines.randomness import draws_random_numbers, shared_stream_devices
from tests.stage_helpers import dropout_block


def test_stages_on_one_device_share_its_stream():
    cpu, gpu0, gpu1 = torch.device("cpu"), torch.device("cuda", 0), torch.device("cuda", 1)
    assert shared_stream_devices([cpu, cpu]) == [cpu]
    assert shared_stream_devices([cpu]) == []
    assert shared_stream_devices([gpu0, gpu1]) == []  # a generator per GPU
    assert shared_stream_devices([cpu, gpu0, gpu0]) == [gpu0]


def _fitted(blocks):
    rng = np.random.RandomState(0)
    X, y = rng.rand(64, 6).astype(np.float32), rng.randint(0, 2, 64)
    clf = DeInfoRegClassifier(blocks=blocks, max_iter=1, random_state=0).fit(X, y)
    return clf, torch.tensor(X[:16]), torch.tensor(y[:16])


def test_a_dropout_block_draws_and_a_dense_block_does_not():
    for blocks, expected in (([Custom(dropout_block), Dense(8)], True), ([Dense(8), Dense(8)], False)):
        clf, x, y = _fitted(blocks)
        weights = [p.detach().clone() for p in clf.network_.parameters()]
        state = torch.get_rng_state()
        assert draws_random_numbers(clf.network_.trainers, x, y, None) is expected
        assert torch.equal(state, torch.get_rng_state())  # the fit's stream is left as it was
        for before, after in zip(weights, clf.network_.parameters(), strict=True):
            assert torch.equal(before, after)  # and its network
