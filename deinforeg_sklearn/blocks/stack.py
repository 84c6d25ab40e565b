"""Building the encoders of a whole network from its block specs, and probing their shapes.

A spec builds its encoder from the shape it receives, which is the shape the previous encoder
hands on. That shape, and the width of the rows the heads will read, are known only once the
previous encoder exists, so the stack is built block by block, each encoder probed on a tiny
batch before the next is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder
from deinforeg_sklearn.blocks.streams import Part, block_stream


@dataclass
class EncoderStack:
    """Built encoders, first block first, with what each hands on.

    Attributes
    ----------
    encoders : list of Encoder
    widths : list of int
        Width of the rows ``encoders[l].features`` gives the heads of block l.
    output_shapes : list of tuple of int
        Per-sample shape of ``encoders[l]``'s output (the next block's input).
    seed : int or None
        The seed of the blocks' own random streams (``blocks/streams.py``); None: the global
        generator's.
    """

    encoders: list[Encoder]
    widths: list[int]
    output_shapes: list[tuple[int, ...]]
    seed: int | None = None

    def stream(self, index: int, part: Part = Part.HEAD) -> AbstractContextManager[None]:
        """Build block ``index``'s heads (or the network's output head) inside this context."""
        return block_stream(self.seed, index, part)


def build_encoders(
    specs: Sequence[BlockSpec],
    input_shape: tuple[int, ...],
    max_token_id: int | None,
    seed: int | None = None,
) -> EncoderStack:
    """Build every block's encoder for samples of ``input_shape``.

    Parameters
    ----------
    specs : sequence of BlockSpec
    input_shape : tuple of int
        Shape of one input sample.
    max_token_id : int or None
        The largest token id in the training data when the first block reads token ids.
    seed : int or None, default=None
        Draw each encoder's weights from its own stream, seeded from ``seed`` and its index, so
        that a block's initial weights do not depend on the blocks around it. None: from the
        global generator, one encoder after the other.

    Raises
    ------
    ValueError
        When a block that reads token ids is not the first one.
    """
    stack = EncoderStack([], [], [], seed)
    in_shape = input_shape
    for i, spec in enumerate(specs):
        if i and spec.accepts == "tokens":
            raise ValueError(f"Block {i} ({type(spec).__name__}) reads token ids and must come first.")
        context = BuildContext(position=i, previous=specs[i - 1] if i else None, max_token_id=max_token_id)
        with block_stream(seed, i, Part.ENCODER):
            encoder = spec.build(in_shape, context)
        in_shape, width = _probe(encoder, in_shape, tokens=max_token_id is not None and i == 0)
        stack.encoders.append(encoder)
        stack.widths.append(width)
        stack.output_shapes.append(in_shape)
    return stack


def _probe(encoder: Encoder, in_shape: tuple[int, ...], tokens: bool) -> tuple[tuple[int, ...], int]:
    """Output shape of one sample and feature width, from the fresh encoder on a probe of 2."""
    probe = torch.full((2, *in_shape), 2, dtype=torch.long) if tokens else torch.zeros((2, *in_shape))
    mask = torch.ones((2, in_shape[0]), dtype=torch.bool) if encoder.sequence or tokens else None
    encoder.eval()
    with torch.no_grad():
        out = encoder(probe, mask)
        width = encoder.features(out, mask).shape[1]
    encoder.train()
    return tuple(out.shape[1:]), int(width)
