"""What the four estimators share: parameters, checks, the plan of a fit, commit, prediction.

The estimator is glue. Blocks build encoders (``blocks``), networks own the per-unit optimisers
(``training``), the fit loop runs the epochs (``training.loop``), engines run the batches
(``engines``, through ``engines.setup`` alone). This class validates the parameters and the
data, resolves the classes, makes the :class:`~deinforeg_sklearn.training.plan.FitPlan`, and
commits the fitted state only when a fit finishes, so a failed fit leaves the previous state.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from deinforeg_sklearn.blocks import BlockSpec, Dense, resolve_blocks
from deinforeg_sklearn.blocks.stack import EncoderStack, build_encoders
from deinforeg_sklearn.callbacks.base import call_hook, check_callbacks, close_callbacks
from deinforeg_sklearn.data.augment import make_augmenter
from deinforeg_sklearn.data.dataset import DatasetInput
from deinforeg_sklearn.data.sparse import sparse_refusal
from deinforeg_sklearn.data.weights import check_weights
from deinforeg_sklearn.devices import resolve_device_grid
from deinforeg_sklearn.engines.setup import EngineRequest, start_engine, writes_checkpoints
from deinforeg_sklearn.estimators._auto import check_projector, resolve_projectors
from deinforeg_sklearn.estimators._checkpoint import checkpointer_for
from deinforeg_sklearn.estimators._checks import resolve_classes
from deinforeg_sklearn.estimators._export import ExportMixin
from deinforeg_sklearn.estimators._inputs import (
    input_sample_shape,
    training_input,
    validation_input,
    warn_about_magnitude,
)
from deinforeg_sklearn.estimators._persistence import PersistenceMixin
from deinforeg_sklearn.estimators._plan import make_plan
from deinforeg_sklearn.estimators._prediction import PredictionMixin
from deinforeg_sklearn.optim.schedules import check_schedule, needs_validation
from deinforeg_sklearn.training.checkpoint import EpochSaver, restore_random_states
from deinforeg_sklearn.training.collapse import CHECK_ROWS, collapse_message, collapsed_heads
from deinforeg_sklearn.training.loop import FitLoop, LoopConfig, LoopResult
from deinforeg_sklearn.training.plan import Augment, FitPlan
from deinforeg_sklearn.training.protocols import UnitNetwork
from deinforeg_sklearn.training.step import TrainerFactory

#: Blocks used when ``blocks=None``: two dense blocks, like MLPClassifier's single hidden layer.
DEFAULT_BLOCKS: tuple[BlockSpec, ...] = (Dense(128), Dense(128))

# Frames between a warning in ``_fit`` and the user's call (``_fit`` <- ``_transactional_fit``
# <- ``fit`` <- sklearn's ``_fit_context`` wrapper <- user), so warnings point at user code.
_USER_FRAME = 5


@dataclass(frozen=True)
class FitData:
    """The checked data of one fit: rows, class indices, weights and the user's validation set."""

    X: np.ndarray | DatasetInput  # an array read in place, or a checked torch Dataset
    y_idx: np.ndarray
    weights: np.ndarray | None
    X_val: np.ndarray | DatasetInput | None
    y_val_idx: np.ndarray | None


@dataclass(frozen=True)
class FitConfig:
    """The estimator's parameters that need the machine or the blocks to check, checked."""

    specs: list[BlockSpec]
    engine: EngineRequest
    projector: tuple[int, ...] | str | None  # "auto" is resolved per block once they are built
    callbacks: list  # checked to have hooks; called in the lead process only


class BaseDecoupledClassifier(PredictionMixin, PersistenceMixin, ExportMixin, ClassifierMixin, BaseEstimator):
    """Base class; not for direct use."""

    _parameter_constraints: ClassVar[dict] = {
        "blocks": [list, tuple, None],
        "projector": [list, tuple, StrOptions({"auto"}), None],
        "optimizer": [StrOptions({"adam", "sgd", "lars"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "final_learning_rate": [Interval(Real, 0, None, closed="left"), None],
        "lr_schedule": "no_validation",  # check_schedule: a message that lists the choices
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        # 2 at least: the local loss's variance and BatchNorm in training need two samples
        "batch_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left"), None],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "input_shape": [tuple, list, None],
        "augment": [StrOptions({"basic", "strong"}), callable, None],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "input_scale": [Interval(Real, 0, None, closed="neither"), None],
        "checkpoint": [str, os.PathLike, None],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "devices": "no_validation",  # checked against the machine by resolve_devices
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "record_gradients": ["boolean"],
        "keep_last_epoch": ["boolean"],
        "callbacks": "no_validation",  # check_callbacks: a message that says how to fix it
        "backward": [StrOptions({"per_block", "per_stage"})],
        "precision": [StrOptions({"32", "bf16", "16"})],
        "compile": ["boolean"],
        "schedule": [StrOptions({"auto", "sequential", "wavefront"})],
    }

    # ----------------------------------------------------------------- subclass hooks
    @abstractmethod
    def _build_network(
        self,
        stack: EncoderStack,
        n_classes: int,
        make_trainer: TrainerFactory,
        projectors: list[tuple[int, ...]],
    ) -> UnitNetwork:
        """Wrap the built encoders into the method's network (a ``UnitNetwork``).

        ``projectors`` holds each block's projector widths (``()``: the identity). Build block
        l's heads inside ``stack.stream(l)``, and a head after the last block inside
        ``stack.stream(L - 1, Part.OUTPUT)``, so that each draws from its own stream.
        """

    def _inference_mode(self, validation: bool) -> str:
        """How the inference block is chosen; ``validation``: the fit has validation rows."""
        return "last"

    def _backward_mode(self) -> str:
        """The ``backward`` setting (a network of one unit, as BP's, has nothing to merge)."""
        return "per_block"

    def _engine_request(self, grid: list[list[torch.device]], n_blocks: int, auto: bool) -> EngineRequest:
        """Where this estimator trains; one stage (with its replicas) unless a subclass can
        pipeline. ``grid``: per stage, the device of each data-parallel replica.

        ``auto`` (``devices="auto"``): here the first candidate, a GPU if there is one.
        """
        if auto:
            grid = [list(EngineRequest.check([], n_blocks, auto=True).devices[:1])]
        if len(grid) > 1:
            raise ValueError(
                f"devices={self.devices!r} names {len(grid)} devices, but "
                f"{type(self).__name__} trains on one device (or on data-parallel replicas of "
                "one stage): pass a single device (e.g. 'cpu' or 'cuda:0'), or one list of "
                "replicas (e.g. [['cpu', 'cpu']]). DeInfoRegClassifier can pipeline over several."
            )
        return EngineRequest.check(
            [stage[0] for stage in grid], n_blocks, schedule=self.schedule, replica_devices=grid
        )

    # ----------------------------------------------------------------- sklearn plumbing
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True  # densified batch by batch for a flat first block (data/sparse.py)
        # transform gives the inference block's features, always float32 (the blocks' dtype)
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        return tags

    # ----------------------------------------------------------------- public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, X_val=None, y_val=None) -> BaseDecoupledClassifier:
        """Train the network on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or torch Dataset
            Rows of features (reshaped to ``input_shape`` when given), or token ids when the
            first block is an ``Embedding``. Any real or integer dtype and ``np.memmap`` are
            read in place (see ``input_scale``). A scipy sparse array or matrix (e.g. from
            ``TfidfVectorizer``) stays sparse, each batch densified when it is due, for a
            first block of flat rows (Dense, or a custom block); CSR is read in place, other
            formats are converted to CSR once. A map-style ``torch.utils.data.Dataset``
            whose items are ``(sample, label)`` is read once for its labels, then per batch
            (``num_workers``); its samples' shape is the ``input_shape`` unless one is given.
        y : array-like of shape (n_samples,), default=None
            Class labels (any hashable values); None when X is a Dataset.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, multiplied by ``class_weight``. Integer weights
            repeat rows (the fit equals one on ``np.repeat(X, w, axis=0)`` with the same
            ``random_state``; 0 leaves a row out); other weights draw each epoch's rows with
            probability proportional to the weight. Validation accuracy is weighted alike.
        X_val : array-like of shape (n_val, n_features), default=None
            Validation rows of your own: they replace the split of ``validation_fraction``
            for early stopping, ``inference="best"``, ``history_`` and ``block_scores_``.
        y_val : array-like of shape (n_val,), default=None
            Labels of ``X_val`` (all among y's classes); required with an array ``X_val``,
            None with a Dataset ``X_val``.

        Returns
        -------
        self
        """
        incremental = self.warm_start and self.__sklearn_is_fitted__()
        return self._transactional_fit(
            X,
            y,
            classes=None,
            incremental=incremental,
            partial=False,
            sample_weight=sample_weight,
            validation=(X_val, y_val),
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, classes=None, sample_weight=None) -> BaseDecoupledClassifier:
        """Train one epoch on (X, y), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All classes that will ever be seen; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None
            As in :meth:`fit`.

        Returns
        -------
        self
        """
        fitted = self.__sklearn_is_fitted__()
        if not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._transactional_fit(
            X, y, classes=classes, incremental=fitted, partial=True, sample_weight=sample_weight
        )

    # ----------------------------------------------------------------- fitting
    def _transactional_fit(
        self, X, y, classes, incremental: bool, partial: bool, sample_weight=None, validation=(None, None)
    ):
        # Work on copies and commit at the end: an error (bad data, NaN loss, Ctrl-C) leaves
        # the estimator unfitted or exactly as it was after its last good fit.
        saved = dict(self.__dict__)
        try:
            self._fit(X, y, classes, incremental, partial, sample_weight, validation)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        finally:
            close_callbacks(getattr(self, "callbacks", None))  # loggers' writers, whatever the outcome
        return self

    def _check_config(self, external_validation: bool = False) -> FitConfig:
        specs = resolve_blocks(DEFAULT_BLOCKS if self.blocks is None else self.blocks)
        projector = check_projector(getattr(self, "projector", None))  # AL has no projector
        auto = isinstance(self.devices, str) and self.devices == "auto"
        engine = self._engine_request([] if auto else resolve_device_grid(self.devices), len(specs), auto)
        validation = external_validation or bool(self.validation_fraction)
        if self._inference_mode(validation) == "best" and not validation:
            raise ValueError(
                'inference="best" chooses a block on validation data: set '
                "validation_fraction > 0 (e.g. 0.1), or pass X_val and y_val to fit."
            )
        if self.early_stopping and not validation:
            raise ValueError(
                "early_stopping=True needs validation data: set validation_fraction > 0 (e.g. 0.1), "
                "or pass X_val and y_val to fit."
            )
        schedule = check_schedule(getattr(self, "lr_schedule", "cosine"))
        if needs_validation(schedule) and not validation:
            raise ValueError(
                f"lr_schedule={schedule!r} reduces the rate when the validation score stops "
                "improving: set validation_fraction > 0 (e.g. 0.1), or pass X_val and y_val to fit."
            )
        if engine.replicas > 1 and self.compile:
            raise ValueError(
                "compile=True does not run with data-parallel replicas (devices as a list of "
                "lists): the gathers of the global batch are not traced. Use compile=False."
            )
        warmup = getattr(self, "warmup_epochs", 0)
        if warmup >= self.max_iter:
            raise ValueError(
                f"warmup_epochs={warmup} leaves no epoch for the schedule after it: make it "
                f"smaller than max_iter={self.max_iter}."
            )
        return FitConfig(specs, engine, projector, check_callbacks(getattr(self, "callbacks", None)))

    def _fit(
        self, X, y, classes, incremental: bool, partial: bool, sample_weight=None, validation=(None, None)
    ) -> None:
        """One ``fit`` (``partial=False``: max_iter epochs, validation split, new schedule) or one
        ``partial_fit`` call (one epoch on all rows, the schedule carries on)."""
        X_val, y_val = validation
        if X_val is None and y_val is not None:
            raise ValueError("Pass X_val and y_val together (or neither, to split off validation_fraction).")
        config = self._check_config(external_validation=X_val is not None)
        first = config.specs[0]
        tokens = first.accepts == "tokens"
        refusal = sparse_refusal(type(first).__name__, first.accepts, self.input_shape)
        X, y = training_input(self, X, y, reset=not incremental, tokens=tokens, sparse_refusal=refusal)
        warn_about_magnitude(self, X, self.input_scale, tokens, "fit")
        shape = input_sample_shape(X, self.input_shape)
        augment = make_augmenter(self.augment, shape, self._value_range(X))
        classes_ = resolve_classes(y, classes, self.classes_ if incremental else None)
        weights = check_weights(sample_weight, self.class_weight, y, classes_)
        if X_val is not None:
            X_val, y_val = validation_input(self, X_val, y_val, X.shape[1], classes_, tokens, refusal)
        start_epoch = len(self.history_) if incremental else 0
        checkpointer = None if partial else checkpointer_for(self, X, y, classes_, start_epoch, weights)
        # one fit at a time per checkpoint folder, from before the load to the last write
        lock = checkpointer is not None and writes_checkpoints(config.engine)
        # the process that reports the fit runs the callbacks (rank 0 under torchrun)
        callbacks = config.callbacks if writes_checkpoints(config.engine) else []
        with checkpointer.locked() if lock else contextlib.nullcontext():
            call_hook(callbacks, "on_fit_begin", self)  # before any seeding: draws change nothing
            progress, seed = checkpointer.load() if checkpointer is not None else (None, None)
            if seed is None:
                seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            data = FitData(X, np.searchsorted(classes_, y), weights, X_val, y_val)
            plan = self._plan(data, shape, augment, seed, partial, config, tokens)
            mode = self._inference_mode(X_val is not None or bool(self.validation_fraction))
            cuda = sorted({d.index or 0 for d in config.engine.devices if d.type == "cuda"})
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(seed)
                if progress is not None:  # resume: the checkpoint's network, history and generators
                    network, history = progress.network, progress.history
                    projectors = progress.extra.get("projectors")
                    plan.rng.bit_generator.state = progress.numpy_rng
                    plan = dataclasses.replace(plan, epochs=plan.epochs - (len(history) - start_epoch))
                    restore_random_states(progress)
                elif incremental:
                    network = self._continued_network(plan, partial)
                    projectors = getattr(self, "projector_", None)  # AL has none
                    history = list(self.history_)
                else:
                    max_token = int(X.max()) if tokens else None
                    network, projectors = self._new_network(
                        config, shape, len(classes_), max_token, plan.n_batches, seed
                    )
                    history = []
                saver = None
                if checkpointer is not None:
                    saver = EpochSaver(checkpointer, seed, bool(cuda), {"projectors": projectors})
                observer = None
                if config.callbacks:  # every rank of a pipeline asks rank 0 whether to stop

                    def observer(record: dict) -> bool:
                        return any([bool(r) for r in call_hook(callbacks, "on_epoch_end", self, record)])

                loop_config = self._loop_config(mode, saver is not None, bool(config.callbacks))
                loop = FitLoop(loop_config, saver, progress, observer)
                with start_engine(config.engine, network, plan, history, loop) as engine:
                    result = loop.run(network, engine, plan, history)
                    stage_sizes, stage_devices = engine.stage_sizes, list(engine.devices)
            if saver is not None and result.interrupted_after is None:
                saver.finish()  # the next fit starts over; after Ctrl-C it resumes instead
        self._warn_about(result)
        self._warn_if_collapsed(network, plan, stage_devices[0])
        self.classes_, self.network_, self.device_ = classes_, network, stage_devices[0]
        self.devices_ = stage_devices
        self.stage_sizes_, self.input_shape_, self.history_ = stage_sizes, shape, history
        self.block_scores_ = result.scores
        self.n_iter_ = len(history)  # epochs since the model was created (warm starts add up)
        self.inference_block_ = self._choose_inference_block(mode, network.n_heads, result.scores)
        self.inference_ = mode
        if hasattr(self, "projector"):  # AL has no projector
            self.projector_ = projectors
        self._tokens, self._input_scale = tokens, self.input_scale
        call_hook(callbacks, "on_fit_end", self)  # fitted: history_ holds every epoch

    def _value_range(self, X: np.ndarray) -> tuple[float, float]:
        """The smallest and largest input value the blocks see ("strong" jitters within it)."""
        if not (isinstance(self.augment, str) and self.augment == "strong"):
            return (0.0, 1.0)  # unused: only "strong" reads the range, and this skips a pass over X
        scale = 1.0 if self.input_scale is None else float(self.input_scale)
        return float(X.min()) * scale, float(X.max()) * scale

    def _plan(
        self, data: FitData, shape, augment: Augment, seed: int, partial: bool, config, tokens
    ) -> FitPlan:
        """The rows, split and batches of this fit (partial_fit: one epoch on every row)."""
        plan, message = make_plan(
            data.X,
            data.y_idx,
            shape,
            validation_fraction=None if partial else self.validation_fraction,
            batch_size=self.batch_size,
            epochs=1 if partial else self.max_iter,
            tokens=tokens,
            augment=augment,
            seed=seed,
            device=config.engine.devices[0],
            weights=data.weights,
            X_val=data.X_val,
            y_val_idx=data.y_val_idx,
            input_scale=self.input_scale,
            num_workers=self.num_workers,
        )
        if message is not None:
            warnings.warn(message, UserWarning, stacklevel=_USER_FRAME + 1)
        return plan

    def _new_network(
        self, config: FitConfig, shape, n_classes: int, max_token, n_batches: int, seed: int
    ) -> tuple[UnitNetwork, list[tuple[int, ...]]]:
        """A freshly initialised network, and the projector widths it was built with.

        Every block draws its initial weights from its own stream (``blocks/streams.py``), so a
        block starts from the same weights whatever blocks follow it.
        """
        make_trainer = self._trainer_factory(self.max_iter * n_batches, n_batches)
        stack = build_encoders(config.specs, shape, max_token, seed)
        projectors = resolve_projectors(config.projector, stack.encoders, stack.widths)
        return self._build_network(stack, n_classes, make_trainer, projectors), projectors

    def _trainer_factory(self, total_steps: int, n_batches: int) -> TrainerFactory:
        """How every unit's optimiser and learning-rate schedule are made, from the parameters."""
        return TrainerFactory(
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            final_learning_rate=self.final_learning_rate,
            total_steps=total_steps,
            lr_schedule=getattr(self, "lr_schedule", "cosine"),
            warmup_steps=getattr(self, "warmup_epochs", 0) * n_batches,
            backward=self._backward_mode(),
            precision=self.precision,
            compile=self.compile,
        )

    def _continued_network(self, plan: FitPlan, partial: bool) -> UnitNetwork:
        network = copy.deepcopy(self.network_)
        if not partial:  # a new fit restarts the schedule, as the parameters now say
            factory = self._trainer_factory(plan.epochs * plan.n_batches, plan.n_batches)
            for trainer in network.trainers:
                trainer.reset_schedule(factory.schedule())
        for trainer in network.trainers:  # these settings may have changed since the last fit
            trainer.backward = self._backward_mode()
            trainer.precision, trainer.compile = self.precision, self.compile
        return network

    def _loop_config(self, mode: str, checkpoint: bool = False, callbacks: bool = False) -> LoopConfig:
        return LoopConfig(
            early_stopping=self.early_stopping,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            follow="best" if mode == "best" else "last",
            record_gradients=self.record_gradients,
            keep_last_epoch=self.keep_last_epoch,
            verbose=self.verbose,
            checkpoint=checkpoint,
            callbacks=callbacks,
        )

    def _warn_about(self, result: LoopResult) -> None:
        if result.interrupted_after is not None:
            warnings.warn(
                f"Training interrupted; keeping the model after epoch {result.interrupted_after}.",
                UserWarning,
                stacklevel=_USER_FRAME + 1,
            )
        elif result.still_improving:
            warnings.warn(
                f"Stopped at max_iter={self.max_iter} epochs while the validation score was "
                "still improving; consider a larger max_iter.",
                ConvergenceWarning,
                stacklevel=_USER_FRAME + 1,
            )

    def _warn_if_collapsed(self, network: UnitNetwork, plan: FitPlan, device: torch.device) -> None:
        """Warn when the fit learned nothing: every head constant (``training/collapse.py``)."""
        failed = collapsed_heads(network, plan.X, device, plan.mask_fn)
        if failed is None:
            return
        message = collapse_message(network.n_heads, failed, min(len(plan.X), CHECK_ROWS))
        if message is not None:
            warnings.warn(message, UserWarning, stacklevel=_USER_FRAME + 1)

    def _choose_inference_block(self, mode: str, n_heads: int, scores: np.ndarray | None) -> int:
        if mode == "best" and scores is not None:
            # Ties go to the deeper block: a small validation split often scores several blocks
            # alike, and the deeper one has seen more of the network's capacity.
            return int(len(scores) - 1 - np.argmax(np.asarray(scores)[::-1]))
        return n_heads - 1
