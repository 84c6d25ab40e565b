"""What every block spec and every built encoder share.

A *spec* is a small frozen value (scikit-learn clones, compares and pickles it); ``build``
turns it into a torch module once the input shape is known, inside ``fit``.

An *encoder* maps the previous block's output ``h`` (and the padding mask of a token input,
or None) to this block's output, which the next block receives detached. ``features`` turns
that output into the (N, D) rows the block's projector and classifier read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


class Encoder(nn.Module):
    """Base of the modules that blocks build: ``forward(h, mask)`` and ``features(h, mask)``."""

    #: True when the output is a sequence (N, T, D) that carries a padding mask.
    sequence: ClassVar[bool] = False

    def features(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Rows for the heads: the output flattened to (N, D)."""
        return h.flatten(1)


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the valid positions of a (N, T, D) sequence; an all-padding row gives 0."""
    if mask is None:
        return h.mean(dim=1)
    weights = mask.to(h.dtype).unsqueeze(-1)
    return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def check_positive_ints(spec: object, *names: str) -> None:
    """Raise a ValueError naming the first field of ``spec`` that is not a positive int."""
    for name in names:
        value = getattr(spec, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{type(spec).__name__}({name}) needs a positive int, got {value!r}.")


@dataclass(frozen=True)
class BlockSpec:
    """Base class of the block specs in :mod:`deinforeg_sklearn.blocks`."""

    #: What input the block accepts: "any", "image" (C, H, W), "sequence" (T, D) or "tokens" (T ints).
    accepts: ClassVar[str] = "any"

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        """Build the encoder for inputs of ``input_shape`` (without the batch axis)."""
        raise NotImplementedError

    def check_input(self, input_shape: tuple[int, ...], position: int) -> None:
        """Raise a clear ValueError when this block cannot read ``input_shape``."""
        name = type(self).__name__
        if self.accepts == "image" and len(input_shape) != 3:
            raise ValueError(
                f"Block {position} ({name}) needs image input (C, H, W) but receives shape "
                f"{input_shape}: set input_shape=(channels, height, width) on the estimator."
            )
        if self.accepts == "sequence" and len(input_shape) != 2:
            raise ValueError(
                f"Block {position} ({name}) needs a sequence (T, D) but receives shape "
                f"{input_shape}: put an Embedding block before it for token ids, or set "
                "input_shape=(steps, features) on the estimator."
            )


@dataclass(frozen=True)
class BuildContext:
    """Facts about the data and the neighbouring blocks that a spec may need to build itself."""

    position: int
    previous: BlockSpec | None
    max_token_id: int | None = None
