"""The local loss as one autograd node with a closed-form gradient.

On narrow blocks the local loss is bound by the number of tensor operations, not by
arithmetic: autograd records about 30 small operations in the forward and replays about 60 in
the backward, each of which costs microseconds of dispatch on a CPU. For 4 x Dense(256) at
batch 128 that was half of a block step. :class:`InfoRegularization` computes the same three
terms (``info_regularization._gram_terms`` and the variance term) and their weighted sum, and
its gradient in closed form: one N x N x D product for the terms and one for the gradient, and
about 100 tensor operations per step with the label similarity, where autograd through the same
terms runs about 210 (and the first version of this node, with the weights applied outside it
and the gradient made in its backward, 140).

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

Each term's weight scales its part of these matrices, so the weighted gradient is one sum. The
column-centring needs no correction: every column of the variance and covariance gradients
already sums to zero. Then one backward of the row normalisation.

The N x N parts run in the input's dtype, at least float32 (:func:`work_dtype`). They start from
the Gram matrix, a float32 product for a float32 block, whose rounding bounds what any later
precision can resolve: against the whole loss in float64 the gradient errs by at most 4e-6
relative with float32 passes, as with float64 ones (``tests/test_losses.py``), and float32
passes take 19 % off a wavefront tick of the demo (``docs/results/wavefront.md``).

Invariant shared with ``losses/batched.py``: every reduction and product here has a batched
twin whose slice computes the same bits (at 1 thread), so a block trains the same whether its
loss runs alone or stacked. torch's CPU kernels keep that for ``mm``/``bmm`` of real matrices,
elementwise kernels and sums over the last axis, but not for ``mv`` against ``bmm`` with one
column, ``addr`` against a rank-one ``baddbmm``, or ``dot`` against ``sum`` (measured): those
are written as elementwise products and last-axis sums in both nodes.
"""

from __future__ import annotations

import math

import torch

_STD_EPS = 1e-7  # keeps sqrt differentiable when a column has zero variance (collapse)
_NORM_EPS = 1e-8  # keeps the row normalisation of a similarity matrix finite for constant rows
_UNIT_EPS = 1e-12  # F.normalize's floor on a row norm


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the N x N work: the input's, and at least float32."""
    return torch.promote_types(dtype, torch.float32)


class InfoRegularization(torch.autograd.Function):
    """The weighted local loss and its three terms, with a closed-form gradient.

    ``forward(ctx, z, target, weights)``: ``z`` (N, D) floating point; ``target`` the N x N label
    similarity in any floating dtype (cast to the work dtype; no gradient; None when the
    invariance weight is 0); ``weights`` the three term weights as floats (a term of weight 0
    is returned as 0 and costs nothing).
    Returns ``(total, variance, invariance, covariance)``: the weighted sum, which carries the
    gradient, and the unweighted terms, which do not.

    The gradient is computed in the forward, while its N x N parts are at hand, whenever ``z``
    needs one: the backward is then one multiplication. That keeps one N x D tensor for the
    backward instead of the normalised rows and three N x N matrices, and folds the weights into
    the N x N matrices instead of combining three gradients afterwards.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, target: torch.Tensor | None, weights: tuple[float, float, float]):
        n_rows, width = z.shape
        w_var, w_inv, w_cov = weights
        want_grad = ctx.needs_input_grad[0]
        work = work_dtype(z.dtype)
        norm = torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min_(_UNIT_EPS)
        normed = z / norm
        centred = normed - normed.mean(dim=0)
        col_ss = centred.square().sum(dim=0)  # column sums of squares: variance and diag(C)
        variance = invariance = covariance = None
        gamma = None  # per-column factor of grad_n on the centred rows (the input's dtype)
        mix = shift = None  # grad_n's N x N matrix on the rows and its row shift (work dtype)
        if w_var:
            std = col_ss.mul(1.0 / (n_rows - 1)).add_(_STD_EPS).sqrt_()
            short = (1.0 - std).clamp_min_(0.0)  # relu(1 - std)
            variance = short.sum() * (1.0 / (n_rows * width))
            if want_grad:  # d/dc_ij = -[std_j < 1] c_ij / (N D (N - 1) std_j)
                gamma = (short > 0) / std * (-w_var / (n_rows * width * (n_rows - 1)))
        if w_inv or w_cov:
            gram = (normed @ normed.T).to(work)
        if w_inv:
            m = normed.mean(dim=1).to(work)
            dots = torch.addcmul(gram, m[:, None], m[None, :], value=-width)  # row-centred dot products
            r = torch.diagonal(dots).clamp_min(0.0).sqrt()
            inv = (r + _NORM_EPS).reciprocal()
            outer = torch.outer(inv, inv)
            raw = dots * outer
            clamped = raw.clamp(-1.0, 1.0)
            diff = clamped - target.to(work)
            invariance = diff.square().mean().to(z.dtype)
            if want_grad:
                # a = dI/d(raw) / k with k = 2 w / N^2: the mse gradient where the clamp passes
                # it (torch's clamp passes it on the bounds too)
                a = diff * (clamped == raw)
                q = (a * raw).sum(dim=1)
                r_inv = torch.where(r > 0, r, math.inf).reciprocal()  # 1 / r, 0 for a constant row
                mix = a * outer
                mix.diagonal().sub_(q * inv * r_inv)
                mix.mul_(4.0 * w_inv / n_rows**2)  # B = 2 k (a inv_i inv_j - diag(q inv / r))
                shift = (mix * m[None, :]).sum(dim=1, keepdim=True)  # (N, 1): one shift per row
        if w_cov:
            row_means = gram.mean(dim=1)
            half = row_means - row_means.mean() * 0.5
            centred_gram = gram - half[:, None] - half[None, :]  # c c^T = G - r 1^T - 1 r^T + s
            col_ss_w = col_ss.to(work)
            off = (centred_gram.square().sum() - col_ss_w.square().sum()) * (1.0 / n_rows**2)
            covariance = (off.clamp_min(0.0) * (1.0 / width)).to(z.dtype)
            if want_grad:  # d/dc = 4 / (N^2 D) (K c - N c diag(C)), and K c = K n
                scale = (off > 0).to(work).mul_(4.0 * w_cov / (n_rows**2 * width))
                term = centred_gram * scale
                mix = term if mix is None else mix.add_(term)
                diag_term = (col_ss_w * scale).neg_().to(z.dtype)
                gamma = diag_term if gamma is None else gamma.add_(diag_term)
        parts = [z.new_zeros(()) if t is None else t for t in (variance, invariance, covariance)]
        total = _sum_weighted(parts, weights)
        ctx.mark_non_differentiable(*parts)
        ctx.set_materialize_grads(False)  # no zero gradients made for the three parts
        if want_grad:
            ctx.save_for_backward(_gradient(z, normed, norm, centred, gamma, mix, shift))
        return (total, *parts)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_total: torch.Tensor, *_unused: torch.Tensor):
        if g_total is None:  # grads are not materialised: the total was not used
            return None, None, None
        (grad_z,) = ctx.saved_tensors
        return grad_z * g_total, None, None


def _sum_weighted(parts: list[torch.Tensor], weights: tuple[float, float, float]) -> torch.Tensor:
    """``sum(w * part)`` over the parts of nonzero weight, as a new tensor (zero if none).

    Elementwise, so it serves per-slice terms too (``losses/batched.py``).
    """
    total = None
    for part, weight in zip(parts, weights, strict=True):
        if weight:
            total = part * weight if total is None else total.add(part, alpha=weight)
    return torch.zeros_like(parts[0]) if total is None else total


def _gradient(
    z: torch.Tensor,
    normed: torch.Tensor,
    norm: torch.Tensor,
    centred: torch.Tensor,
    gamma: torch.Tensor | None,
    mix: torch.Tensor | None,
    shift: torch.Tensor | None,
) -> torch.Tensor:
    """d(total)/dz from grad_n = M n - b 1^T + c diag(gamma), through the row normalisation.

    Shapes broadcast, so the same code serves one block, ``z`` (N, D) with ``shift`` (N, 1) and
    ``gamma`` (D,), and a stack, ``z`` (B, N, D) with ``shift`` (B, N, 1) and ``gamma``
    (B, 1, D) (``losses/batched.py``): ``@`` is ``mm`` or ``bmm``, and the sums run over the
    last axis.
    """
    if mix is not None:
        grad_n = mix.to(z.dtype) @ normed
        if shift is not None:
            grad_n.sub_(shift.to(z.dtype))
        if gamma is not None:
            grad_n.addcmul_(centred, gamma)
    elif gamma is not None:
        grad_n = centred * gamma
    else:
        return torch.zeros_like(z)
    # backward of n = z / max(||z||, eps): the radial part of the gradient goes
    radial = (grad_n * normed).sum(dim=-1, keepdim=True)
    radial = torch.where(norm > _UNIT_EPS, radial, 0.0)  # a floored norm is a constant
    return grad_n.addcmul_(normed, radial, value=-1.0).div_(norm)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt of x >= 0 with a zero gradient where x <= 0 (a constant row has no spread).

    Rounding can leave the squared norm of a constant row a hair below zero, and sqrt's
    gradient at 0 is infinite; the column form's ``norm`` has a zero subgradient there.
    """
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)
