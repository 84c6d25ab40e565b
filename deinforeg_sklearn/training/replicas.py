"""Data-parallel replicas of a unit: the local loss over the global batch, on every replica.

Why not DDP as it is: DeInfoReg's loss (variance, covariance, the N x N label-similarity
terms) and SCPL's contrastive loss are functions of the whole batch, not means of per-row
losses. Replicas that each computed them over their own rows would train another method.
VICReg's code gathers the embeddings of every replica before its batch terms; this module
does that, for every tensor a unit's loss reads, and keeps the arithmetic of one device:

Invariant (``tests/test_replicas.py``): R replicas that each hold a shard of a batch compute
the gradient that one device computes on the whole batch.

* :func:`global_batch` gathers the rows of every replica, so every replica computes the very
  loss one device computes, on the same global tensors: the same value on every replica.
* Its backward hands each replica the gradient of its own rows and nothing else, with no
  communication: that is the exact partial derivative of the global loss by those rows.
  (``torch.distributed.nn.functional.all_gather`` sums every replica's copy instead, which is
  right when each replica backpropagates a different loss; here it would count R times.)
* BatchNorm statistics are sums over every replica's rows (:class:`GlobalBatchNorm`); the
  backward of a sum all-reduces (sums) the partials, as the chain rule asks.
* Before each optimiser step the gradients are summed over the replicas
  (:func:`reduce_gradients`): the sum of every replica's partials is the full gradient. No
  factor 1/R appears anywhere (the trap of lightly #1977, where averaging after an all-reduced
  loss made gradients 1/world_size too small).

Outside a fit with replicas (no :func:`replicas_active` context) every function here is the
identity, and :class:`GlobalBatchNorm` is torch's BatchNorm: one device runs unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass
class ReplicaGroup:
    """The replicas of one pipeline stage, as one of them sees them.

    Attributes
    ----------
    group : ProcessGroup
        Every replica of this stage (and only them).
    size : int
        Replicas in the group.
    index : int
        This replica's place in the group (its rows come at that place in the global batch).
    sizes : list of int
        Rows of each replica in the batch being trained (set per batch by the engine).
    host_only : bool
        The group's backend moves CPU tensors only (gloo): CUDA tensors go through the host.
    """

    group: dist.ProcessGroup
    size: int
    index: int
    sizes: list[int] = field(default_factory=list)
    host_only: bool = True

    def set_batch(self, n_rows: int) -> None:
        """The batch being trained has ``n_rows`` rows in all (split by :func:`shard`)."""
        self.sizes = shard_sizes(n_rows, self.size)


_active: ReplicaGroup | None = None


@contextlib.contextmanager
def replicas_active(group: ReplicaGroup | None) -> Iterator[None]:
    """Make ``group`` the replicas of every unit step in this process, for the ``with`` body."""
    global _active
    saved, _active = _active, group
    try:
        yield
    finally:
        _active = saved


def active_group() -> ReplicaGroup | None:
    """The replica group of the steps running now, or None (one replica)."""
    return _active


def shard_sizes(n_rows: int, replicas: int) -> list[int]:
    """Rows of each replica in a batch of ``n_rows``: an even split, the first ones one larger.

    The same rule as ``numpy.array_split``: a batch of 10 over 3 replicas is 4 + 3 + 3, so a
    batch that does not divide costs at most one row of imbalance.
    """
    base, extra = divmod(n_rows, replicas)
    return [base + (1 if r < extra else 0) for r in range(replicas)]


def shard(index: np.ndarray, replicas: int, replica: int) -> np.ndarray:
    """The rows of batch ``index`` that replica ``replica`` of ``replicas`` trains on."""
    sizes = shard_sizes(len(index), replicas)
    start = sum(sizes[:replica])
    return index[start : start + sizes[replica]]


def global_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor with the rows (dim 0) of every replica, in replica order.

    Tensors that require a gradient get it back for this replica's rows only (see the module
    docstring). Without an active replica group the tensors come back as they are.
    """
    group = _active
    if group is None or group.size == 1:
        return tensors
    return tuple(_GatherRows.apply(t, group) if t.requires_grad else _gather(t, group) for t in tensors)


def _gather(t: torch.Tensor, group: ReplicaGroup) -> torch.Tensor:
    """All-gather the rows of ``t``: replicas may hold one row more or less, so rows are padded
    to the largest share, gathered, and cut back."""
    largest = max(group.sizes)
    if t.shape[0] != group.sizes[group.index]:
        raise RuntimeError(
            f"replica {group.index} holds {t.shape[0]} rows, but its share of the batch is "
            f"{group.sizes[group.index]}"
        )
    device = t.device
    send = t.detach()
    if group.host_only:
        send = send.cpu()
    if send.shape[0] < largest:
        pad = send.new_zeros((largest - send.shape[0], *send.shape[1:]))
        send = torch.cat([send, pad])
    send = send.contiguous()  # gathers of non-contiguous views lost data (PyTorch #120386)
    parts = [torch.empty_like(send) for _ in range(group.size)]
    dist.all_gather(parts, send, group=group.group)
    out = torch.cat([p[:n] for p, n in zip(parts, group.sizes, strict=True)])
    return out.to(device)


class _GatherRows(torch.autograd.Function):
    """All-gather whose backward keeps this replica's rows of the gradient (no communication)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, group: ReplicaGroup) -> torch.Tensor:  # type: ignore[override]
        ctx.start = sum(group.sizes[: group.index])
        ctx.rows = t.shape[0]
        return _gather(t, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad[ctx.start : ctx.start + ctx.rows], None


def _all_reduce_sum(t: torch.Tensor, group: ReplicaGroup) -> torch.Tensor:
    device = t.device
    out = t.detach().cpu().clone() if group.host_only else t.detach().clone()
    dist.all_reduce(out.contiguous(), group=group.group)
    return out.to(device)


class _SumOverReplicas(torch.autograd.Function):
    """Sum of ``t`` over the replicas; the backward sums the replicas' partials in turn."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, group: ReplicaGroup) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        return _all_reduce_sum(t, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return _all_reduce_sum(grad, ctx.group), None


def sum_over_replicas(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the active replicas (itself without any), differentiably."""
    group = _active
    if group is None or group.size == 1:
        return t
    return _SumOverReplicas.apply(t, group)


def reduce_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``parameters`` over the active replicas (one flat all-reduce).

    Every replica has the same parameters with a gradient (they run the same graph), so the
    flat buffers line up.
    """
    group = _active
    if group is None or group.size == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    total = _all_reduce_sum(flat, group)
    offset = 0
    for g in grads:
        g.copy_(total[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Torch's BatchNorm, whose training statistics span every replica's rows.

    With an active replica group the mean and the variance are sums over the global batch
    (two all-reduces: the mean first, then the squares about it, as one device's two-pass
    kernel computes them), so every replica normalises with the statistics one device would
    have, and the running statistics move as they would there. Anywhere else, in eval mode,
    or with one replica, it is torch's ``forward``. Engines turn the BatchNorm modules of a
    stage into this class for a fit with replicas and back afterwards
    (:func:`use_global_batch_norm`), so a saved model holds torch's classes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group = _active
        if group is None or group.size == 1 or not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        count = sum(group.sizes) * math.prod(x.shape[2:])
        view = (1, -1, *([1] * (x.dim() - 2)))
        mean = sum_over_replicas(x.sum(dims)) / count
        centred = x - mean.view(view)
        var = sum_over_replicas((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(view)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), count)
        return out

    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            unbiased = var * (count / max(count - 1, 1))
            self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)


class GlobalBatchNorm1d(GlobalBatchNorm, nn.BatchNorm1d):
    """:class:`GlobalBatchNorm` in place of ``nn.BatchNorm1d``."""


class GlobalBatchNorm2d(GlobalBatchNorm, nn.BatchNorm2d):
    """:class:`GlobalBatchNorm` in place of ``nn.BatchNorm2d``."""


class GlobalBatchNorm3d(GlobalBatchNorm, nn.BatchNorm3d):
    """:class:`GlobalBatchNorm` in place of ``nn.BatchNorm3d``."""


_GLOBAL = {
    nn.BatchNorm1d: GlobalBatchNorm1d,
    nn.BatchNorm2d: GlobalBatchNorm2d,
    nn.BatchNorm3d: GlobalBatchNorm3d,
}
_LOCAL = {v: k for k, v in _GLOBAL.items()}


def use_global_batch_norm(modules: Sequence[nn.Module], on: bool) -> None:
    """Turn every torch BatchNorm in ``modules`` into its :class:`GlobalBatchNorm` (``on``), or back.

    The class is swapped in place: the two classes share every attribute, so parameters stay
    the same objects (the optimiser's) and ``state_dict`` keys do not change.
    """
    table = _GLOBAL if on else _LOCAL
    for module in modules:
        for sub in module.modules():
            new = table.get(type(sub))
            if new is not None:
                sub.__class__ = new


def uses_plain_batch_norm(modules: Sequence[nn.Module]) -> bool:
    """Whether ``modules`` hold a BatchNorm that :func:`use_global_batch_norm` cannot turn
    global (a subclass of torch's, e.g. ``SyncBatchNorm`` or a user's own)."""
    known = set(_GLOBAL) | set(_LOCAL)
    return any(
        isinstance(sub, nn.modules.batchnorm._BatchNorm) and type(sub) not in known
        for module in modules
        for sub in module.modules()
    )
