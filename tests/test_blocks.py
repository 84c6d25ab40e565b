import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from deinforeg_sklearn import BackpropClassifier, DeInfoRegClassifier
from deinforeg_sklearn.blocks import (
    LSTM,
    BuildContext,
    Conv,
    Custom,
    Dense,
    Embedding,
    Residual,
    Transformer,
    resolve_blocks,
)

SPECS = [
    Dense(16),
    Dense(16, batch_norm=False),
    Conv((8, "M", 16)),
    Conv((8,), head_pool=2),
    Residual(8, n_blocks=1, stride=2),
    LSTM(12),
    LSTM(12, bidirectional=False, layers=2),
    Transformer(16, heads=2, layers=1),
    Embedding(8),
    Embedding(4, vectors=np.arange(12, dtype=np.float32).reshape(3, 4)),
]


def tiny_linear(input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 10), nn.Tanh())


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_spec_is_a_value(spec):
    twin = pickle.loads(pickle.dumps(spec))
    assert twin == spec and hash(twin) == hash(spec)
    assert repr(twin) == repr(spec)
    with pytest.raises(AttributeError):
        spec.__setattr__(next(iter(spec.__dataclass_fields__)), 3)


def test_different_specs_differ():
    assert Dense(16) != Dense(32)
    assert Conv([8, "M"]) == Conv((8, "M"))
    assert Embedding(4) != Embedding(4, vectors=np.zeros((2, 4)))
    assert Embedding(4, vectors=np.zeros((2, 4))) == Embedding(4, vectors=np.zeros((2, 4)))
    assert Embedding(4, vectors=np.zeros((2, 4))) != Embedding(4, vectors=np.ones((2, 4)))


def test_specs_survive_clone_get_set_params():
    blocks = [Dense(8), Dense(4)]
    est = DeInfoRegClassifier(blocks=blocks)
    assert est.get_params()["blocks"] == blocks
    copy = clone(est)
    assert copy.blocks == blocks
    copy.set_params(blocks=[Conv((4,))])
    assert copy.blocks == [Conv((4,))] and est.blocks == blocks
    assert "Dense(units=8" in repr(est)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Dense(0),
        lambda: Conv(("X",)),
        lambda: Residual(0),
        lambda: Transformer(10, heads=3),
        lambda: LSTM(hidden=-1),
        lambda: Embedding(3, vectors=np.zeros((2, 4))),
    ],
)
def test_invalid_spec_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_unknown_block_spec_is_named():
    with pytest.raises(ValueError, match=r"blocks\[1\] is 'dense'"):
        resolve_blocks([Dense(4), "dense"])
    with pytest.raises(ValueError, match="call it"):
        resolve_blocks([Dense])
    with pytest.raises(ValueError, match="empty"):
        resolve_blocks([])


def test_callable_becomes_custom():
    assert resolve_blocks([tiny_linear]) == [Custom(tiny_linear)]


def _fit_both(blocks, X, y, **kw):
    for cls in (DeInfoRegClassifier, BackpropClassifier):
        est = cls(blocks=blocks, max_iter=2, batch_size=16, random_state=0, **kw).fit(X, y)
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), len(np.unique(y)))
        assert np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_dense_and_custom_train(small_data):
    _fit_both([Dense(16), tiny_linear, Custom(tiny_linear)], *small_data)


def test_conv_head_pool_sets_feature_width():
    X = np.random.RandomState(0).rand(20, 64).astype(np.float32)
    y = np.arange(20) % 2
    est = DeInfoRegClassifier(blocks=[Conv((6,), head_pool=2)], input_shape=(1, 8, 8), max_iter=1).fit(X, y)
    assert est.network_.blocks[0].classifier[0].num_features == 6 * 2 * 2


def test_image_blocks_train():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 2 * 8 * 8).astype(np.float32)
    y = rng.randint(0, 3, 40)
    _fit_both([Conv((8, "M")), Residual(8, n_blocks=1, stride=2), Dense(8)], X, y, input_shape=(2, 8, 8))


def token_data(n=48, steps=7, vocab=30, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randint(2, vocab, size=(n, steps))
    lengths = rng.randint(0, steps + 1, n)
    X[np.arange(steps) >= lengths[:, None]] = 0  # right padding; some rows entirely empty
    y = (X[:, 0] % 2).astype(int)
    return X, y


@pytest.mark.parametrize(
    "blocks",
    [
        [Embedding(8), LSTM(6), LSTM(6)],
        [Embedding(8), Transformer(8, heads=2, layers=1), Transformer(8, heads=2, layers=1)],
        [Embedding(8), LSTM(4), Transformer(8, heads=2, layers=1), Dense(4)],
    ],
    ids=["lstm", "transformer", "mixed"],
)
def test_sequence_blocks_train_on_token_ids(blocks):
    X, y = token_data()
    _fit_both(blocks, X, y)


def test_embedding_reads_unseen_ids_as_oov():
    X, y = token_data()
    est = DeInfoRegClassifier(blocks=[Embedding(4), LSTM(4)], max_iter=1, random_state=0).fit(X, y)
    X_new = X.copy()
    X_new[:, 0] = 10_000  # far beyond the vocabulary seen in fit
    assert np.isfinite(est.predict_proba(X_new)).all()


def test_embedding_vectors_initialise_rows():
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    X = np.array([[2, 3, 4, 0], [4, 0, 0, 0]] * 4)
    y = np.array([0, 1] * 4)
    est = DeInfoRegClassifier(
        blocks=[Embedding(4, vectors=vectors, trainable=False), LSTM(2)], max_iter=1, random_state=0
    ).fit(X, y)
    table = est.network_.blocks[0].encoder.embedding.weight.detach().numpy()
    np.testing.assert_array_equal(table[2:5], vectors)
    np.testing.assert_array_equal(table[0], 0.0)  # padding row


def test_token_input_must_be_integers():
    X, y = token_data()
    with pytest.raises(ValueError, match="non-negative integers"):
        DeInfoRegClassifier(blocks=[Embedding(4), LSTM(4)]).fit(X + 0.5, y)


def test_sequence_block_on_flat_input_is_a_clear_error(small_data):
    with pytest.raises(ValueError, match="Block 0 \\(LSTM\\) needs a sequence"):
        DeInfoRegClassifier(blocks=[LSTM(4)]).fit(*small_data)


def test_conv_without_image_shape_is_a_clear_error(small_data):
    with pytest.raises(ValueError, match="input_shape=\\(channels, height, width\\)"):
        DeInfoRegClassifier(blocks=[Conv((4,))]).fit(*small_data)


def test_lstm_on_float_sequences(small_data):
    X, y = small_data
    _fit_both([LSTM(4), Dense(4)], X, y, input_shape=(3, 2))


def test_embedding_must_be_first(small_data):
    X, y = token_data()
    with pytest.raises(ValueError, match="must be the first block|must come first"):
        DeInfoRegClassifier(blocks=[Dense(4), Embedding(4)]).fit(X, y)


def test_transformer_handles_empty_documents():
    X, y = token_data()
    X[:5] = 0
    est = DeInfoRegClassifier(
        blocks=[Embedding(8), Transformer(8, heads=2, layers=1)], max_iter=1, random_state=0
    ).fit(X, y)
    assert np.isfinite(est.predict_proba(X)).all()


def test_custom_factory_must_return_module(small_data):
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        DeInfoRegClassifier(blocks=[lambda shape: 3]).fit(*small_data)


def test_lstm_output_ignores_padding():
    torch.manual_seed(0)
    enc = LSTM(3).build((5, 2), BuildContext(position=0, previous=None))
    x = torch.randn(1, 5, 2)
    mask = torch.tensor([[True, True, False, False, False]])
    a = enc.features(enc(x, mask), mask)
    x2 = x.clone()
    x2[:, 2:] = 99.0  # garbage in the padding must not change the result
    b = enc.features(enc(x2, mask), mask)
    torch.testing.assert_close(a, b)
