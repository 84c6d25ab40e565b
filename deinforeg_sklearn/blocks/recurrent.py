"""Recurrent block."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder, check_positive_ints, masked_mean


class LSTMEncoder(Encoder):
    sequence = True

    def __init__(self, in_features: int, hidden: int, bidirectional: bool, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            in_features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional
        )

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return self.lstm(h)[0]
        # Packing keeps padding out of the recurrence (the backward direction would otherwise
        # start on pads). Sequences are right-padded; an empty one still runs one step.
        lengths = mask.sum(dim=1).clamp_min(1).cpu()
        packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])[0]

    def features(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return masked_mean(h, mask)


@dataclass(frozen=True)
class LSTM(BlockSpec):
    """(Bi)directional LSTM over a sequence; the heads read the mean over valid positions.

    Parameters
    ----------
    hidden : int, default=300
        Hidden size per direction (the output width is doubled when bidirectional).
    bidirectional : bool, default=True
    layers : int, default=1
        Stacked LSTM layers inside the block.
    """

    hidden: int = 300
    bidirectional: bool = True
    layers: int = 1
    accepts = "sequence"

    def __post_init__(self) -> None:
        check_positive_ints(self, "hidden", "layers")

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        self.check_input(input_shape, context.position)
        return LSTMEncoder(input_shape[1], self.hidden, self.bidirectional, self.layers)
