"""ResNet-style block: a stage of basic blocks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder, check_positive_ints


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut (He et al., 2016)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResidualEncoder(Encoder):
    def __init__(self, in_channels: int, channels: int, n_blocks: int, stride: int) -> None:
        super().__init__()
        blocks = [BasicBlock(in_channels, channels, stride)]
        blocks += [BasicBlock(channels, channels, 1) for _ in range(n_blocks - 1)]
        self.net = nn.Sequential(*blocks)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(h)

    def features(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # Global average pooling, as ResNet's own head: flattening a 64 x 32 x 32 map would
        # give the projector 65,536 inputs.
        return h.mean(dim=(2, 3))


@dataclass(frozen=True)
class Residual(BlockSpec):
    """A ResNet stage: ``n_blocks`` basic blocks, the first with ``stride``.

    The heads read the output globally average-pooled to (N, channels).

    Parameters
    ----------
    channels : int
        Output channels.
    n_blocks : int, default=2
        Basic blocks in the stage (ResNet-18 has 2 per stage).
    stride : int, default=1
        Stride of the first basic block (2 halves the resolution).
    """

    channels: int
    n_blocks: int = 2
    stride: int = 1
    accepts = "image"

    def __post_init__(self) -> None:
        check_positive_ints(self, "channels", "n_blocks", "stride")

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        self.check_input(input_shape, context.position)
        return ResidualEncoder(input_shape[0], self.channels, self.n_blocks, self.stride)
