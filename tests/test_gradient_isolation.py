import numpy as np
import pytest
import torch

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import LSTM, Conv, Dense, Embedding


def fitted(blocks, X, y, **kw):
    return DeInfoRegClassifier(blocks=blocks, max_iter=1, projector=(8, 8), random_state=0, **kw).fit(X, y)


def block_params(block):
    return {
        "encoder": list(block.encoder.parameters()),
        "projector": list(block.projector.parameters()),
        "classifier": list(block.classifier.parameters()),
    }


def check_isolation(network, x, y, mask):
    blocks = network.blocks
    network.train()
    for target in range(len(blocks)):
        network.zero_grad(set_to_none=True)
        h = x
        for i, block in enumerate(blocks):
            if i < target:
                h = block(h, mask)  # earlier blocks run with autograd on: isolation must hold anyway
            elif i == target:
                _, loss, _, _ = block.block_loss(h, y, mask)
                loss.backward()
        for i, block in enumerate(blocks):
            for part, params in block_params(block).items():
                grads = [p.grad for p in params if p.requires_grad]
                if i == target:
                    assert any(g is not None and g.abs().sum() > 0 for g in grads), (i, part)
                else:
                    assert all(g is None for g in grads), f"block {target}'s loss reached block {i} {part}"


def test_dense_blocks_are_isolated(small_data):
    X, y = small_data
    est = fitted([Dense(8), Dense(8), Dense(8)], X, y)
    check_isolation(est.network_, torch.tensor(X[:32]), torch.tensor(y[:32]), None)


def test_conv_blocks_are_isolated():
    rng = np.random.RandomState(0)
    X = rng.rand(32, 64).astype(np.float32)
    y = rng.randint(0, 3, 32)
    est = fitted([Conv((4, "M")), Conv((4,)), Dense(4)], X, y, input_shape=(1, 8, 8))
    check_isolation(est.network_, torch.tensor(X).view(32, 1, 8, 8), torch.tensor(y), None)


def test_sequence_blocks_are_isolated():
    rng = np.random.RandomState(0)
    X = rng.randint(1, 20, (24, 5))
    y = rng.randint(0, 2, 24)
    est = fitted([Embedding(6), LSTM(4), LSTM(4)], X, y)
    x = torch.tensor(X)
    check_isolation(est.network_, x, torch.tensor(y), x != 0)


def test_block_output_is_detached_from_earlier_blocks(small_data):
    X, y = small_data
    est = fitted([Dense(8), Dense(8)], X, y)
    trainer = est.network_.trainers[0]
    h, _ = trainer.step(torch.tensor(X[:16]), torch.tensor(y[:16]), None)
    assert not h.requires_grad and h.grad_fn is None


@pytest.mark.parametrize("frozen_block", [0, 1])
def test_training_one_block_leaves_others_unchanged(small_data, frozen_block):
    X, y = small_data
    est = fitted([Dense(8), Dense(8)], X, y)
    net = est.network_
    before = {k: v.clone() for k, v in net.blocks[frozen_block].state_dict().items()}
    other = 1 - frozen_block
    h = torch.tensor(X[:32])
    if other == 1:
        with torch.no_grad():
            net.eval()
            h = net.blocks[0](h, None)
            net.train()
    net.trainers[other].step(h, torch.tensor(y[:32]), None)
    for k, v in net.blocks[frozen_block].state_dict().items():
        torch.testing.assert_close(v, before[k])
