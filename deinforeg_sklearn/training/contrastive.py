"""SCPL baseline network: blocks trained by a supervised contrastive loss, then a separate head.

Each block is an encoder and a projector trained by the supervised contrastive loss of its
projector output (no classifier per block). A final head, the classifier, is trained by
cross-entropy on the last block's output, detached. It is one more unit after the blocks, so
engines schedule it like any block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.base import Encoder
from deinforeg_sklearn.losses import supervised_contrastive_loss
from deinforeg_sklearn.training.replicas import global_batch
from deinforeg_sklearn.training.stats import StepStats
from deinforeg_sklearn.training.step import MakeTrainer

#: Loss terms of every SCPL unit (the head also reports its correct count).
SCPL_STATS = ("contrastive", "cross_entropy", "loss")


def _scpl_terms(contrastive: torch.Tensor, cross_entropy: torch.Tensor, loss: torch.Tensor) -> dict:
    return dict(zip(SCPL_STATS, (contrastive.detach(), cross_entropy.detach(), loss.detach()), strict=True))


class ContrastiveBlock(nn.Module):
    """Encoder + projector of one SCPL block, trained by the supervised contrastive loss."""

    def __init__(self, encoder: Encoder, projector: nn.Module, temperature: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.temperature = temperature

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(h, mask)

    def encoder_parameter_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.encoder.parameters())]

    def optimizer_groups(self) -> list[dict]:
        return [{"params": list(self.parameters())}]

    def step_loss(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, StepStats]:
        h_out = self.encoder(h.detach(), mask)
        z = self.projector(self.encoder.features(h_out, mask))
        z_all, y_all = global_batch(z, y)  # with replicas: the contrast over the whole batch
        loss = supervised_contrastive_loss(z_all, y_all, self.temperature)
        # no classifier of its own: no correct count
        return h_out, loss, StepStats(_scpl_terms(loss, loss * 0.0, loss))


class ContrastiveHead(nn.Module):
    """The final classifier of SCPL, trained on the last block's detached output."""

    def __init__(
        self, features: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], classifier: nn.Module
    ) -> None:
        super().__init__()
        # A plain reference to the last encoder's ``features`` (stateless pooling / flattening),
        # not a submodule: the encoder's parameters belong to its block alone.
        self.features = features
        self.classifier = classifier

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.features(h, mask))

    def encoder_parameter_groups(self) -> list[list[nn.Parameter]]:
        return []

    def optimizer_groups(self) -> list[dict]:
        return [{"params": list(self.parameters())}]

    def step_loss(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, StepStats]:
        logits = self(h.detach(), mask)
        logits_all, y_all = global_batch(logits, y)  # with replicas: the whole batch's mean
        loss = F.cross_entropy(logits_all.float(), y_all)  # float32 under mixed precision
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
        return logits, loss, StepStats(_scpl_terms(loss * 0.0, loss, loss), correct)


class SCPLNetwork(nn.Module):
    """SCPL blocks and their head; one ``StepTrainer`` per block and one for the head.

    The units are the blocks, then the head; the head (the last unit) is the only classifier.
    """

    def __init__(
        self,
        blocks: Sequence[ContrastiveBlock],
        head: ContrastiveHead,
        make_trainer: MakeTrainer,
        output_shapes: Sequence[tuple[int, ...]],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.trainers = [make_trainer(unit) for unit in [*self.blocks, self.head]]
        self.head_units = [len(self.blocks)]
        self.output_shapes = [tuple(s) for s in output_shapes]

    @property
    def n_heads(self) -> int:
        return 1

    def classifier_of(self, head: int) -> nn.Module:
        """The head's classifier (SCPL has one head, after the last block)."""
        return self.head.classifier

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        h = x
        for block in self.blocks:
            h = block(h, mask)
        return [self.head(h, mask)]
