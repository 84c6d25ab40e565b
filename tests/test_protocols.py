"""The unit / network contract, named stats, and the engine lifecycle.

Invariant: engines and the fit loop reach a network only through ``UnitNetwork`` and its units
only through ``TrainableUnit``; every method's network implements both, with every attribute
present (nothing optional, nothing attached from outside).
"""

import numpy as np
import pytest
import torch

from deinforeg_sklearn import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.engines import EngineRequest, SequentialEngine, ThreadEngine, start_engine
from deinforeg_sklearn.estimators._plan import make_plan
from deinforeg_sklearn.training import EpochStats, StepStats, TrainableUnit, UnitNetwork
from deinforeg_sklearn.training.loop import FitLoop, LoopConfig

ESTIMATORS = [DeInfoRegClassifier, BackpropClassifier, SCPLClassifier, ALClassifier]


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 5).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return (
        {cls: cls(blocks=[Dense(6), Dense(6)], max_iter=1, random_state=0).fit(X, y) for cls in ESTIMATORS},
        X,
        y,
    )


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_network_implements_the_protocols(cls, fitted):
    models, X, _ = fitted
    network = models[cls].network_
    assert isinstance(network, UnitNetwork)
    for trainer in network.trainers:
        assert isinstance(trainer.unit, TrainableUnit)
        groups = trainer.unit.optimizer_groups()
        assert groups and all("params" in g for g in groups)
        # the groups cover exactly the unit's trainable parameters, once each
        listed = [id(p) for g in groups for p in g["params"]]
        assert sorted(listed) == sorted(id(p) for p in trainer.unit.parameters())
    assert len(network.output_shapes) == 2  # one per block
    assert all(0 <= u < len(network.trainers) for u in network.head_units)
    logits = network.head_logits(torch.tensor(X[:4]), None)
    assert len(logits) == network.n_heads


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_step_reports_named_stats_that_become_history_rows(cls, fitted):
    models, X, y = fitted
    network = models[cls].network_
    h, yb = torch.tensor(X[:16]), torch.tensor(y[:16])
    for u, trainer in enumerate(network.trainers):
        _, _, stats = trainer.unit.step_loss(h, yb, None)
        assert isinstance(stats, StepStats)
        row = models[cls].history_[0]["blocks"][u]
        assert list(row)[: len(stats.terms)] == list(stats.terms)  # same names, same order
        # a unit reports a correct count exactly when its row carries a training accuracy
        assert (stats.correct is not None) == (row["train_accuracy"] is not None)
        h, _ = trainer.step(h, yb, None)


def test_epoch_stats_weight_by_batch_and_travel_between_ranks():
    local = EpochStats(2)
    local.add(0, StepStats({"a": torch.tensor(1.0), "b": torch.tensor(4.0)}, torch.tensor(3.0)), 10)
    local.add(0, StepStats({"a": torch.tensor(2.0), "b": torch.tensor(1.0)}, torch.tensor(5.0)), 30)
    local.add(1, StepStats({"c": torch.tensor(0.5)}), 40)
    means = local.means(40)
    assert means[0].terms == pytest.approx({"a": (10 + 60) / 40, "b": (40 + 30) / 40})
    assert means[0].accuracy == pytest.approx(8 / 40)
    assert means[1].terms == pytest.approx({"c": 0.5}) and means[1].accuracy is None
    # what rank 1 exports for its unit, rank 0 merges: the same means as if computed locally
    other = EpochStats(2)
    other.merge(local.export([0, 1]))
    assert [m.terms for m in other.means(40)] == [m.terms for m in means]
    assert [m.accuracy for m in other.means(40)] == [m.accuracy for m in means]


def test_engine_request_is_checked_before_any_work():
    cpu = [torch.device("cpu")] * 2
    assert EngineRequest.check(cpu, 4, [1, 3], "threads").counts == (1, 3)
    with pytest.raises(ValueError, match="only 1 blocks"):
        EngineRequest.check(cpu, 1)
    with pytest.raises(ValueError, match="adding up to the 4 blocks"):
        EngineRequest.check(cpu, 4, [1, 1])
    with pytest.raises(ValueError, match="engine='mpi'"):
        EngineRequest.check(cpu, 4, None, "mpi")


def test_engine_lifecycle_is_idempotent_and_restores_threads(fitted):
    models, _, _ = fitted
    trainers = models[DeInfoRegClassifier].network_.trainers
    before = torch.get_num_threads()
    engine = ThreadEngine(trainers, [[0], [1]], [torch.device("cpu")] * 2, cpu_threads=1)
    assert engine.streams == [None, None] and not engine.started  # attributes exist before start
    with engine:
        assert torch.get_num_threads() == 1
        engine.start()  # a second start does nothing
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before and not engine.started
    engine.close()  # closing twice is harmless
    assert torch.get_num_threads() == before


def test_loop_and_engine_run_without_an_estimator(fitted):
    # A spawned rank does exactly this: the loop on a network and plan it received.
    models, X, y = fitted
    model = models[DeInfoRegClassifier]
    network = model.network_
    plan, _ = make_plan(
        X,
        np.searchsorted(model.classes_, y),
        (5,),
        validation_fraction=0.2,
        batch_size=16,
        epochs=1,
        tokens=False,
        augment=None,
        seed=3,
        device=torch.device("cpu"),
    )
    history: list[dict] = []
    loop = FitLoop(LoopConfig())
    with start_engine(EngineRequest((torch.device("cpu"),)), network, plan, history, loop) as engine:
        assert isinstance(engine, SequentialEngine) and engine.started
        result = loop.run(network, engine, plan, history)
    assert len(history) == plan.epochs == 1
    assert result.scores is not None and len(result.scores) == network.n_heads
    assert result.interrupted_after is None and not result.still_improving
