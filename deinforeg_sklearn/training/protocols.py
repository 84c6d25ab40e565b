"""The contract between networks and what trains them: a trainable unit and a unit network.

Engines and the fit loop never look inside a method's network. They call only what these two
protocols list, so a new method (a new local loss, a new way to hand activations on) plugs into
every engine by implementing them, and an engine written against them drives every method.

Every attribute here is required: nothing is read with ``getattr`` or ``hasattr``. A unit with a
single learning rate still lists its one optimiser group; a network without per-block heads
still says which unit its head is.

Implementations: ``LocalBlock`` / ``DecoupledNetwork`` (DeInfoReg), ``BackpropNetwork`` (a
network that is its own single unit), ``ContrastiveBlock`` + ``ContrastiveHead`` /
``SCPLNetwork`` and ``AssociatedBlock`` / ``AssociatedNetwork``. ``tests/test_protocols.py``
checks each against these protocols.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from deinforeg_sklearn.training.stats import StepStats

if TYPE_CHECKING:
    from deinforeg_sklearn.training.step import StepTrainer

#: What a unit hands to the next one: one tensor, or a tuple of them (AL passes its label code).
Activation = torch.Tensor | tuple[torch.Tensor, ...]


@runtime_checkable
class TrainableUnit(Protocol):
    """One unit of work of a network: what a :class:`StepTrainer` steps.

    ``step_loss`` must detach its input on entry, so its loss reaches only its own parameters
    (the block-step invariant, docs/architecture.md). The rest is the ``nn.Module`` surface
    that engines use to place, snapshot and synchronise a unit.
    """

    def step_loss(
        self, h: Activation, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[Activation, torch.Tensor, StepStats]:
        """Forward one batch: ``(output, loss, stats)``, the output still attached to the graph."""
        ...

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the unit's optimiser, as torch takes them.

        A group may carry ``lr_scale``: its rate is the schedule's rate times that scale.
        """
        ...

    def encoder_parameter_groups(self) -> list[list[nn.Parameter]]:
        """The encoder parameters of each block the unit holds (for ``record_gradients``)."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def to(self, *args: Any, **kwargs: Any) -> nn.Module: ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any: ...


@runtime_checkable
class UnitNetwork(Protocol):
    """A whole network as the engines and the fit loop see it.

    Attributes
    ----------
    trainers : list of StepTrainer
        One per unit, in data-flow order: unit u reads unit u-1's output. Engines group
        consecutive units into pipeline stages.
    head_units : list of int
        The unit whose step stats belong to each head of ``head_logits`` (in head order); a
        network whose head is no single unit (AL) lists none.
    output_shapes : list of tuple of int
        Per-sample shape of what each block's encoder hands on (what a pipeline stage sends).
    n_heads : int
        Length of the list ``head_logits`` returns.
    """

    trainers: list[StepTrainer]
    head_units: list[int]
    output_shapes: list[tuple[int, ...]]

    @property
    def n_heads(self) -> int: ...

    def head_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None, last: int | None = None
    ) -> list[torch.Tensor]:
        """Logits of each head (up to head ``last``), in eval or train mode as set by the caller."""
        ...

    def classifier_of(self, head: int) -> nn.Module:
        """The module that turns head ``head``'s features into its class scores (``transform``)."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def to(self, *args: Any, **kwargs: Any) -> nn.Module: ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def eval(self) -> nn.Module: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any: ...
