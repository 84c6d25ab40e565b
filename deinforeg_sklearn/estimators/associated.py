"""ALClassifier: the associated-learning decoupled baseline of the paper's comparisons."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

from sklearn.utils._param_validation import Interval

from deinforeg_sklearn.blocks.stack import EncoderStack
from deinforeg_sklearn.estimators._base import BaseDecoupledClassifier, FitConfig
from deinforeg_sklearn.estimators._docs import shared_parameter_docs
from deinforeg_sklearn.training import TrainerFactory
from deinforeg_sklearn.training.associated import AssociatedBlock, AssociatedNetwork


@shared_parameter_docs
class ALClassifier(BaseDecoupledClassifier):
    """Associated learning (AL): each block learns to map its input onto a label-side code.

    Block l has an encoder f_l, a label-side map g_l from the previous target code (the one-hot
    label for the first block), a bridge from f_l's features into g_l's space, and an inverse
    back to the previous code. Its loss is MSE(bridge, g_l(t).detach()) + MSE(inverse(g_l(t)), t);
    no gradient crosses a block boundary. Prediction runs the encoders, crosses the last
    bridge, and walks the inverses back to the label space. It trains on one device, on inputs
    that are not token ids (the label-side code travels with the activations).
    Other parameters mean what they mean for :class:`DeInfoRegClassifier`.

    Parameters
    ----------
    blocks : list of block specs, default=None
    label_width : int, default=32
        Width of every label-side code t_l (and of each bridge's output).
    optimizer : {"adam", "sgd", "lars"}, default="adam"
    learning_rate : float, default=1e-3
        Initial learning rate of the encoders f_l.
    label_learning_rate : float, default=1e-2
        Initial learning rate of the label side (g_l, the bridges and the inverses). The sigmoid
        codes learn slowly at 1e-3 (digits, 4 x Dense(256): 0.23 test accuracy at 1e-3 with
        128-wide codes). At 1e-2 for everything, a VGG-like encoder with BatchNorm can fall
        silent early and stay at chance (Fashion-MNIST, batch 64: 2 of 3 seeds).
    final_learning_rate : float, default=None
        Where the cosine schedule of ``learning_rate`` ends; the label side's rate follows in
        proportion (it stays ``label_learning_rate / learning_rate`` times the encoders').
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
    <<backward>>
    <<schedule>>
    <<precision_and_compile>>

    Attributes
    ----------
    classes_, n_features_in_, n_iter_, history_, block_scores_, inference_block_, network_, inference_
        As for :class:`DeInfoRegClassifier`. ``history_`` rows hold each block's ``bridge``
        and ``reconstruction`` losses; the validation accuracy of the whole chain is in each
        record's ``validation_scores`` and in ``block_scores_``.
    """

    _parameter_constraints: ClassVar[dict] = {
        **BaseDecoupledClassifier._parameter_constraints,
        "label_width": [Interval(Integral, 1, None, closed="left")],
        "label_learning_rate": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        blocks=None,
        *,
        label_width: int = 32,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        label_learning_rate: float = 1e-2,
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
        backward: str = "per_block",
    ) -> None:
        self.blocks = blocks
        self.label_width = label_width
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.label_learning_rate = label_learning_rate
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
        self.backward = backward

    def _backward_mode(self) -> str:
        return self.backward

    def _check_config(self, external_validation: bool = False) -> FitConfig:
        config = super()._check_config(external_validation)
        if config.specs[0].accepts == "tokens":
            raise ValueError(
                "ALClassifier does not read token ids yet (its label-side code travels with the "
                "activations): use DeInfoRegClassifier, SCPLClassifier or BackpropClassifier for text."
            )
        return config

    def _build_network(
        self,
        stack: EncoderStack,
        n_classes: int,
        make_trainer: TrainerFactory,
        projectors: list[tuple[int, ...]],
    ) -> AssociatedNetwork:
        blocks = []
        previous = n_classes
        scale = float(self.label_learning_rate) / float(self.learning_rate)
        for i, (encoder, width) in enumerate(zip(stack.encoders, stack.widths, strict=True)):
            with stack.stream(i):
                block = AssociatedBlock(
                    encoder, width, previous, int(self.label_width), first=i == 0, label_lr_scale=scale
                )
            blocks.append(block)
            previous = int(self.label_width)
        return AssociatedNetwork(blocks, make_trainer, stack.output_shapes)
