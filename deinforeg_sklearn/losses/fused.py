"""The local loss as one autograd node with a hand-written backward.

On narrow blocks the local loss is bound by the number of tensor operations, not by
arithmetic: autograd records about 30 small operations in the forward and replays about 60 in
the backward, each of which costs microseconds of dispatch on a CPU. For 4 x Dense(256) at
batch 128 that was half of a block step. :class:`InfoRegularization` computes the same three
terms (``info_regularization._gram_terms`` and the variance term) and returns their gradient in
closed form, about a third of the operations and one N x N x D product instead of three.

The gradient (``docs/architecture.md``, "The local loss") is one N x N matrix times the
normalised rows plus rank-one corrections. With ``n`` the L2-normalised rows, ``c`` the
column-centred rows, ``u`` the row-centred rows (norms ``r``, ``inv = 1 / (r + eps)``), ``K``
the centred Gram matrix ``c c^T`` and ``A`` the gradient of the invariance term with respect to
its clamped similarity matrix:

* covariance: ``d/dc = 4 / (N^2 D) (K c - N c diag(C))``, and ``K c = K n`` since ``K 1 = 0``;
* variance: ``d/dc_ij = -[std_j < 1] c_ij / (N D (N - 1) std_j)``;
* invariance: ``d/du = B u`` with ``B = 2 diag(inv) A diag(inv) - diag(q inv / r)`` and
  ``q_i = 2 sum_k A_ik raw_ik`` (the unclamped similarity); through the row centring this is
  ``B n - (B m) 1^T``, ``m`` the row means of ``n``.

The column-centring needs no correction: every column of the variance and covariance
gradients already sums to zero. Then one backward of the row normalisation. The N x N parts
run in float64, as in the autograd form (they subtract quantities of size 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_STD_EPS = 1e-7  # keeps sqrt differentiable when a column has zero variance (collapse)
_NORM_EPS = 1e-8  # keeps the row normalisation of a similarity matrix finite for constant rows
_UNIT_EPS = 1e-12  # F.normalize's floor on a row norm


class InfoRegularization(torch.autograd.Function):
    """``(variance, invariance, covariance)`` of projector outputs ``z`` with a closed-form backward.

    ``forward(ctx, z, target, terms)``: ``z`` (N, D) floating point; ``target`` the N x N label
    similarity in float64 (no gradient); ``terms`` a tuple of three bools saying which terms to
    compute (a term that is off is returned as 0 and costs nothing).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, target: torch.Tensor, terms: tuple[bool, bool, bool]):
        n_rows, width = z.shape
        want_var, want_inv, want_cov = terms
        norm = z.norm(dim=1, keepdim=True).clamp_min(_UNIT_EPS)
        normed = z / norm
        mu = normed.mean(dim=0)
        centred = normed - mu
        col_ss = centred.pow(2).sum(dim=0)  # column sums of squares: variance and diag(C)
        zero = z.new_zeros(())
        variance = invariance = covariance = zero
        var_coef = cov_scale = None
        if want_var:
            std = torch.sqrt(col_ss / (n_rows - 1) + _STD_EPS)
            variance = F.relu(1.0 - std).mean() / n_rows
            var_coef = torch.where(std < 1.0, -1.0 / (n_rows * width * (n_rows - 1) * std), 0.0)
        gram = (normed @ normed.T).double() if (want_inv or want_cov) else None
        inv_parts = None
        if want_inv:
            m = normed.mean(dim=1).double()
            dots = gram - width * m[:, None] * m[None, :]
            r = _safe_sqrt(torch.diagonal(dots))
            inv = 1.0 / (r + _NORM_EPS)
            raw = dots * inv[:, None] * inv[None, :]
            diff = raw.clamp(-1.0, 1.0) - target
            invariance = diff.pow(2).mean().to(z.dtype)
            # dI/d(raw): the mse gradient where the clamp passes it (torch's clamp passes the
            # gradient on the bounds too)
            a = torch.where((raw >= -1.0) & (raw <= 1.0), diff, 0.0) * (2.0 / n_rows**2)
            inv_parts = (a, raw, r, inv, m)
        centred_gram = None
        if want_cov:
            row_means = gram.mean(dim=1)
            centred_gram = gram - row_means[:, None] - row_means[None, :] + row_means.mean()
            diag_c = col_ss.double() / n_rows
            off = centred_gram.pow(2).sum() / n_rows**2 - diag_c.pow(2).sum()
            covariance = (off.clamp_min(0.0) / width).to(z.dtype)
            cov_scale = (off > 0).double() * (4.0 / (n_rows**2 * width))
        ctx.save_for_backward(z, normed, norm, mu, col_ss)
        ctx.parts = (var_coef, inv_parts, centred_gram, cov_scale)
        return variance, invariance, covariance

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_var: torch.Tensor, g_inv: torch.Tensor, g_cov: torch.Tensor):
        z, normed, norm, mu, col_ss = ctx.saved_tensors
        var_coef, inv_parts, centred_gram, cov_scale = ctx.parts
        # grad_n = M @ n - b 1^T + n * gamma - 1 (mu * gamma)^T, M and b from the N x N parts,
        # gamma the per-column scale of the variance and diagonal-covariance terms
        mix = None  # M, float64
        shift = None  # b, float64
        gamma = None  # float32 / the input's dtype
        if var_coef is not None:
            gamma = var_coef * g_var
        if inv_parts is not None:
            a, raw, r, inv, m = inv_parts
            a = a * g_inv.double()
            q = 2.0 * (a * raw).sum(dim=1)
            self_term = torch.where(r > 0, q * inv / torch.where(r > 0, r, 1.0), 0.0)
            b_mat = 2.0 * a * inv[:, None] * inv[None, :]
            b_mat.diagonal().sub_(self_term)
            mix = b_mat
            shift = b_mat @ m
        if centred_gram is not None:
            scale = cov_scale * g_cov.double()
            mix = centred_gram * scale if mix is None else mix.add_(centred_gram * scale)
            diag_term = (-scale * col_ss.double()).to(z.dtype)  # -N diag(C) * 4 / (N^2 D)
            gamma = diag_term if gamma is None else gamma + diag_term
        grad_n = torch.zeros_like(normed)
        if mix is not None:
            grad_n = mix.to(z.dtype) @ normed
        if shift is not None:
            grad_n = grad_n - shift.to(z.dtype)[:, None]
        if gamma is not None:
            grad_n = grad_n + (normed - mu) * gamma
        # backward of n = z / max(||z||, eps): the radial part of the gradient goes
        radial = (grad_n * normed).sum(dim=1, keepdim=True)
        radial = torch.where(norm > _UNIT_EPS, radial, 0.0)  # a floored norm is a constant
        grad_z = (grad_n - normed * radial) / norm
        return grad_z, None, None


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt of x >= 0 with a zero gradient where x <= 0 (a constant row has no spread).

    Rounding can leave the squared norm of a constant row a hair below zero, and sqrt's
    gradient at 0 is infinite; the column form's ``norm`` has a zero subgradient there.
    """
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)
