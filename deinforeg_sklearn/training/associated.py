"""Associated learning (AL) baseline network (Wu et al., 2022), one device.

Each block l has an encoder f_l on the input side, and on the label side a map g_l (Linear +
Sigmoid) from the previous target representation t_{l-1} (t_0 = one-hot label) to t_l. A bridge
b_l (Linear + Sigmoid) maps f_l's features into t_l's space, and an inverse inv_l (Linear +
Sigmoid) maps t_l back to t_{l-1}. A block's loss is MSE(b_l(f_l), t_l.detach()) +
MSE(inv_l(t_l), t_{l-1}). The block hands (f_l output, t_l) to the next one, detached.
Prediction runs f through every block, crosses the last bridge, and walks the inverses back down
to the label space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.base import Encoder
from deinforeg_sklearn.training.protocols import Activation
from deinforeg_sklearn.training.replicas import global_batch
from deinforeg_sklearn.training.stats import StepStats
from deinforeg_sklearn.training.step import MakeTrainer


class AssociatedBlock(nn.Module):
    """f, g, b and inv of one AL block.

    ``label_lr_scale`` is the label side's (g, b, inv) learning rate over the encoder's. The
    two need different rates: the sigmoid codes separate the classes slowly, so at the
    encoder's usual rate AL stays at chance for hundreds of steps; at the codes' rate a
    convolutional encoder with BatchNorm and ReLU can fall silent (every ReLU off for every
    input), and then no later step brings it back.
    """

    def __init__(
        self,
        encoder: Encoder,
        feature_width: int,
        previous_width: int,
        width: int,
        first: bool,
        label_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.label_lr_scale = label_lr_scale
        self.encoder = encoder
        self.bridge = nn.Sequential(nn.Linear(feature_width, width), nn.Sigmoid())
        self.g = nn.Sequential(nn.Linear(previous_width, width), nn.Sigmoid())
        self.inverse = nn.Sequential(nn.Linear(width, previous_width), nn.Sigmoid())
        self.first = first
        self.n_classes = previous_width  # meaningful for the first block: t_0 is one-hot

    def encoder_parameter_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.encoder.parameters())]

    def optimizer_groups(self) -> list[dict]:
        """The encoder at the base rate; g, the bridge and the inverse at ``label_lr_scale`` × it."""
        label_side = [*self.g.parameters(), *self.bridge.parameters(), *self.inverse.parameters()]
        return [
            {"params": list(self.encoder.parameters())},
            {"params": label_side, "lr_scale": self.label_lr_scale},
        ]

    def step_loss(
        self, h: Activation, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[Activation, torch.Tensor, StepStats]:
        if self.first:
            x, t_prev = h, F.one_hot(y, self.n_classes).float()
        else:
            x, t_prev = h
        f_out = self.encoder(x.detach(), mask)
        t = self.g(t_prev.detach())
        # with replicas: the means over the whole batch (training/replicas.py)
        bridged, target, rebuilt, previous = global_batch(
            self.bridge(self.encoder.features(f_out, mask)), t.detach(), self.inverse(t), t_prev.detach()
        )
        bridge = F.mse_loss(bridged.float(), target.float())
        reconstruction = F.mse_loss(rebuilt.float(), previous.float())
        loss = bridge + reconstruction
        # no correct count: a block alone cannot predict, only the whole chain of inverses can
        terms = {"bridge": bridge.detach(), "reconstruction": reconstruction.detach(), "loss": loss.detach()}
        return (f_out, t), loss, StepStats(terms)


class AssociatedNetwork(nn.Module):
    """AL blocks, one ``StepTrainer`` each; prediction walks the inverses back down.

    Its one head is the whole chain, no single unit: ``head_units`` is empty.
    """

    def __init__(
        self,
        blocks: Sequence[AssociatedBlock],
        make_trainer: MakeTrainer,
        output_shapes: Sequence[tuple[int, ...]],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.trainers = [make_trainer(block) for block in self.blocks]
        self.head_units: list[int] = []
        self.output_shapes = [tuple(s) for s in output_shapes]

    @property
    def n_heads(self) -> int:
        return 1

    def classifier_of(self, head: int) -> nn.Module:
        """The last block's bridge: AL's one head maps its features to the label side there."""
        return self.blocks[-1].bridge

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        h = x
        for block in self.blocks:
            h = block.encoder(h, mask)
        last_block = self.blocks[-1]
        # The label-side chain (small Linear + Sigmoid maps) runs in float64. In float32, a row's
        # sigmoid rounds differently on the vectorised path and on the tail of a tensor, so a
        # row's probabilities would move (~1e-7) with its position in the batch.
        s = _in_float64(last_block.bridge, last_block.encoder.features(h, mask))
        for block in reversed(self.blocks):
            s = _in_float64(block.inverse, s)
        # s holds per-class scores in (0, 1); as logits, softmax(log s) = s / sum(s)
        return [torch.log(s.clamp_min(1e-12))]

    def prepare_for_export(self) -> None:
        """Hold the label side in float64 (a served copy: the exporters trace no functional call).

        Its float64 parameters are exact copies of the float32 ones, so the chain computes what
        :func:`_in_float64` computes; training never sees such a copy.
        """
        for block in self.blocks:
            block.bridge.double()
            block.inverse.double()


def _in_float64(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` computed with float64 copies of its parameters (inference only)."""
    if all(t.dtype == torch.float64 for t in module.parameters()):  # a served copy, already float64
        return module(x.double())
    state = {name: t.double() if t.is_floating_point() else t for name, t in module.state_dict().items()}
    return torch.func.functional_call(module, state, (x.double(),))
