"""DeInfoRegClassifier: blocks trained by their own information-regularisation loss."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted

from deinforeg_sklearn.blocks.stack import EncoderStack
from deinforeg_sklearn.engines.setup import EngineRequest
from deinforeg_sklearn.estimators._auto import resolve_inference
from deinforeg_sklearn.estimators._base import BaseDecoupledClassifier, FitConfig
from deinforeg_sklearn.estimators._docs import shared_parameter_docs
from deinforeg_sklearn.heads import build_classifier, build_projector
from deinforeg_sklearn.inference import adaptive_probabilities
from deinforeg_sklearn.training import DecoupledNetwork, LocalBlock, LossConfig, TrainerFactory


@shared_parameter_docs
class DeInfoRegClassifier(BaseDecoupledClassifier):
    """Decoupled supervised learning with information regularisation (DeInfoReg).

    Every block is an encoder, a projector and a classifier trained by its own loss, the
    variance + invariance + covariance local loss plus ``alpha`` x cross-entropy. Gradients
    never cross a block boundary: block l reads block l-1's output detached.

    Parameters
    ----------
    blocks : list of block specs, default=None
        The network, first block first (see :mod:`deinforeg_sklearn.blocks`); a callable
        returning an ``nn.Module`` is a custom block. None means ``[Dense(128), Dense(128)]``.
    projector : "auto", tuple of int or None, default="auto"
        Widths of each block's projector MLP (hidden layers Linear + BatchNorm + ReLU, last
        Linear); None is the identity. "auto", chosen on validation data (see
        docs/results/defaults.md): one layer as wide as the block's features, at most 256, on
        dense, conv, residual and custom blocks; the identity on sequence blocks (LSTM,
        Transformer), the authors' text setting. ``projector_`` says what each block got. The
        paper's vision runs use (2048, 2048, 2048).
    alpha : float, default=1.0
        Weight of the cross-entropy term in each block's loss (paper Eq. 9). The paper's 1e-3
        learns slowly on dense and conv blocks (docs/results/defaults.md); 1.0 was chosen on
        validation data.
    loss_weights : tuple of 3 floats, default=(1.0, 1.0, 1.0)
        Weights of the variance, invariance and covariance terms.
    optimizer : {"adam", "sgd", "lars"}, default="adam"
        One optimiser per block. "sgd" uses momentum 0.9; "lars" is the authors' vision choice.
    learning_rate : float, default=3e-3
    final_learning_rate : float, default=0.0
        Under ``lr_schedule="cosine"``, the learning rate follows a cosine per step from
        ``learning_rate`` to this over ``max_iter`` epochs; None keeps it constant. The
        defaults (3e-3 decaying to 0) were chosen on validation data
        (docs/results/defaults.md); BackpropClassifier keeps a constant 1e-3.
    <<lr_schedule>>
    <<warmup_epochs>>
    weight_decay : float, default=0.0
    batch_size : int or "auto", default="auto"
        "auto" is ``min(128, n_train)``; an int larger than the training data is clipped to it
        with a warning. A last batch of a single sample is merged into the previous batch.
    max_iter : int, default=50
        Epochs.
    validation_fraction : float, default=0.1
        Share of the training data held out (stratified) to score each block
        (``block_scores_``, history), for ``inference="best"`` and early stopping. 0 or None:
        no hold-out.
    early_stopping : bool, default=False
        Stop when the validation accuracy of the inference block has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, and restore the best epoch's weights.
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    inference : {"auto", "last", "best", "adaptive"}, default="auto"
        Which block's classifier predicts: the last; the one with the best validation
        accuracy; or, per sample, the first block that agrees with the blocks before it
        (``patience``, ``exit_threshold``; see :meth:`predict_exit_depth`); "best" breaks
        ties towards the deeper block. "auto" is "best"
        when there is a validation split (``validation_fraction`` > 0), else "last";
        ``inference_`` says which was used.
    patience : int, default=1
        Adaptive inference: consecutive agreeing blocks a sample needs to exit.
    exit_threshold : float, default=0.8
        Adaptive inference: a block agrees with the previous one when both predict the same class
        and the cosine similarity of their class probabilities exceeds this (above 1: never).
    input_shape : tuple of int, default=None
        Shape of one sample, e.g. (1, 8, 8): flat rows are reshaped to it before the first
        block, so scalers and other transformers can precede the estimator in a Pipeline.
    augment : {"basic", "strong"} or callable, default=None
        Image augmentation of the training rows (never at predict), drawn per image.
        "basic": random crop with padding + horizontal flip; "strong": basic + colour jitter
        + random grayscale (needs torchvision), within the training data's value range, so
        0-255 or standardised images keep their scale; a callable (e.g. a torchvision v2
        transform) is applied to each (C, H, W) image; ``deinforeg_sklearn.data.PerBatch(fn)``
        hands ``fn`` the whole (N, C, H, W) batch when it draws per sample itself.
    <<input_scale>>
    <<class_weight>>
    <<checkpoint>>
    <<num_workers>>
    devices : int, str, torch.device or list of them, default=None
        Where the model trains; None is the CPU. A list makes a pipeline with one stage per
        entry (e.g. ``[0, 1]`` = cuda:0 and cuda:1, ``["cpu", "cpu"]`` = two CPU workers):
        block l trains on batch t+1 while block l+1 trains on batch t. Results equal those of
        the one-device run (see docs/pipeline.md). "auto": one stage per visible GPU (up to
        the number of blocks); without CUDA, one CPU stage per core when a probe step of each
        block predicts that the pipeline shortens the fit, else one device. Explicit CPU
        stages under ``engine="auto"`` follow the same probe: stages predicted to be slower
        than one device warn and train on one device. ``devices_`` says what was chosen.
        A list of lists gives every stage data-parallel replicas (outer = stages, inner = the
        replicas of that stage, e.g. ``[[0, 1], [2, 3]]`` or ``[["cpu", "cpu"]]``): each
        replica trains on its share of every batch (``batch_size`` stays the global batch),
        the local loss runs over the global batch, and the fit equals one device's
        (docs/distributed.md). Replicas always run as processes; CPU replicas that a probe
        predicts slower than one device warn, and run.
    placement : list of int, default=None
        Blocks per stage, e.g. ``[1, 3]``; None balances the stages by the measured cost of a
        block step on a probe batch.
    engine : {"auto", "threads", "processes"}, default="auto"
        How stages run concurrently: threads in this process, or one process per stage over
        torch.distributed. "auto" picks by device type and step time, takes processes when
        stages that share a device draw random numbers, such as dropout, and merges CPU
        stages that would be slower than one device; a named engine always runs the stages
        (see docs/pipeline.md).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split, batch order, augmentation and dropout.
        Each block draws its initial weights from a stream of its own, so the first k blocks of a
        deeper network start from the k-block network's weights (and, without dropout or
        augmentation, are trained to them): comparing depths is a paired comparison.
    verbose : int, default=0
        0: silent. 1: a progress bar per epoch, ending with each block's loss and accuracy, on a
        terminal; one plain line per epoch otherwise (stderr).
    warm_start : bool, default=False
        Continue from the fitted model on the next ``fit`` instead of starting anew.
    record_gradients : bool, default=False
        Record, per epoch, the mean absolute gradient of each block's encoder parameters
        (``history_[e]["encoder_gradients"]``, the quantity of the paper's Figure 3).
    <<callbacks>>
    <<keep_last_epoch>>
    <<backward>>
    <<schedule>>
    <<precision_and_compile>>

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    n_iter_ : int
        Epochs trained since the model was created.
    history_ : list of dict
        One dict per epoch: ``epoch``, ``time`` (seconds of training, without validation),
        ``stage_busy`` (share of that time each pipeline stage spent in block steps) and
        ``blocks``, a list with one dict
        per block holding ``variance``, ``invariance``, ``covariance``, ``cross_entropy``,
        ``loss`` (training means), ``train_accuracy`` and ``validation_accuracy`` (None
        without a validation split).
    block_scores_ : ndarray of shape (n_blocks,) or None
        Validation accuracy of each block's classifier after training.
    inference_block_ : int
        Index of the block whose classifier ``predict`` uses.
    inference_ : {"last", "best", "adaptive"}
        The inference mode of this fit (``inference`` with "auto" resolved).
    projector_ : list of tuple of int
        Each block's projector widths (``()``: the identity), ``projector`` resolved.
    network_ : torch.nn.Module
        The trained network (``network_.blocks[l]`` holds encoder, projector, classifier).
    devices_ : list of torch.device
        The device of each pipeline stage the fit used (one entry: no pipeline).
    stage_sizes_ : list of int
        Blocks per stage.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from deinforeg_sklearn import DeInfoRegClassifier
    >>> from deinforeg_sklearn.blocks import Dense
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = DeInfoRegClassifier(blocks=[Dense(64), Dense(64)], max_iter=5, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.8
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseDecoupledClassifier._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
        "loss_weights": [tuple, list],
        "inference": [StrOptions({"auto", "last", "best", "adaptive"})],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "exit_threshold": [Interval(Real, -1, None, closed="both")],
        "placement": [list, tuple, None],
        "engine": [StrOptions({"auto", "threads", "processes"})],
    }

    def __init__(
        self,
        blocks=None,
        *,
        projector="auto",
        alpha: float = 1.0,
        loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        optimizer: str = "adam",
        learning_rate: float = 3e-3,
        final_learning_rate: float | None = 0.0,
        lr_schedule="cosine",
        warmup_epochs: int = 0,
        weight_decay: float = 0.0,
        batch_size: int | str = "auto",
        max_iter: int = 50,
        validation_fraction: float | None = 0.1,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        inference: str = "auto",
        patience: int = 1,
        exit_threshold: float = 0.8,
        input_shape: tuple[int, ...] | None = None,
        augment=None,
        class_weight=None,
        input_scale=None,
        checkpoint=None,
        num_workers=0,
        devices=None,
        placement=None,
        engine: str = "auto",
        random_state=None,
        verbose: int = 0,
        callbacks=None,
        warm_start: bool = False,
        record_gradients: bool = False,
        keep_last_epoch: bool = True,
        precision: str = "32",
        compile: bool = False,
        schedule: str = "auto",
        backward: str = "per_block",
    ) -> None:
        self.blocks = blocks
        self.projector = projector
        self.alpha = alpha
        self.loss_weights = loss_weights
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.final_learning_rate = final_learning_rate
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.inference = inference
        self.patience = patience
        self.exit_threshold = exit_threshold
        self.input_shape = input_shape
        self.augment = augment
        self.class_weight = class_weight
        self.input_scale = input_scale
        self.checkpoint = checkpoint
        self.num_workers = num_workers
        self.devices = devices
        self.placement = placement
        self.engine = engine
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.record_gradients = record_gradients
        self.keep_last_epoch = keep_last_epoch
        self.precision = precision
        self.compile = compile
        self.schedule = schedule
        self.backward = backward

    def _backward_mode(self) -> str:
        return self.backward

    def _inference_mode(self, validation: bool) -> str:
        return resolve_inference(self.inference, validation)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities from the inference block's classifier (per sample if adaptive).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        # "adaptive" is read here, not at fit: it only changes prediction (set_params suffices).
        if self.inference != "adaptive":
            return super().predict_proba(X)
        return self._adaptive(X)[0]

    def predict_exit_depth(self, X) -> np.ndarray:
        """Number of blocks each sample passes through before its prediction (1..n_blocks).

        With ``inference="adaptive"`` this is each sample's exit block; otherwise it is the
        inference block for every sample. ``predict_exit_depth(X).mean()`` is the mean depth.
        """
        if self.inference == "adaptive":
            return self._adaptive(X)[1]
        check_is_fitted(self)
        return np.full(_num_samples(X), self.inference_block_ + 1)

    def _adaptive(self, X) -> tuple[np.ndarray, np.ndarray]:
        X_t, mask_fn = self._prediction_input(X)
        return adaptive_probabilities(self.network_, X_t, 1024, mask_fn, self.patience, self.exit_threshold)

    def _engine_request(self, grid: list[list[torch.device]], n_blocks: int, auto: bool) -> EngineRequest:
        return EngineRequest.check(
            [stage[0] for stage in grid],
            n_blocks,
            self.placement,
            self.engine,
            auto,
            self.schedule,
            replica_devices=grid,
        )

    def _check_config(self, external_validation: bool = False) -> FitConfig:
        weights = tuple(self.loss_weights)
        if len(weights) != 3 or any(
            not isinstance(w, (int, float, np.floating, np.integer)) or isinstance(w, bool) or w < 0
            for w in weights
        ):
            raise ValueError(
                "loss_weights must be 3 non-negative numbers (variance, invariance, covariance), "
                f"got {self.loss_weights!r}."
            )
        return super()._check_config(external_validation)

    def _build_network(
        self,
        stack: EncoderStack,
        n_classes: int,
        make_trainer: TrainerFactory,
        projectors: list[tuple[int, ...]],
    ) -> DecoupledNetwork:
        config = LossConfig(n_classes, float(self.alpha), tuple(float(w) for w in self.loss_weights))
        blocks = []
        for i, (encoder, width, projector) in enumerate(
            zip(stack.encoders, stack.widths, projectors, strict=True)
        ):
            with stack.stream(i):
                head, out = build_projector(width, projector)
                classifier = build_classifier(out, n_classes, encoder.sequence)
            blocks.append(LocalBlock(encoder, head, classifier, config))
        return DecoupledNetwork(blocks, make_trainer, stack.output_shapes)
