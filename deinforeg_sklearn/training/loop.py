"""The fit loop: epochs, validation, early stopping, interrupt recovery and history.

Why it lives apart from the estimators: it is the same loop for every method and every engine,
and under the process engine every rank runs it (SPMD) on the network and plan it received. So
it reads nothing but its :class:`LoopConfig`, the network (through
:class:`~deinforeg_sklearn.training.protocols.UnitNetwork`), the engine and the
:class:`~deinforeg_sklearn.training.plan.FitPlan`. It issues no warnings: it reports what
happened in a :class:`LoopResult`, and the estimator tells the user, so that the warning points
at the user's call and a spawned rank stays silent.

Invariant: the loop's decisions (when to stop, which epoch to keep) depend only on the stats and
scores every rank sees alike, so all ranks of a pipeline take the same decisions.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from deinforeg_sklearn.progress import EpochReporter
from deinforeg_sklearn.training.checkpoint import EpochSaver, Progress
from deinforeg_sklearn.training.evaluate import evaluate_logits
from deinforeg_sklearn.training.plan import FitPlan
from deinforeg_sklearn.training.protocols import UnitNetwork
from deinforeg_sklearn.training.snapshot import Snapshot
from deinforeg_sklearn.training.stats import UnitEpochStats

if TYPE_CHECKING:  # engines import training; the loop only calls an engine it is given
    from deinforeg_sklearn.engines.base import Engine

#: Rows per batch when scoring the validation split.
EVAL_BATCH = 1024


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How the loop runs; built by the estimator from its parameters.

    Attributes
    ----------
    early_stopping : bool
        Stop when the followed validation score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best epoch.
    n_iter_no_change : int
    tol : float
    follow : {"last", "best"}
        The score early stopping follows: the last head's, or the best head's.
    record_gradients : bool
        Add each epoch's mean encoder-gradient magnitudes to its history record.
    keep_last_epoch : bool
        Copy the network (weights, buffers, optimiser states) after every epoch, so that Ctrl-C
        keeps the last completed epoch. The copy costs one more network state in memory (3x
        the parameters with Adam) and, under the process engine, a gather of every stage's
        state per epoch even without validation. False: Ctrl-C rolls the whole fit back.
    verbose : int
        As the estimator's ``verbose``.
    checkpoint : bool
        A checkpoint is written after every epoch: every rank syncs its stage's state to rank
        0 after each epoch (a decision all ranks must share, so it lives here).
    callbacks : bool
        The fit has an epoch observer (the estimator's callbacks): after every epoch all ranks
        take its stop decision from rank 0, which alone runs it.
    """

    early_stopping: bool = False
    n_iter_no_change: int = 10
    tol: float = 1e-4
    follow: Literal["last", "best"] = "last"
    record_gradients: bool = False
    keep_last_epoch: bool = True
    verbose: int = 0
    checkpoint: bool = False
    callbacks: bool = False


@dataclass(frozen=True)
class LoopResult:
    """What a run of the loop ended with.

    Attributes
    ----------
    scores : ndarray or None
        Validation accuracy of each head for the weights the network holds now.
    interrupted_after : int or None
        After Ctrl-C, the epoch (1-based, counted over warm starts) whose model was kept.
    still_improving : bool
        Early stopping ran to the last epoch while the score was still improving.
    """

    scores: np.ndarray | None
    interrupted_after: int | None = None
    still_improving: bool = False


class _BestEpoch:
    """Early stopping's memory: the best score so far, its snapshot, and the epochs since."""

    def __init__(self, config: LoopConfig) -> None:
        self.config = config
        self.snapshot: Snapshot | None = None
        self.score = -np.inf
        self.stale = 0

    def improves(self, scores: np.ndarray | None) -> bool:
        """Whether these scores would become the new best epoch."""
        if not self.config.early_stopping or scores is None:
            return False
        return bool(_followed_score(scores, self.config.follow) > self.score + self.config.tol)

    def update(self, network: UnitNetwork, n_history: int, scores: np.ndarray | None) -> bool:
        """Take this epoch's scores; True when training should stop."""
        if not self.config.early_stopping or scores is None:
            return False
        if self.improves(scores):
            # the old best goes first, so that at most one best copy is ever held; a Ctrl-C
            # while the new one is taken keeps the network, which is that new best
            self.snapshot = None
            self.snapshot = Snapshot.take(network, n_history, scores)
            self.score = _followed_score(scores, self.config.follow)
            self.stale = 0
        else:
            self.stale += 1
        return self.stale >= self.config.n_iter_no_change


class FitLoop:
    """Runs the epochs of one fit.

    Parameters
    ----------
    config : LoopConfig
    saver : EpochSaver or None
        Writes the checkpoint after every epoch (rank 0 only).
    resume : Progress or None
        A checkpoint's state to continue from: early stopping's counters and best epoch, and
        the last scores. The network, history and generators are already restored by the
        caller, and ``plan.epochs`` counts only the epochs left.
    observer : callable or None
        Called with each epoch's record, in the process that leads the fit only (never in a
        spawned rank: a pickled loop drops it); a True return stops the fit after that epoch.
        Set ``config.callbacks`` with it, so that every rank asks for its decision.
    """

    def __init__(
        self,
        config: LoopConfig,
        saver: EpochSaver | None = None,
        resume: Progress | None = None,
        observer: Callable[[dict], bool] | None = None,
    ) -> None:
        self.config, self.saver, self.resume, self.observer = config, saver, resume, observer

    def __getstate__(self) -> dict:
        # spawned ranks get the loop without the observer: callbacks are the user's objects,
        # run by the caller's process alone
        state = self.__dict__.copy()
        state["observer"] = None
        return state

    def __call__(
        self, network: UnitNetwork, engine: Engine, plan: FitPlan, history: list[dict]
    ) -> LoopResult:
        return self.run(network, engine, plan, history)

    def run(self, network: UnitNetwork, engine: Engine, plan: FitPlan, history: list[dict]) -> LoopResult:
        """Train for ``plan.epochs`` epochs at most, appending one record per epoch to ``history``.

        Early stopping restores the best epoch. Ctrl-C keeps the last completed epoch of this
        run (``keep_last_epoch``); with none completed, or without that copy, it re-raises and
        the caller rolls the whole fit back. Under the process engine Ctrl-C reaches rank 0's
        loop (stage processes ignore it), which stops the other ranks and keeps the copy it
        holds: after each epoch's sync, rank 0's network holds every stage's state.
        """
        for trainer in network.trainers:
            trainer.record_gradients = self.config.record_gradients
        reporter = EpochReporter(0 if engine.quiet else self.config.verbose, plan.n_batches)
        engine.on_batch = reporter.batch_done
        best = _BestEpoch(self.config)
        last_good: Snapshot | None = None
        stopped, scores = False, None
        # every rank's own random stream: seeded, or where the checkpoint left it
        engine.seed_ranks(plan.seed, None if self.resume is None else _saved_rank_states(self.resume))
        if self.resume is not None:
            best.score, best.stale, best.snapshot = (
                self.resume.best_score,
                self.resume.stale,
                self.resume.best,
            )
            stopped, scores = self.resume.stopped, self.resume.scores
        keeps = self.config.keep_last_epoch and not engine.quiet
        # True from the end of an epoch until the next one starts: the network then holds that
        # completed epoch, unchanged, so a Ctrl-C in between keeps it as it is. This is what
        # lets a snapshot be dropped before its successor is taken: one copy of the network
        # at a time, never two (a copy is the parameters and the optimiser's state, 3x the
        # parameters under Adam).
        settled = ranked = False
        try:
            for _ in range(0 if stopped else plan.epochs):
                settled = False
                record, scores = self._epoch(network, engine, plan, history, reporter)
                history.append(record)
                # the schedules' per-epoch step (reduce-on-plateau) before any copy is taken:
                # a copy of this epoch holds the rate the next epoch starts with
                followed = _followed_score(scores, self.config.follow)
                for trainer in network.trainers:
                    trainer.end_epoch(followed)
                settled, ranked = True, False
                reporter.end(record)
                improved = best.improves(scores)
                stop = best.update(network, len(history), scores)
                ranked = True
                if keeps:
                    # a new best is this epoch's copy already: share it (snapshots are
                    # never written to) rather than hold a second copy
                    last_good = None
                    last_good = best.snapshot if improved else Snapshot.take(network, len(history), scores)
                if self.config.callbacks:
                    stop = engine.decide(functools.partial(self._observe, record, engine)) or stop
                if self.saver is not None and engine.writes_checkpoints:
                    self.saver(_progress(network, history, plan, best, scores, stop, engine))
                if stop:
                    stopped = True
                    break
        except KeyboardInterrupt:
            reporter.close()
            engine.interrupt()
            if keeps and settled:
                # an epoch that early stopping had no time to rank, and that would be the new
                # best, is the best: it is the network
                fresh_best = not ranked and best.improves(scores)
                return self._keep_settled(network, history, scores, None if fresh_best else best.snapshot)
            if last_good is None:
                raise
            return self._after_interrupt(network, history, last_good, best.snapshot)
        engine.sync()
        if best.snapshot is None:
            return LoopResult(scores)
        best.snapshot.restore(network)
        return LoopResult(best.snapshot.scores, still_improving=not stopped)

    def _observe(self, record: dict, engine: Engine) -> bool:
        # under torchrun every rank has the observer; the one that writes checkpoints leads
        if self.observer is None or not engine.writes_checkpoints:
            return False
        return bool(self.observer(record))

    @staticmethod
    def _keep_settled(
        network: UnitNetwork, history: list[dict], scores: np.ndarray | None, best: Snapshot | None
    ) -> LoopResult:
        """Ctrl-C between epochs: the network holds the last completed one (or go to the best)."""
        kept = history[-1]["epoch"]
        if best is None:
            return LoopResult(scores, interrupted_after=kept)
        best.restore(network)
        return LoopResult(best.scores, interrupted_after=kept)

    @staticmethod
    def _after_interrupt(
        network: UnitNetwork, history: list[dict], last_good: Snapshot, best: Snapshot | None
    ) -> LoopResult:
        """Go back to the last completed epoch (or the best one, under early stopping)."""
        last_good.restore(network)
        del history[last_good.n_history :]
        kept = history[-1]["epoch"]
        if best is None:
            return LoopResult(last_good.scores, interrupted_after=kept)
        best.restore(network)
        return LoopResult(best.scores, interrupted_after=kept)

    def _epoch(
        self,
        network: UnitNetwork,
        engine: Engine,
        plan: FitPlan,
        history: list[dict],
        reporter: EpochReporter,
    ) -> tuple[dict, np.ndarray | None]:
        """One epoch of training, then the validation scores; returns its history record."""
        reporter.start(len(history) + 1)
        start = time.perf_counter()
        network.train()
        # each batch as rows of plan.X: no epoch-sized copy, and ranks > 0 need no X at all
        batches = plan.epoch_batches()
        plan.X.expect(batches)  # Dataset input: DataLoader workers start loading them
        busy_before = list(engine.busy_seconds)
        stats = engine.train_epoch(plan.X, plan.y, batches, plan.mask_fn, plan.augment, len(history))
        elapsed = time.perf_counter() - start  # training only, without validation
        snapshot = (self.config.keep_last_epoch or self.config.checkpoint) and not engine.in_process
        if plan.validates or self.config.record_gradients or snapshot:
            engine.sync()
        scores = None
        if plan.validates:
            scores = engine.validation_scores(lambda: _validation_scores(network, plan))
        record = {
            "epoch": len(history) + 1,
            "time": elapsed,
            "stage_busy": [(b - a) / elapsed for a, b in zip(busy_before, engine.busy_seconds, strict=True)],
            "learning_rate": network.trainers[0].last_rate(),
            "validation_scores": None if scores is None else [float(v) for v in scores],
            "blocks": _unit_rows(stats, network.head_units, scores),
        }
        if self.config.record_gradients:
            record["encoder_gradients"] = engine.epoch_gradients()
        return record, scores


def _followed_score(scores: np.ndarray | None, follow: str) -> float | None:
    """The validation score that early stopping and reduce-on-plateau follow."""
    if scores is None:
        return None
    return float(scores.max() if follow == "best" else scores[-1])


def _progress(
    network: UnitNetwork,
    history: list[dict],
    plan: FitPlan,
    best: _BestEpoch,
    scores,
    stop: bool,
    engine: Engine,
) -> Progress:
    """The state a checkpoint keeps after this epoch.

    The helper ranks' random states come from the engine's last sync; this process's own are
    added by the saver.
    """
    return Progress(
        network=network,
        history=history,
        numpy_rng=plan.rng.bit_generator.state,
        torch_rng=None,
        best_score=best.score,
        stale=best.stale,
        best=best.snapshot,
        scores=scores,
        stopped=stop,
        rank_rngs=engine.rank_random_states(),
    )


def _saved_rank_states(progress: Progress) -> dict:
    """The helper ranks' random states in a checkpoint (none in one written before they were kept)."""
    return getattr(progress, "rank_rngs", {})


def _validation_scores(network: UnitNetwork, plan: FitPlan) -> np.ndarray:
    """Accuracy of each head on the validation rows (weighted by their sample weights)."""
    X_val, y_val, weights = plan.validation()
    logits = evaluate_logits(network, X_val, EVAL_BATCH, plan.device, plan.mask_fn)
    return np.array([np.average(lg.argmax(1) == y_val, weights=weights) for lg in logits])


def _unit_rows(stats: list[UnitEpochStats], head_units: list[int], scores: np.ndarray | None) -> list[dict]:
    """One history row per unit: its loss terms, and accuracies for the units that are heads."""
    rows = []
    for u, unit in enumerate(stats):
        head = head_units.index(u) if u in head_units else None
        row: dict = dict(unit.terms)
        row["train_accuracy"] = None if head is None else unit.accuracy
        row["validation_accuracy"] = None if head is None or scores is None else float(scores[head])
        rows.append(row)
    return rows
