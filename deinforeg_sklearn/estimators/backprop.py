"""BackpropClassifier: the same blocks trained end to end by back-propagation (the baseline)."""

from __future__ import annotations

from deinforeg_sklearn.blocks.stack import EncoderStack
from deinforeg_sklearn.blocks.streams import Part
from deinforeg_sklearn.estimators._base import BaseDecoupledClassifier
from deinforeg_sklearn.estimators._docs import shared_parameter_docs
from deinforeg_sklearn.heads import build_classifier, build_projector
from deinforeg_sklearn.training import BackpropNetwork, TrainerFactory


@shared_parameter_docs
class BackpropClassifier(BaseDecoupledClassifier):
    """The blocks of a DeInfoReg model trained end to end with one head and cross-entropy.

    The head is the projector (if any) and the classifier of the last block, so the two
    estimators compare the same architecture; the only difference is the training signal.
    Parameters mean what they mean for :class:`DeInfoRegClassifier`, which this class shares
    except ``alpha``, ``loss_weights`` and ``inference`` (there is one classifier).

    Parameters
    ----------
    blocks : list of block specs, default=None
    projector : "auto", tuple of int or None, default=None
        As for :class:`DeInfoRegClassifier`, whose default ("auto") is not this one's.
    optimizer : {"adam", "sgd", "lars"}, default="adam"
    learning_rate : float, default=1e-3
    final_learning_rate : float, default=None
    <<lr_schedule>>
    <<warmup_epochs>>
    weight_decay : float, default=0.0
    batch_size : int or "auto", default="auto"
    max_iter : int, default=50
    validation_fraction : float, default=0.1
    early_stopping : bool, default=False
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    input_shape : tuple of int, default=None
    augment : {"basic", "strong"} or callable, default=None
    <<input_scale>>
    <<class_weight>>
    <<checkpoint>>
    <<num_workers>>
    devices : int, str, torch.device or a list of one list of them, default=None
        Where the model trains; None is the CPU; "auto" the first GPU if there is one, else
        the CPU (``devices_`` says which). One list of devices, e.g. ``[[0, 1]]`` or
        ``[["cpu", "cpu"]]``: data-parallel replicas over torch.distributed, each training on
        its share of every batch; the fit equals one device's (docs/distributed.md). CPU
        replicas that a probe predicts slower than one device warn, and run.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    warm_start : bool, default=False
    record_gradients : bool, default=False
    <<callbacks>>
    <<keep_last_epoch>>
    <<schedule>>
    <<precision_and_compile>>

    Attributes
    ----------
    classes_, n_features_in_, n_iter_, history_, block_scores_, inference_block_, network_,
    inference_, projector_
        As for :class:`DeInfoRegClassifier` (of ``projector_``, only the last block's entry is
        built: BP has one head); ``history_`` blocks hold ``cross_entropy``,
        ``loss``, ``train_accuracy`` and ``validation_accuracy`` for the single head.
    """

    def __init__(
        self,
        blocks=None,
        *,
        projector=None,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        final_learning_rate: float | None = None,
        lr_schedule="cosine",
        warmup_epochs: int = 0,
        weight_decay: float = 0.0,
        batch_size: int | str = "auto",
        max_iter: int = 50,
        validation_fraction: float | None = 0.1,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        input_shape: tuple[int, ...] | None = None,
        augment=None,
        class_weight=None,
        input_scale=None,
        checkpoint=None,
        num_workers=0,
        devices=None,
        random_state=None,
        verbose: int = 0,
        callbacks=None,
        warm_start: bool = False,
        record_gradients: bool = False,
        keep_last_epoch: bool = True,
        precision: str = "32",
        compile: bool = False,
        schedule: str = "auto",
    ) -> None:
        self.blocks = blocks
        self.projector = projector
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
        self.input_shape = input_shape
        self.augment = augment
        self.class_weight = class_weight
        self.input_scale = input_scale
        self.checkpoint = checkpoint
        self.num_workers = num_workers
        self.devices = devices
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.record_gradients = record_gradients
        self.keep_last_epoch = keep_last_epoch
        self.precision = precision
        self.compile = compile
        self.schedule = schedule

    def _build_network(
        self,
        stack: EncoderStack,
        n_classes: int,
        make_trainer: TrainerFactory,
        projectors: list[tuple[int, ...]],
    ) -> BackpropNetwork:
        with stack.stream(len(stack.encoders) - 1, Part.OUTPUT):
            head, out = build_projector(stack.widths[-1], projectors[-1])
            classifier = build_classifier(out, n_classes, stack.encoders[-1].sequence)
        return BackpropNetwork(stack.encoders, head, classifier, make_trainer, stack.output_shapes)
