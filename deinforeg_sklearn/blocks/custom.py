"""User-defined blocks: any callable that returns an ``nn.Module``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder


class CustomEncoder(Encoder):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.module(h)


@dataclass(frozen=True)
class Custom(BlockSpec):
    """A block built by ``factory(input_shape)``, which returns an ``nn.Module``.

    ``input_shape`` is the shape of one sample (no batch axis). The module maps a batch
    (N, *input_shape) to any tensor; the heads read its output flattened to (N, D).
    A plain callable in ``blocks`` is wrapped in ``Custom`` automatically. Use a function
    defined at module level (not a lambda) so that the estimator can be pickled.

    Parameters
    ----------
    factory : callable
        ``factory(input_shape: tuple[int, ...]) -> nn.Module``.
    """

    factory: Callable[[tuple[int, ...]], nn.Module]

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        module = self.factory(tuple(input_shape))
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"Block {context.position}: {self.factory!r} returned {type(module).__name__}, "
                "not a torch.nn.Module."
            )
        return CustomEncoder(module)
