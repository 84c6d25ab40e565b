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
* BatchNorm statistics are sums over every replica's rows (:class:`GlobalBatchNorm`); its
  backward sums the replicas' partial sums of the gradient in turn, as the chain rule asks.
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
import torch.nn.functional as F
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


def synchronisations_per_step(units: Sequence[nn.Module]) -> int:
    """How often the replicas of a stage that trains ``units`` wait for each other per step.

    Twice per BatchNorm layer (:class:`GlobalBatchNorm`: its statistics in the forward, their
    gradient sums in the backward), once per unit (the :func:`global_batch` of its loss) and
    once for the stage's gradient sum (:func:`reduce_gradients`). Each is a collective the
    replicas must all reach, so its cost adds to the step's whatever its size.
    """
    batch_norms = sum(
        isinstance(sub, nn.modules.batchnorm._BatchNorm) for unit in units for sub in unit.modules()
    )
    return 2 * batch_norms + len(units) + 1


def global_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor with the rows (dim 0) of every replica, in replica order.

    Tensors that require a gradient get it back for this replica's rows only (see the module
    docstring). Without an active replica group the tensors come back as they are.

    Why one collective for all of them: on loopback gloo a collective costs about 0.4 ms
    whatever its size (measured on 2 cores), so a unit's projections, logits and labels travel
    as the columns of one buffer. Labels (int64) travel as their bytes, viewed as float32
    pairs, so every dtype arrives exact; half-precision outputs (autocast) travel as float32.
    """
    group = _active
    if group is None or group.size == 1:
        return tensors
    n = tensors[0].shape[0]
    columns, layout = [], []
    for t in tensors:
        if t.shape[0] != n:
            raise ValueError(f"global_batch needs tensors of the same rows, got {t.shape[0]} and {n}")
        flat = t.reshape(n, -1)
        if t.dtype in (torch.int64, torch.int32, torch.float64):
            piece = flat.contiguous().view(torch.float32)  # the bytes, not the values
        else:
            piece = flat.float()
        columns.append(piece)
        layout.append((t.dtype, t.shape[1:], piece.shape[1]))
    packed = torch.cat(columns, dim=1)
    gathered = _GatherRows.apply(packed, group) if packed.requires_grad else _gather(packed, group)
    out, start = [], 0
    for dtype, shape, width in layout:
        piece = gathered[:, start : start + width]
        start += width
        if dtype in (torch.int64, torch.int32, torch.float64):
            piece = piece.contiguous().view(dtype)
        elif dtype != torch.float32:
            piece = piece.to(dtype)
        out.append(piece.reshape(-1, *shape))
    return tuple(out)


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

    With an active replica group the mean and the variance are those of the global batch
    (:class:`_GlobalBatchNormFunction`: one all-reduce in the forward, one in the backward),
    so every replica normalises with the statistics one device would have, and the running
    statistics move as they would there. Anywhere else, in eval mode, or with one replica, it
    is torch's ``forward``. Engines turn the BatchNorm modules of a stage into this class for a
    fit with replicas and back afterwards (:func:`use_global_batch_norm`), so a saved model
    holds torch's classes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group = _active
        if group is None or group.size == 1 or not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        count = sum(group.sizes) * math.prod(x.shape[2:])
        weight = self.weight if self.affine else torch.ones(x.shape[1], device=x.device, dtype=x.dtype)
        bias = self.bias if self.affine else torch.zeros_like(weight)
        out, mean, var = _GlobalBatchNormFunction.apply(x, weight, bias, self.eps, count, group)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean, var, count)
        return out

    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            unbiased = var * (count / max(count - 1, 1))
            self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)


def _channel_view(t: torch.Tensor, dim: int) -> torch.Tensor:
    """A per-channel vector shaped to broadcast over an (N, C, *) input of ``dim`` dimensions."""
    return t.view(1, -1, *([1] * (dim - 2)))


class _GlobalBatchNormFunction(torch.autograd.Function):
    """Batch normalisation over the rows of every replica, with its backward written out.

    Forward: each replica takes the mean and variance of its own rows (one pass), one
    all-gather brings every replica's, and they combine exactly (Chan's parallel formula: the
    mean of the variances plus the variance of the means, weighted by rows), without the
    cancellation of E[x^2] - E[x]^2; torch's eval-mode kernel then normalises with them.
    Backward: torch's kernel gives this replica's sums of dy and dy * x_hat in one pass, one
    all-reduce makes them global, and the textbook BatchNorm gradient follows; the weight and
    bias keep this replica's partial sums, which the gradient sum over replicas completes
    (:func:`reduce_gradients`). Written out rather than composed of autograd ops, which took
    2.5x the time of torch's kernels on a CPU, with two collectives per direction, not one.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, count, group):  # type: ignore[override]
        per_row = count // sum(group.sizes)  # values per channel in one row
        # this replica's mean and (biased) variance per channel, by torch's one-pass kernel
        # (torch.var_mean over these dims took 4x its time on a CPU)
        if x.shape[0]:
            mean_r, var_r = torch.batch_norm_update_stats(x, None, None, 0.0)
        else:  # a replica without rows in a batch smaller than the replicas: weight 0
            mean_r = var_r = x.new_zeros(x.shape[1])
        stats = _gather_small(torch.stack([mean_r, var_r]).double(), group)  # (R, 2, C)
        rows = torch.tensor(group.sizes, dtype=torch.float64, device=stats.device).view(-1, 1) * per_row
        means, variances = stats[:, 0], stats[:, 1]
        mean64 = (rows * means).sum(0) / count
        var64 = (rows * (variances + (means - mean64) ** 2)).sum(0) / count
        mean, var = mean64.to(x.dtype).to(x.device), var64.to(x.dtype).to(x.device)
        out = F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)
        invstd = torch.rsqrt(var64 + eps).to(x.dtype).to(x.device)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.count, ctx.group, ctx.eps = count, group, eps
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):  # type: ignore[override]
        x, weight, mean, invstd = ctx.saved_tensors
        d = x.dim()
        grad_out = grad_out.contiguous()
        # this replica's sum of dy * x_hat (the weight's gradient) and of dy (the bias's)
        _, sum_dy_xhat, sum_dy = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, weight, None, None, mean, invstd, True, ctx.eps, [False, True, True]
        )
        total = _all_reduce_sum(torch.stack([sum_dy, sum_dy_xhat]), ctx.group) / ctx.count
        mean_dy, mean_dy_xhat = total[0], total[1]
        # dx = w * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat)), x_hat = (x - mean) * invstd
        a = weight * invstd
        b = -a * invstd * mean_dy_xhat
        c = -a * mean_dy - b * mean
        grad_x = torch.addcmul(
            torch.addcmul(_channel_view(c, d), x, _channel_view(b, d)), grad_out, _channel_view(a, d)
        )
        return grad_x, sum_dy_xhat, sum_dy, None, None, None


def _gather_small(t: torch.Tensor, group: ReplicaGroup) -> torch.Tensor:
    """Every replica's copy of ``t`` (same shape on each), stacked in replica order."""
    send = t.detach().cpu() if group.host_only else t.detach()
    parts = [torch.empty_like(send) for _ in range(group.size)]
    dist.all_gather(parts, send.contiguous(), group=group.group)
    return torch.stack(parts)


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
