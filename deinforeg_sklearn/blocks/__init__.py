"""Block specs: small immutable values that ``fit`` turns into torch modules.

Each block of a network is one of these specs, or any callable returning an ``nn.Module``
(wrapped in :class:`Custom`).
"""

from __future__ import annotations

from collections.abc import Sequence

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder
from deinforeg_sklearn.blocks.conv import Conv
from deinforeg_sklearn.blocks.custom import Custom
from deinforeg_sklearn.blocks.dense import Dense
from deinforeg_sklearn.blocks.embedding import Embedding
from deinforeg_sklearn.blocks.recurrent import LSTM
from deinforeg_sklearn.blocks.residual import Residual
from deinforeg_sklearn.blocks.transformer import Transformer

__all__ = [
    "LSTM",
    "BlockSpec",
    "BuildContext",
    "Conv",
    "Custom",
    "Dense",
    "Embedding",
    "Encoder",
    "Residual",
    "Transformer",
    "resolve_blocks",
]


def resolve_blocks(blocks: Sequence[object]) -> list[BlockSpec]:
    """Check a user's ``blocks`` list and wrap plain callables in :class:`Custom`."""
    if isinstance(blocks, (str, bytes, BlockSpec)) or not isinstance(blocks, Sequence):
        raise ValueError(
            f"blocks must be a list of block specs, got {blocks!r}: for example "
            "blocks=[Dense(256), Dense(256)]."
        )
    if len(blocks) == 0:
        raise ValueError("blocks is empty: give at least one block, e.g. blocks=[Dense(256)].")
    specs: list[BlockSpec] = []
    for i, block in enumerate(blocks):
        if isinstance(block, BlockSpec):
            specs.append(block)
        elif callable(block) and not isinstance(block, type):
            specs.append(Custom(block))
        elif isinstance(block, type) and issubclass(block, BlockSpec):
            raise ValueError(
                f"blocks[{i}] is the class {block.__name__}, not a spec: call it, e.g. {block.__name__}(...)."
            )
        elif callable(block):
            specs.append(Custom(block))
        else:
            raise ValueError(
                f"blocks[{i}] is {block!r} ({type(block).__name__}), which is not a block spec: "
                "use Dense, Conv, Residual, LSTM, Transformer, Embedding from "
                "deinforeg_sklearn.blocks, or a callable that returns a torch.nn.Module."
            )
    return specs
