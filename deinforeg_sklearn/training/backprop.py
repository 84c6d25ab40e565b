"""Back-propagation baseline: the same encoders end to end, one head, cross-entropy only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.base import Encoder
from deinforeg_sklearn.training.step import StepTrainer

BACKPROP_STATS = ("cross_entropy", "loss")


class BackpropNetwork(nn.Module):
    """Encoders chained, then projector + classifier on the last block's features."""

    stat_names = BACKPROP_STATS

    def __init__(
        self,
        encoders: Sequence[Encoder],
        projector: nn.Module,
        classifier: nn.Module,
        trainer_args: Callable[[nn.Module], dict],
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.projector = projector
        self.classifier = classifier
        self.trainers = [StepTrainer(self, **trainer_args(self))]

    @property
    def n_heads(self) -> int:
        return 1

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for encoder in self.encoders:
            h = encoder(h, mask)
        return self.classifier(self.projector(self.encoders[-1].features(h, mask)))

    def encoder_parameter_groups(self) -> list[list[nn.Parameter]]:
        """One group per block's encoder (for gradient recording)."""
        return [list(e.parameters()) for e in self.encoders]

    def step_loss(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self(x, mask)
        loss = F.cross_entropy(logits, y)
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
            stats = torch.stack([loss.detach(), loss.detach(), correct])
        return logits, loss, stats

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        return [self(x, mask)]
