"""Back-propagation baseline: the same encoders end to end, one head, cross-entropy only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.base import Encoder
from deinforeg_sklearn.training.replicas import global_batch
from deinforeg_sklearn.training.stats import StepStats
from deinforeg_sklearn.training.step import MakeTrainer


class BackpropNetwork(nn.Module):
    """Encoders chained, then projector + classifier on the last block's features.

    The whole network is one unit (its own single ``StepTrainer``) and one head.
    """

    def __init__(
        self,
        encoders: Sequence[Encoder],
        projector: nn.Module,
        classifier: nn.Module,
        make_trainer: MakeTrainer,
        output_shapes: Sequence[tuple[int, ...]],
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.projector = projector
        self.classifier = classifier
        self.head_units = [0]
        self.output_shapes = [tuple(s) for s in output_shapes]
        self.trainers = [make_trainer(self)]

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

    def optimizer_groups(self) -> list[dict]:
        """One group: the whole network learns at one rate."""
        return [{"params": list(self.parameters())}]

    def step_loss(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, StepStats]:
        logits = self(x, mask)
        logits_all, y_all = global_batch(logits, y)  # with replicas: the whole batch's mean
        loss = F.cross_entropy(logits_all.float(), y_all)  # float32 under mixed precision
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
        return logits, loss, StepStats({"cross_entropy": loss.detach(), "loss": loss.detach()}, correct)

    def classifier_of(self, head: int) -> nn.Module:
        """The one classifier (head 0), on the projector of the last block's features."""
        return self.classifier

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        return [self(x, mask)]
