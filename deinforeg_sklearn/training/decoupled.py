"""DeInfoReg network: blocks of encoder + projector + classifier, each with its own loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.base import Encoder
from deinforeg_sklearn.losses import info_regularization_loss
from deinforeg_sklearn.training.replicas import global_batch
from deinforeg_sklearn.training.stats import StepStats
from deinforeg_sklearn.training.step import LossConfig, MakeTrainer

#: Loss terms a DeInfoReg block step reports (its classifier also reports its correct count).
DECOUPLED_STATS = ("variance", "invariance", "covariance", "cross_entropy", "loss")


class LocalBlock(nn.Module):
    """One DeInfoReg block: ``E_l``, ``P_l`` and ``C_l`` with the block loss of Eq. 9.

    The input is detached on entry, so the loss of this block reaches only its own encoder,
    projector and classifier.
    """

    def __init__(
        self, encoder: Encoder, projector: nn.Module, classifier: nn.Module, config: LossConfig
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.classifier = classifier
        self.config = config

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(h, mask)

    def encoder_parameter_groups(self) -> list[list[nn.Parameter]]:
        """One group: this block's encoder (for gradient recording)."""
        return [list(self.encoder.parameters())]

    def optimizer_groups(self) -> list[dict]:
        """One group: encoder, projector and classifier learn at the same rate."""
        return [{"params": list(self.parameters())}]

    def logits(self, h_out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Class scores of this block's classifier for the block output ``h_out``."""
        return self.classifier(self.projector(self.encoder.features(h_out, mask)))

    def block_loss(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Forward one batch: ``(h_out, loss, parts, logits)``, with ``h_out`` still attached.

        ``logits`` are this replica's rows; the loss is that of the global batch.
        """
        h_out = self.encoder(h.detach(), mask)
        z = self.projector(self.encoder.features(h_out, mask))
        logits = self.classifier(z)
        # with data-parallel replicas, the loss of the whole batch (training/replicas.py)
        z_all, logits_all, y_all = global_batch(z, logits, y)
        local, parts = info_regularization_loss(
            z_all, y_all, self.config.n_classes, self.config.weights, return_parts=True
        )
        ce = F.cross_entropy(logits_all.float(), y_all)  # float32 under mixed precision
        parts["cross_entropy"] = ce
        return h_out, local + self.config.alpha * ce, parts, logits

    def step_loss(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, StepStats]:
        h_out, loss, parts, logits = self.block_loss(h, y, mask)
        with torch.no_grad():
            terms = {k: parts[k].detach() for k in DECOUPLED_STATS[:4]}
            terms["loss"] = loss.detach()
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
        return h_out, loss, StepStats(terms, correct)


class DecoupledNetwork(nn.Module):
    """The blocks of a DeInfoReg model and one ``StepTrainer`` per block (a ``UnitNetwork``).

    Every block is a unit and a head: unit l's stats are head l's.
    """

    def __init__(
        self,
        blocks: Sequence[LocalBlock],
        make_trainer: MakeTrainer,
        output_shapes: Sequence[tuple[int, ...]],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.trainers = [make_trainer(block) for block in self.blocks]
        self.head_units = list(range(len(self.blocks)))
        self.output_shapes = [tuple(s) for s in output_shapes]

    @property
    def n_heads(self) -> int:
        return len(self.blocks)

    def classifier_of(self, head: int) -> nn.Module:
        """The classifier of head ``head``: what it reads are that block's features."""
        return self.blocks[head].classifier

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        """Logits of every block's classifier, from block 0 to ``last`` (inclusive)."""
        out = []
        h = x
        for block in self.blocks[: None if last is None else last + 1]:
            device = next(block.parameters()).device  # blocks may sit on different devices
            h = h.to(device, non_blocking=True)
            mask = None if mask is None else mask.to(device, non_blocking=True)
            h = block(h, mask)
            out.append(block.logits(h, mask))
        return out
