"""Mixed precision and compilation of one unit's step: the ``precision`` and ``compile`` settings.

Both change how a step computes, never what it trains on: the weights and the optimiser state
stay in float32, autocast runs the forward's matrix products and convolutions in the lower
precision, and the losses (the local loss's Gram matrix and reductions, cross-entropy) are
computed in float32. float16 needs loss scaling, because its small exponent range lets
gradients underflow; bfloat16 has float32's range and needs none. Prediction always runs in
float32.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch

#: The ``precision`` values and the autocast dtype of each (None: plain float32).
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a unit's forward runs in for ``precision`` on ``device``."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def loss_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for float16 (None for float32 and bfloat16, which need none)."""
    if precision != "16":
        return None
    return torch.amp.GradScaler(device.type)


def _compiler_errors() -> tuple[type[BaseException], ...]:
    """The errors by which torch.compile says that it could not compile.

    As against an error of the code being compiled, which eager mode raises again.
    """
    errors: list[type[BaseException]] = []
    try:
        from torch._dynamo.exc import BackendCompilerFailed

        errors.append(BackendCompilerFailed)
    except ImportError:  # pragma: no cover - torch without dynamo
        pass
    try:
        from torch._inductor.exc import InductorError

        errors.append(InductorError)
    except ImportError:  # pragma: no cover - older torch
        pass
    return tuple(errors)


class CompiledCall:
    """``fn`` through ``torch.compile``, or eagerly after one warning when compiling fails.

    Compilation happens at the first call (torch.compile is lazy), so that is where a missing
    compiler shows: the call is then repeated eagerly, which is safe because a compile failure
    happens before any of the graph runs. Errors of ``fn`` itself are not swallowed: eager
    mode raises them again.
    """

    def __init__(self, fn: Callable, name: str) -> None:
        self.fn = fn
        self.name = name
        self.compiled: Callable | None = None
        self.failed = False

    def __call__(self, *args):
        if self.failed:
            return self.fn(*args)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn)
        try:
            return self.compiled(*args)
        except _compiler_errors() as exc:
            self.failed = True
            warnings.warn(
                f"compile=True: torch.compile could not compile {self.name} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); training it eagerly "
                "instead. On a CPU, torch.compile needs a C++ compiler (e.g. g++) and the Python "
                "headers; set compile=False to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.fn(*args)
