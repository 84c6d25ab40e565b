"""VGG-style convolutional block."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder


class ConvEncoder(Encoder):
    def __init__(self, in_channels: int, channels: tuple[int | str, ...], head_pool: int | None) -> None:
        super().__init__()
        self.head_pool = nn.AdaptiveAvgPool2d(head_pool) if head_pool else nn.Identity()
        layers: list[nn.Module] = []
        for item in channels:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1),
                    nn.BatchNorm2d(int(item)),
                    nn.ReLU(),
                ]
                in_channels = int(item)
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(h)

    def features(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.head_pool(h).flatten(1)


@dataclass(frozen=True)
class Conv(BlockSpec):
    """VGG-style stack: each int is Conv3x3 (padding 1) + BatchNorm2d + ReLU, "M" is 2x2 max-pool.

    The heads read the output feature map flattened, as in the paper's VGG, or first
    average-pooled to ``head_pool x head_pool``: the covariance term of the local loss costs
    D^2 per sample for D features, so a 128 x 16 x 16 map (D = 32,768) is expensive to
    flatten, while ``head_pool=2`` gives D = 512.

    Parameters
    ----------
    channels : sequence of int or "M"
        For example ``(128, 128, 128, 256, "M")``.
    head_pool : int, default=None
        Side of the average-pooled map the heads read; None flattens the whole map.
    """

    channels: tuple[int | str, ...]
    head_pool: int | None = None
    accepts = "image"

    def __post_init__(self) -> None:
        channels = (self.channels,) if isinstance(self.channels, int) else tuple(self.channels)
        if not channels or any(not (c == "M" or (isinstance(c, int) and c > 0)) for c in channels):
            raise ValueError(f"Conv(channels) needs positive ints and 'M' (max-pool), got {self.channels!r}.")
        object.__setattr__(self, "channels", channels)
        if self.head_pool is not None and (not isinstance(self.head_pool, int) or self.head_pool < 1):
            raise ValueError(f"Conv(head_pool) needs None or a positive int, got {self.head_pool!r}.")

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        self.check_input(input_shape, context.position)
        pools = sum(c == "M" for c in self.channels)
        if min(input_shape[1:]) < 2**pools:
            raise ValueError(
                f"Block {context.position} (Conv) max-pools {pools} times, which needs images of at "
                f"least {2**pools} x {2**pools}; it receives {input_shape[1]} x {input_shape[2]}."
            )
        return ConvEncoder(input_shape[0], self.channels, self.head_pool)
