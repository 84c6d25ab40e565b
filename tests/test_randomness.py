"""Which pipelines would share a random stream (engines/randomness.py).

Invariant: "auto" never runs two thread stages that draw random numbers on one device, since
their draws from the shared generator would come in no fixed order; and no two GPUs of a
pipeline start from one seed, which would give their stages the same dropout masks.
"""

import numpy as np
import torch

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Custom, Dense
from deinforeg_sklearn.engines.randomness import (
    cuda_stage_seeds,
    draws_random_numbers,
    rank_seed,
    shared_stream_devices,
)
from deinforeg_sklearn.engines.threads import ThreadEngine
from tests.stage_helpers import dropout_block


def test_stages_on_one_device_share_its_stream():
    cpu, gpu0, gpu1 = torch.device("cpu"), torch.device("cuda", 0), torch.device("cuda", 1)
    assert shared_stream_devices([cpu, cpu]) == [cpu]
    assert shared_stream_devices([cpu]) == []
    assert shared_stream_devices([gpu0, gpu1]) == []  # a generator per GPU
    assert shared_stream_devices([cpu, gpu0, gpu0]) == [gpu0]


def test_each_gpu_of_a_thread_pipeline_gets_a_seed_of_its_own():
    cpu, gpu = torch.device("cpu"), lambda i: torch.device("cuda", i)
    seeds = cuda_stage_seeds([gpu(0), gpu(0), cpu, gpu(1), gpu(2), gpu(1)], seed=5)
    # the first GPU keeps the fit's seed; the others are seeded as stage processes 3 and 4 are
    assert seeds == {0: 5, 1: rank_seed(5, 3), 2: rank_seed(5, 4)}
    assert len(set(seeds.values())) == 3
    assert cuda_stage_seeds([cpu, cpu], seed=5) == {}


def test_the_thread_engine_seeds_the_other_gpus_on_a_fresh_fit_only(monkeypatch):
    # No GPU is needed to see which generators it seeds: record the calls instead.
    calls, current = [], []

    class _Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            current.append(self.index)

        def __exit__(self, *exc):
            current.pop()

    monkeypatch.setattr(torch.cuda, "device", _Device)
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda s: calls.append((current[-1], s)))
    engine = ThreadEngine([], [[], [], []], [torch.device("cuda", i) for i in (0, 1, 1)])
    engine.seed_ranks(7, None)
    assert calls == [(1, rank_seed(7, 1))]  # GPU 0 keeps the estimator's seed 7
    calls.clear()
    engine.seed_ranks(7, {})  # resumed: the checkpoint restored every generator already
    assert calls == []


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
