"""What DeInfoRegClassifier and BackpropClassifier share: checks, the fit loop, prediction.

The estimator is glue. Blocks build modules (``blocks``), networks own the per-unit
optimisers (``training``), engines run the batches (``engines``). This class validates the
parameters and data, runs epochs, keeps history and the validation scores, and commits the
fitted state only when a fit finishes, so a failed fit leaves the previous state intact.
"""

from __future__ import annotations

import copy
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from deinforeg_sklearn.blocks import BlockSpec, BuildContext, Dense, Encoder, resolve_blocks
from deinforeg_sklearn.data.augment import make_augmenter
from deinforeg_sklearn.data.batches import epoch_batches
from deinforeg_sklearn.data.inputs import as_token_ids, no_mask, sample_shape, to_tensor, token_mask
from deinforeg_sklearn.data.split import validation_split
from deinforeg_sklearn.devices import resolve_devices
from deinforeg_sklearn.engines import Engine, SequentialEngine, evaluate_logits
from deinforeg_sklearn.optim import make_optimizer
from deinforeg_sklearn.persistence import FILE_FORMAT, first_device, network_from_bytes, network_to_bytes
from deinforeg_sklearn.progress import EpochReporter
from deinforeg_sklearn.training.snapshot import Snapshot

#: Blocks used when ``blocks=None``: two dense blocks, like MLPClassifier's single hidden layer.
DEFAULT_BLOCKS: tuple[BlockSpec, ...] = (Dense(128), Dense(128))

#: Batch size of ``batch_size="auto"`` (or the number of training samples, if fewer).
AUTO_BATCH_SIZE = 128

_PREDICT_BATCH = 1024
# Frames between a warning in ``_fit`` and the user's call (``_fit`` <- ``_transactional_fit``
# <- ``fit`` <- sklearn's ``_fit_context`` wrapper <- user), so warnings point at user code.
_USER_FRAME = 5


def _check_widths(name: str, widths: object) -> tuple[int, ...] | None:
    if widths is None:
        return None
    widths = tuple(widths)
    if any(not isinstance(w, (int, np.integer)) or isinstance(w, bool) or w < 1 for w in widths):
        raise ValueError(f"{name} must be None or a sequence of positive ints, got {widths!r}.")
    return tuple(int(w) for w in widths)


@dataclass
class FitPlan:
    """The data and settings of one fit, as the engines and the epoch loop need them."""

    X: torch.Tensor  # all rows, reshaped to the sample shape
    y: torch.Tensor  # class indices
    train_idx: np.ndarray
    val_idx: np.ndarray | None
    batch_size: int
    epochs: int
    mask_fn: Callable[[torch.Tensor], torch.Tensor | None]
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    rng: np.random.Generator  # batch order
    device: torch.device  # where evaluation batches go first


class BaseDecoupledClassifier(ClassifierMixin, BaseEstimator):
    """Base class; not for direct use."""

    _parameter_constraints: ClassVar[dict] = {
        "blocks": [list, tuple, None],
        "projector": [list, tuple, None],
        "optimizer": [StrOptions({"adam", "sgd", "lars"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "final_learning_rate": [Interval(Real, 0, None, closed="left"), None],
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
        "devices": "no_validation",  # checked against the machine by resolve_devices
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "record_gradients": ["boolean"],
    }

    # ----------------------------------------------------------------- subclass hooks
    @abstractmethod
    def _build_network(
        self, encoders: list[Encoder], widths: list[int], n_classes: int, trainer_args
    ) -> torch.nn.Module:
        """Wrap the built encoders into a network with ``trainers`` and ``head_logits``.

        ``widths[l]`` is the width of the rows ``encoders[l].features`` hands to the heads.
        """

    def _inference_mode(self) -> str:
        return "last"

    # ----------------------------------------------------------------- sklearn plumbing
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if "network_" in state:  # torch-serialised, so it can be restored on another device
            state["network_"] = network_to_bytes(state["network_"])
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("network_"), bytes):
            state["network_"] = network_from_bytes(state["network_"])
            state["device_"] = first_device(state["network_"])
        self.__dict__.update(state)

    def save(self, path) -> None:
        """Write the estimator (parameters, classes, weights, optimiser state) to a torch file.

        Load it with ``type(estimator).load(path)``; a model saved on a GPU loads on a
        CPU-only machine. The file is a pickle: load only files you trust.
        """
        torch.save({"format": FILE_FORMAT, "estimator": self}, path)

    @classmethod
    def load(cls, path) -> BaseDecoupledClassifier:
        """Read an estimator written by :meth:`save` (only from a trusted source)."""
        content = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(content, dict) or content.get("format") != FILE_FORMAT:
            raise ValueError(f"{path!s} was not written by {cls.__name__}.save.")
        estimator = content["estimator"]
        if not isinstance(estimator, cls):
            raise TypeError(f"{path!s} holds a {type(estimator).__name__}, not a {cls.__name__}.")
        return estimator

    # ----------------------------------------------------------------- public API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y) -> BaseDecoupledClassifier:
        """Train the network on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows of features (reshaped to ``input_shape`` when given), or token ids when the
            first block is an ``Embedding``.
        y : array-like of shape (n_samples,)
            Class labels (any hashable values).

        Returns
        -------
        self
        """
        incremental = self.warm_start and self.__sklearn_is_fitted__()
        return self._transactional_fit(X, y, classes=None, incremental=incremental, partial=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None) -> BaseDecoupledClassifier:
        """Train one epoch on (X, y), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All classes that will ever be seen; required on the first call.

        Returns
        -------
        self
        """
        fitted = self.__sklearn_is_fitted__()
        if not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._transactional_fit(X, y, classes=classes, incremental=fitted, partial=True)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities from the inference block's classifier.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        logits = self._logits(X, last=self.inference_block_)[-1]
        return _softmax(logits)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels (from ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def staged_predict_proba(self, X) -> Iterator[np.ndarray]:
        """Class probabilities of each block's classifier, first block first.

        For BackpropClassifier, which has one classifier, this yields one array.

        Yields
        ------
        ndarray of shape (n_samples, n_classes)
        """
        for logits in self._logits(X, last=None):
            yield _softmax(logits)

    # ----------------------------------------------------------------- fitting
    def _transactional_fit(self, X, y, classes, incremental: bool, partial: bool):
        # Work on copies and commit at the end: an error (bad data, NaN loss, Ctrl-C) leaves
        # the estimator unfitted or exactly as it was after its last good fit.
        saved = dict(self.__dict__)
        try:
            self._fit(X, y, classes, incremental, partial)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _check_devices(self, devices: list[torch.device], n_blocks: int) -> None:
        if len(devices) > 1:
            raise ValueError(
                f"devices={self.devices!r} names {len(devices)} devices, but "
                f"{type(self).__name__} trains on one device: pass a single device "
                "(e.g. 'cpu' or 'cuda:0'). DeInfoRegClassifier can pipeline over several."
            )

    def _make_engine(
        self, network: torch.nn.Module, devices: list[torch.device], plan: FitPlan, history: list[dict]
    ) -> Engine:
        """Place the network on its device(s) and return the engine that trains it."""
        network.to(devices[0])
        return SequentialEngine(network.trainers, devices[0])

    def _check_config(self) -> tuple[list[BlockSpec], list[torch.device]]:
        specs = resolve_blocks(DEFAULT_BLOCKS if self.blocks is None else self.blocks)
        _check_widths("projector", getattr(self, "projector", None))  # AL has no projector
        devices = resolve_devices(self.devices)
        self._check_devices(devices, len(specs))
        if self._inference_mode() == "best" and not self.validation_fraction:
            raise ValueError(
                'inference="best" chooses a block on the validation split: set '
                "validation_fraction > 0 (e.g. 0.1)."
            )
        if self.early_stopping and not self.validation_fraction:
            raise ValueError("early_stopping=True needs validation_fraction > 0 (e.g. 0.1).")
        return specs, devices

    def _validate_xy(self, X, y, reset: bool, tokens: bool):
        dtype = np.float64 if tokens else np.float32
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype)
        check_classification_targets(y)
        if X.shape[0] < 2:
            raise ValueError(f"Got {X.shape[0]} sample: training needs at least 2 samples (n_samples=1).")
        return (as_token_ids(X) if tokens else X), y

    def _fit(self, X, y, classes, incremental: bool, partial: bool) -> None:
        """One ``fit`` (``partial=False``: max_iter epochs, validation split, new schedule) or one
        ``partial_fit`` call (one epoch on all rows, the schedule carries on)."""
        specs, devices = self._check_config()
        tokens = specs[0].accepts == "tokens"
        X, y = self._validate_xy(X, y, reset=not incremental, tokens=tokens)
        shape = sample_shape(X.shape[1], self.input_shape)
        augmenter = make_augmenter(self.augment, shape)

        if incremental:
            known = self.classes_
            new = np.setdiff1d(np.unique(y), known)
            if len(new):
                raise ValueError(
                    f"y has classes {new.tolist()} not seen in the first fit (classes_ = "
                    f"{known.tolist()}): refit from scratch with warm_start=False."
                )
            classes_ = known
        else:
            classes_ = np.unique(y if classes is None else classes)
            if classes is not None and len(np.setdiff1d(np.unique(y), classes_)):
                raise ValueError("y has labels that are not in `classes`.")
        if len(classes_) < 2:
            raise ValueError(
                f"y has a single class ({classes_[0]!r}): a classifier needs at least 2 classes."
            )
        y_idx = np.searchsorted(classes_, y)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train_idx, val_idx = (
            (np.arange(len(y)), None)
            if partial
            else validation_split(y_idx, self.validation_fraction or 0.0, seed)
        )
        batch_size = min(AUTO_BATCH_SIZE, len(train_idx)) if self.batch_size == "auto" else self.batch_size
        if batch_size > len(train_idx):
            warnings.warn(
                f"batch_size={batch_size} is larger than the {len(train_idx)} training samples; "
                f"using {len(train_idx)}.",
                UserWarning,
                stacklevel=_USER_FRAME,
            )
            batch_size = len(train_idx)
        n_batches = len(epoch_batches(len(train_idx), batch_size, None))
        epochs = 1 if partial else self.max_iter

        X_t = to_tensor(X, shape)
        y_t = torch.from_numpy(y_idx.astype(np.int64))
        mask_fn = token_mask if tokens else no_mask

        cuda = sorted({d.index or 0 for d in devices if d.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            if incremental:
                network = copy.deepcopy(self.network_)
                if not partial:  # a new fit restarts the learning-rate schedule
                    for trainer in network.trainers:
                        trainer.reset_schedule(epochs * n_batches)
            else:
                max_token = int(X.max()) if tokens else None
                network = self._new_network(specs, shape, len(classes_), max_token, self.max_iter * n_batches)
            history = list(self.history_) if incremental else []
            plan = FitPlan(
                X_t,
                y_t,
                train_idx,
                val_idx,
                batch_size,
                epochs,
                mask_fn,
                augmenter,
                np.random.default_rng(seed),
                devices[0],
            )
            with self._make_engine(network, devices, plan, history) as engine:
                scores = self._train(network, engine, plan, history)
                stage_sizes = engine.stage_sizes

        self.classes_ = classes_
        self.network_ = network
        self.device_ = devices[0]
        self.stage_sizes_ = stage_sizes
        self.input_shape_ = shape
        self.history_ = history
        self.block_scores_ = scores
        self.n_iter_ = len(history)  # epochs since the model was created (warm starts add up)
        self.inference_block_ = self._choose_inference_block(network.n_heads, scores)
        self._tokens = tokens

    def _new_network(self, specs, shape, n_classes, max_token, total_steps) -> torch.nn.Module:
        encoders: list[Encoder] = []
        widths: list[int] = []
        out_shapes: list[tuple[int, ...]] = []
        in_shape = shape
        for i, spec in enumerate(specs):
            context = BuildContext(position=i, previous=specs[i - 1] if i else None, max_token_id=max_token)
            if i and spec.accepts == "tokens":
                raise ValueError(f"Block {i} ({type(spec).__name__}) reads token ids and must come first.")
            encoder = spec.build(in_shape, context)
            in_shape, width = _probe(encoder, in_shape, tokens=max_token is not None and i == 0)
            encoders.append(encoder)
            widths.append(width)
            out_shapes.append(in_shape)

        def trainer_args(module: torch.nn.Module) -> dict:
            # A unit whose parts learn at different rates (AL's label side) lists its groups
            params = module.optimizer_groups() if hasattr(module, "optimizer_groups") else module.parameters()
            return {
                "optimizer": make_optimizer(params, self.optimizer, self.learning_rate, self.weight_decay),
                "lr": self.learning_rate,
                "final_lr": self.final_learning_rate,
                "total_steps": total_steps,
            }

        network = self._build_network(encoders, widths, n_classes, trainer_args)
        network.output_shapes = out_shapes  # per-sample output shape of each block
        return network

    def _train(
        self, network: torch.nn.Module, engine: Engine, plan: FitPlan, history: list[dict]
    ) -> np.ndarray | None:
        """Run the epochs; fill ``history``; return the validation accuracy of each head.

        Early stopping restores the best epoch. Ctrl-C (in-process engines) keeps the last
        completed epoch of this fit and returns; with no completed epoch it re-raises, and
        the caller rolls the whole fit back.
        """
        for trainer in network.trainers:
            trainer.record_gradients = self.record_gradients
        reporter = EpochReporter(self.verbose, -(-len(plan.train_idx) // plan.batch_size))
        engine.on_batch = reporter.batch_done
        best: Snapshot | None = None
        best_score = -np.inf
        last_good: Snapshot | None = None
        stale, stopped_early, scores = 0, False, None
        try:
            for _ in range(plan.epochs):
                record, scores = self._run_epoch(network, engine, plan, history, reporter)
                history.append(record)
                reporter.end(record)
                if engine.in_process:
                    last_good = Snapshot.take(network, len(history), scores)
                if self.early_stopping and scores is not None:
                    score = scores.max() if self._inference_mode() == "best" else scores[-1]
                    if score > best_score + self.tol:
                        best, best_score, stale = Snapshot.take(network, len(history), scores), score, 0
                    else:
                        stale += 1
                    if stale >= self.n_iter_no_change:
                        stopped_early = True
                        break
        except KeyboardInterrupt:
            reporter.close()
            if last_good is None:
                raise
            last_good.restore(network)
            del history[last_good.n_history :]
            warnings.warn(
                f"Training interrupted; keeping the model after epoch {history[-1]['epoch']}.",
                UserWarning,
                stacklevel=_USER_FRAME + 1,
            )
            return last_good.scores if best is None else self._restore_best(network, best)
        engine.sync()
        if best is not None:
            scores = self._restore_best(network, best)
            if not stopped_early:
                warnings.warn(
                    f"Stopped at max_iter={self.max_iter} epochs while the validation score was "
                    "still improving; consider a larger max_iter.",
                    ConvergenceWarning,
                    stacklevel=_USER_FRAME + 1,
                )
        return scores

    @staticmethod
    def _restore_best(network: torch.nn.Module, best: Snapshot) -> np.ndarray | None:
        best.restore(network)
        return best.scores

    def _run_epoch(
        self,
        network: torch.nn.Module,
        engine: Engine,
        plan: FitPlan,
        history: list[dict],
        reporter: EpochReporter,
    ) -> tuple[dict, np.ndarray | None]:
        """One epoch of training, then the validation scores; returns its history record."""
        reporter.start(len(history) + 1)
        start = time.perf_counter()
        network.train()
        batches = epoch_batches(len(plan.train_idx), plan.batch_size, plan.rng)
        busy_before = list(engine.busy_seconds)
        stats = engine.train_epoch(
            plan.X[plan.train_idx],
            plan.y[plan.train_idx],
            batches,
            plan.mask_fn,
            plan.augment,
            epoch=len(history),
        )
        elapsed = time.perf_counter() - start  # training only, without validation
        scores = None
        if plan.val_idx is not None or self.record_gradients:
            engine.sync()
        if plan.val_idx is not None:
            X_val = plan.X[plan.val_idx]
            logits = evaluate_logits(network, X_val, _PREDICT_BATCH, plan.device, plan.mask_fn)
            y_val = plan.y[plan.val_idx].numpy()
            scores = np.array([np.mean(lg.argmax(1) == y_val) for lg in logits])
        record = {
            "epoch": len(history) + 1,
            "time": elapsed,
            "stage_busy": [(b - a) / elapsed for a, b in zip(busy_before, engine.busy_seconds, strict=True)],
            "validation_scores": None if scores is None else [float(v) for v in scores],
            "blocks": [],
        }
        if self.record_gradients:
            record["encoder_gradients"] = engine.epoch_gradients()
        # One row per unit; accuracy only for units that are classifier heads (every block of
        # DeInfoReg; the final head of SCPL).
        heads = list(getattr(network, "head_units", range(network.n_heads)))
        for u in range(len(stats)):
            row = {name: float(stats[u, k]) for k, name in enumerate(network.stat_names)}
            head = heads.index(u) if u in heads else None
            row["train_accuracy"] = None if head is None else float(stats[u, -1])
            row["validation_accuracy"] = None if head is None or scores is None else float(scores[head])
            record["blocks"].append(row)
        return record, scores

    def _choose_inference_block(self, n_heads: int, scores: np.ndarray | None) -> int:
        if self._inference_mode() == "best" and scores is not None:
            return int(np.argmax(scores))
        return n_heads - 1

    # ----------------------------------------------------------------- prediction
    def _prediction_input(self, X) -> tuple[torch.Tensor, Callable]:
        """Checked rows of X as a tensor of the training sample shape, and the mask function."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64 if self._tokens else np.float32)
        if self._tokens:
            X = as_token_ids(X)
        return to_tensor(X, self.input_shape_), token_mask if self._tokens else no_mask

    def _logits(self, X, last: int | None) -> list[np.ndarray]:
        X_t, mask_fn = self._prediction_input(X)
        return evaluate_logits(self.network_, X_t, _PREDICT_BATCH, self.device_, mask_fn, last=last)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z.astype(np.float64))
    return e / e.sum(axis=1, keepdims=True)


def _probe(encoder: Encoder, in_shape: tuple[int, ...], tokens: bool) -> tuple[tuple[int, ...], int]:
    """Output shape of one sample and feature width, from the fresh encoder on a probe of 2."""
    probe = torch.full((2, *in_shape), 2, dtype=torch.long) if tokens else torch.zeros((2, *in_shape))
    mask = torch.ones((2, in_shape[0]), dtype=torch.bool) if encoder.sequence or tokens else None
    encoder.eval()
    with torch.no_grad():
        out = encoder(probe, mask)
        width = encoder.features(out, mask).shape[1]
    encoder.train()
    return tuple(out.shape[1:]), int(width)
