"""Each block draws its initial weights from its own stream (``blocks/streams.py``).

Invariant: with the same ``random_state``, the first k blocks of a deeper network start from
the k-block network's weights, for every method; under a local loss (DeInfoReg, SCPL), and with
no random draws in training, they also end at them, weight for weight.
"""

import numpy as np
import pytest
import torch

from deinforeg_sklearn import (
    ALClassifier,
    BackpropClassifier,
    DeInfoRegClassifier,
    SCPLClassifier,
)
from deinforeg_sklearn.blocks import Conv, Dense
from deinforeg_sklearn.blocks.stack import build_encoders
from deinforeg_sklearn.blocks.streams import Part, block_seed

SHALLOW, DEEP = 2, 4


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(150, 12).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.5)


def _states(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _new_network(cls, depth: int, seed: int = 3):
    estimator = cls(blocks=[Dense(16)] * depth, random_state=0)
    config = estimator._check_config()
    network, _ = estimator._new_network(config, (12,), 3, None, n_batches=4, seed=seed)
    return network


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, SCPLClassifier, ALClassifier, BackpropClassifier])
def test_first_blocks_start_alike_whatever_follows(cls):
    shallow, deep = _new_network(cls, SHALLOW), _new_network(cls, DEEP)
    blocks = "encoders" if cls is BackpropClassifier else "blocks"
    for i in range(SHALLOW - (cls is ALClassifier)):
        # AL's last block holds the output layer, and the next block's label path in a deeper one
        _assert_equal_states(_states(getattr(shallow, blocks)[i]), _states(getattr(deep, blocks)[i]))
    other = _new_network(cls, SHALLOW, seed=4)
    first = _states(getattr(other, blocks)[0])
    assert any(not torch.equal(v, _states(getattr(shallow, blocks)[0])[k]) for k, v in first.items())


@pytest.mark.parametrize("cls", [DeInfoRegClassifier, SCPLClassifier])
def test_local_losses_train_the_first_blocks_alike_whatever_follows(cls, data):
    X, y = data
    # a projector with weights, so that a shared stream would give the deeper one other heads
    params = {"max_iter": 3, "batch_size": 32, "random_state": 7, "projector": (8,)}
    shallow = cls(blocks=[Dense(16)] * SHALLOW, **params).fit(X, y)
    deep = cls(blocks=[Dense(16)] * DEEP, **params).fit(X, y)
    for i in range(SHALLOW):
        _assert_equal_states(_states(shallow.network_.blocks[i]), _states(deep.network_.blocks[i]))
    if cls is DeInfoRegClassifier:
        np.testing.assert_array_equal(shallow.block_scores_, deep.block_scores_[:SHALLOW])


def test_the_global_stream_leaves_the_build_as_it_entered():
    states = []
    for depth in (SHALLOW, DEEP):
        torch.manual_seed(5)
        _new_network(DeInfoRegClassifier, depth)
        states.append(torch.get_rng_state())
    torch.manual_seed(5)
    assert torch.equal(states[0], states[1]) and torch.equal(states[0], torch.get_rng_state())


def test_encoders_built_with_a_seed_do_not_depend_on_the_blocks_after():
    # a third block changes nothing of the first two encoders; another seed changes them
    a = build_encoders([Conv((2,)), Conv((3,))], (1, 5, 5), None, seed=11)
    b = build_encoders([Conv((2,)), Conv((3,)), Conv((3,))], (1, 5, 5), None, seed=11)
    _assert_equal_states(_states(a.encoders[1]), _states(b.encoders[1]))
    c = build_encoders([Conv((2,)), Conv((3,))], (1, 5, 5), None, seed=12)
    assert not torch.equal(_states(a.encoders[0])["net.0.weight"], _states(c.encoders[0])["net.0.weight"])


def test_block_seeds_differ_by_seed_block_and_part():
    seeds = {block_seed(s, i, p) for s in (0, 1) for i in range(4) for p in Part}
    assert len(seeds) == 2 * 4 * len(Part)
    assert all(0 <= s < 2**63 for s in seeds)
