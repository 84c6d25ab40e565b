"""Fully connected block."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder, check_positive_ints


class DenseEncoder(Encoder):
    def __init__(self, in_features: int, units: int, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_features, units)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(units))
        layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(h)


@dataclass(frozen=True)
class Dense(BlockSpec):
    """Linear layer + BatchNorm1d + ReLU. Multi-dimensional input is flattened first.

    Parameters
    ----------
    units : int
        Output width.
    batch_norm : bool, default=True
        Put a BatchNorm1d between the linear layer and the ReLU.
    """

    units: int
    batch_norm: bool = True

    def __post_init__(self) -> None:
        check_positive_ints(self, "units")

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        return DenseEncoder(math.prod(input_shape), self.units, self.batch_norm)
