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
from deinforeg_sklearn.training.step import StepTrainer

#: Stats vector of every SCPL unit (then the count of correct predictions).
SCPL_STATS = ("contrastive", "cross_entropy", "loss")


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

    def step_loss(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h_out = self.encoder(h.detach(), mask)
        loss = supervised_contrastive_loss(
            self.projector(self.encoder.features(h_out, mask)), y, self.temperature
        )
        zero = loss.detach() * 0.0
        return h_out, loss, torch.stack([loss.detach(), zero, loss.detach(), zero])


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

    def step_loss(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self(h.detach(), mask)
        loss = F.cross_entropy(logits, y)
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
            stats = torch.stack([loss.detach() * 0.0, loss.detach(), loss.detach(), correct])
        return logits, loss, stats


class SCPLNetwork(nn.Module):
    """SCPL blocks and their head; one ``StepTrainer`` per block and one for the head."""

    stat_names = SCPL_STATS

    def __init__(
        self,
        blocks: Sequence[ContrastiveBlock],
        head: ContrastiveHead,
        trainer_args: Callable[[nn.Module], dict],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.trainers = [StepTrainer(unit, **trainer_args(unit)) for unit in [*self.blocks, self.head]]
        #: Units whose rows in the stats table are classifier heads (index into ``trainers``).
        self.head_units = [len(self.blocks)]

    @property
    def n_heads(self) -> int:
        return 1

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        h = x
        for block in self.blocks:
            h = block(h, mask)
        return [self.head(h, mask)]
