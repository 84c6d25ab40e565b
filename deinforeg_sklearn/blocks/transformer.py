"""Transformer encoder block."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder, check_positive_ints, masked_mean


def sinusoidal_positions(steps: int, dim: int) -> torch.Tensor:
    """The fixed (steps, dim) position encoding of Vaswani et al. (2017)."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(steps, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


class TransformerEncoderBlock(Encoder):
    sequence = True

    def __init__(
        self,
        in_features: int,
        steps: int,
        d_model: int,
        heads: int,
        layers: int,
        feedforward: int,
        dropout: float,
        add_positions: bool,
    ) -> None:
        super().__init__()
        self.input = nn.Linear(in_features, d_model) if in_features != d_model else nn.Identity()
        self.register_buffer("positions", sinusoidal_positions(steps, d_model) if add_positions else None)
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.input(h)
        if self.positions is not None:
            x = x + self.positions[: x.shape[1]]
        padding = None
        if mask is not None:
            padding = ~mask.bool()
            # A row with every position masked makes attention softmax over nothing (NaN):
            # let an empty document attend to its first (padding) position instead.
            padding[:, 0] &= ~padding.all(dim=1)
        return self.encoder(x, src_key_padding_mask=padding)

    def features(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return masked_mean(h, mask)


@dataclass(frozen=True)
class Transformer(BlockSpec):
    """``layers`` Transformer encoder layers (self-attention + add&norm + feed-forward + add&norm).

    Input of another width is first projected linearly to ``d_model``. A fixed sinusoidal
    position encoding is added when the previous block is not a Transformer (e.g. after an
    Embedding). The heads read the mean over valid (non-padding) positions.

    Parameters
    ----------
    d_model : int
        Model width.
    heads : int, default=4
        Attention heads; must divide ``d_model``.
    layers : int, default=3
        Encoder layers in this block (3 in the paper).
    feedforward : int or None, default=None
        Hidden width of the feed-forward sublayer; None means ``4 * d_model``.
    dropout : float, default=0.1
    """

    d_model: int
    heads: int = 4
    layers: int = 3
    feedforward: int | None = None
    dropout: float = 0.1
    accepts = "sequence"

    def __post_init__(self) -> None:
        check_positive_ints(self, "d_model", "heads", "layers")
        if self.d_model % self.heads:
            raise ValueError(f"Transformer heads={self.heads} must divide d_model={self.d_model}.")

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        self.check_input(input_shape, context.position)
        return TransformerEncoderBlock(
            in_features=input_shape[1],
            steps=input_shape[0],
            d_model=self.d_model,
            heads=self.heads,
            layers=self.layers,
            feedforward=self.feedforward or 4 * self.d_model,
            dropout=self.dropout,
            add_positions=not isinstance(context.previous, Transformer),
        )
