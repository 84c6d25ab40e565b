"""The local loss of several same-shaped blocks at once: one autograd node over (B, N, D).

Why a second node: the wavefront step (``engines/wavefront.py``) runs a group of same-shaped
blocks as one computation, each block on its own batch. Looping :class:`InfoRegularization`
over the B slices would cost its ~100 tensor operations per block again; here every operation
is one batched kernel (``bmm``/``baddbmm`` for the N x N products), so a group of eleven blocks
costs about as many operations as one.

It is the same algebra as ``losses/fused.py`` (see its docstring for the closed-form gradient)
with a leading stack dimension: every reduction over rows or columns moves one axis to the
right, every scalar becomes a (B,) vector and every outer product a broadcast product over (B, N, N).
Invariant, tested in ``tests/test_batched_loss.py``: slice b of every output and of the
gradient equals :class:`InfoRegularization` on slice b, for every subset of the term weights;
each kernel here is the batched twin of one there that sums in the same order
(``losses/fused.py``), so the fits of ``tests/test_wavefront.py`` agree bit for bit at 1 thread.

``forward(ctx, z, target, weights)``: ``z`` (B, N, D); ``target`` (B, N, N) label similarity
(any floating dtype) of each slice's batch, or None when the invariance weight is 0. Returns
``(total, variance, invariance, covariance)``, each of shape (B,): the weighted sums carry the
gradient.
"""

from __future__ import annotations

import math

import torch

from deinforeg_sklearn.losses.fused import (
    _NORM_EPS,
    _STD_EPS,
    _UNIT_EPS,
    _gradient,
    _sum_weighted,
    work_dtype,
)


class BatchedInfoRegularization(torch.autograd.Function):
    """The weighted local loss of each slice of a (B, N, D) stack, with a closed-form gradient."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, target: torch.Tensor | None, weights: tuple[float, float, float]):
        n_stack, n_rows, width = z.shape
        w_var, w_inv, w_cov = weights
        want_grad = ctx.needs_input_grad[0]
        work = work_dtype(z.dtype)
        norm = torch.linalg.vector_norm(z, dim=2, keepdim=True).clamp_min_(_UNIT_EPS)
        normed = z / norm
        centred = normed - normed.mean(dim=1, keepdim=True)
        col_ss = centred.square().sum(dim=1)  # (B, D)
        variance = invariance = covariance = None
        gamma = mix = shift = None
        if w_var:
            std = col_ss.mul(1.0 / (n_rows - 1)).add_(_STD_EPS).sqrt_()
            short = (1.0 - std).clamp_min_(0.0)
            variance = short.sum(dim=1) * (1.0 / (n_rows * width))
            if want_grad:
                gamma = (short > 0) / std * (-w_var / (n_rows * width * (n_rows - 1)))
        if w_inv or w_cov:
            gram = torch.bmm(normed, normed.transpose(1, 2)).to(work)
        if w_inv:
            m = normed.mean(dim=2).to(work)  # (B, N)
            dots = torch.addcmul(gram, m.unsqueeze(2), m.unsqueeze(1), value=-width)
            r = torch.diagonal(dots, dim1=1, dim2=2).clamp_min(0.0).sqrt()
            inv = (r + _NORM_EPS).reciprocal()
            outer = inv.unsqueeze(2) * inv.unsqueeze(1)
            raw = dots * outer
            clamped = raw.clamp(-1.0, 1.0)
            diff = clamped - target.to(work)
            invariance = diff.square().mean(dim=(1, 2)).to(z.dtype)
            if want_grad:
                a = diff * (clamped == raw)
                q = (a * raw).sum(dim=2)
                r_inv = torch.where(r > 0, r, math.inf).reciprocal()
                mix = a * outer
                torch.diagonal(mix, dim1=1, dim2=2).sub_(q * inv * r_inv)
                mix.mul_(4.0 * w_inv / n_rows**2)
                shift = (mix * m.unsqueeze(1)).sum(dim=2, keepdim=True)  # (B, N, 1)
        if w_cov:
            row_means = gram.mean(dim=2)
            half = row_means - row_means.mean(dim=1, keepdim=True) * 0.5
            centred_gram = gram - half.unsqueeze(2) - half.unsqueeze(1)
            col_ss_w = col_ss.to(work)
            off = (centred_gram.square().sum(dim=(1, 2)) - col_ss_w.square().sum(dim=1)) * (1.0 / n_rows**2)
            covariance = (off.clamp_min(0.0) * (1.0 / width)).to(z.dtype)
            if want_grad:
                scale = (off > 0).to(work).mul_(4.0 * w_cov / (n_rows**2 * width))
                term = centred_gram * scale[:, None, None]
                mix = term if mix is None else mix.add_(term)
                diag_term = (col_ss_w * scale[:, None]).neg_().to(z.dtype)
                gamma = diag_term if gamma is None else gamma.add_(diag_term)
        parts = [z.new_zeros(n_stack) if t is None else t for t in (variance, invariance, covariance)]
        total = _sum_weighted(parts, weights)
        ctx.mark_non_differentiable(*parts)
        ctx.set_materialize_grads(False)
        if want_grad:
            gamma = None if gamma is None else gamma.unsqueeze(1)  # (B, 1, D) broadcasts over rows
            ctx.save_for_backward(_gradient(z, normed, norm, centred, gamma, mix, shift))
        return (total, *parts)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_total: torch.Tensor, *_unused: torch.Tensor):
        if g_total is None:
            return None, None, None
        (grad_z,) = ctx.saved_tensors
        return grad_z * g_total[:, None, None], None, None


def batched_label_similarity(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The (B, N, N) float64 label similarity of each row of the (B, N) labels ``y``.

    The same closed form as ``info_regularization._label_similarity``, computed once per batch
    so that it travels with the batch through the blocks of a wavefront.
    """
    k = float(n_classes)
    same = (y.unsqueeze(2) == y.unsqueeze(1)).double()
    return ((same - 1.0 / k) / (math.sqrt(1.0 - 1.0 / k) + _NORM_EPS) ** 2).clamp(-1.0, 1.0)
