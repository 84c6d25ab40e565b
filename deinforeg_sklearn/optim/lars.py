"""LARS optimiser (You et al., 2017), the authors' optimiser for the vision runs."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD with momentum and a layer-wise trust ratio ``eta * ||w|| / ||g + wd * w||``.

    Parameters of dimension <= 1 (biases, norm scales) get neither weight decay nor the trust
    ratio, as in the authors' scripts.

    Parameters
    ----------
    params : iterable of tensors or dicts
    lr : float
    momentum : float, default=0.9
    weight_decay : float, default=0.0
    eta : float, default=0.001
        Trust coefficient.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(grad)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, 1.0)
                    grad = grad.mul(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(grad).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
