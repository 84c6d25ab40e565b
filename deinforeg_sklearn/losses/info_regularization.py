"""The variance / invariance / covariance local loss of DeInfoReg.

The constants follow the authors' code, which produced the paper's numbers, where it differs
from the paper's equations (see ``docs/architecture.md``):

* the projector output is L2-normalised per row before any term is computed;
* the variance term is divided once more by the batch size;
* the invariance term is the mean over the N x N similarity entries;
* the covariance term is divided by the embedding width.

Two exact formulations of the same terms (``docs/architecture.md``, "The local loss"):

* from the columns: the D x D covariance ``c^T c / N`` (cost D^2 N) plus the N x N similarity
  of the rows (N^2 D);
* from one N x N Gram matrix ``G = n n^T`` (cost N^2 D): with ``r`` the row means of G and
  ``s`` its mean, ``c c^T = G - r 1^T - 1 r^T + s`` and ``||C||_F^2 = ||c c^T||_F^2 / N^2``;
  ``diag(C)`` comes from the column sums of squares (O(N D)); the row-centred similarity's
  numerator is ``G - D m m^T`` (``m`` the row means of n).

The Gram form is chosen whenever it is cheaper: always when the invariance term is on (it needs
the N x N product anyway), and when D >= N otherwise. A first conv block that flattens to
D = 8,192 features at batch 128 then costs 134 MFLOP per step instead of 8.7 GFLOP. The
autograd form (``_gram_terms``, the tests' reference) runs its N x N corrections in float64; the
closed-form node the fits use runs them in the input's dtype (``losses/fused.py`` says why that
loses nothing measurable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from deinforeg_sklearn.losses.fused import _NORM_EPS, _STD_EPS, InfoRegularization, _safe_sqrt

_HALF = (torch.float16, torch.bfloat16)

#: Names of the three terms, in the order of ``weights``.
LOSS_TERMS: tuple[str, str, str] = ("variance", "invariance", "covariance")


def similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of row-centred rows, clamped to [-1, 1] (N x N)."""
    centred = x - x.mean(dim=1, keepdim=True)
    unit = centred / (centred.norm(dim=1, keepdim=True) + _NORM_EPS)
    return (unit @ unit.T).clamp(-1.0, 1.0)


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def info_regularization_loss(
    z: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    return_parts: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Information-regularisation local loss of one block.

    Parameters
    ----------
    z : torch.Tensor of shape (N, C)
        Projector output of the block, N >= 2.
    y : torch.Tensor of shape (N,)
        Integer class labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes (width of the one-hot targets).
    weights : sequence of 3 floats, default=(1.0, 1.0, 1.0)
        Weights of the variance, invariance and covariance terms. A zero weight removes
        its term (it is not computed).
    return_parts : bool, default=False
        Also return the unweighted terms.

    Returns
    -------
    total : torch.Tensor
        Scalar weighted sum of the terms, always finite and >= 0.
    parts : dict of str to torch.Tensor
        Only with ``return_parts=True``: the unweighted ``variance``, ``invariance`` and
        ``covariance`` terms (a removed term is reported as 0), for reporting: the gradient
        flows through ``total`` (in the Gram form the parts carry none).
    """
    if z.dim() != 2:
        raise ValueError(f"z must be a 2-D (N, C) tensor, got shape {tuple(z.shape)}.")
    if len(weights) != 3:
        raise ValueError(f"weights needs 3 values (variance, invariance, covariance), got {weights!r}.")
    n, width = z.shape
    if n < 2:
        raise ValueError(
            f"The local loss needs a batch of at least 2 samples, got {n}: the variance of one "
            "sample is undefined. Merge a last batch of one into the batch before it."
        )
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}.")

    if z.dtype in _HALF or torch.is_autocast_enabled(z.device.type):
        # Mixed precision: the Gram matrix and the reductions in float32 (the covariance term
        # subtracts quantities of size 1, which bfloat16's 8 bits would turn into noise)
        with torch.autocast(z.device.type, enabled=False):
            return info_regularization_loss(z.float(), y, n_classes, weights, return_parts)
    w_var, w_inv, w_cov = (float(w) for w in weights)
    if uses_gram(n, width, w_inv != 0.0):
        # One autograd node with a closed-form gradient (losses/fused.py): the same terms as
        # `_gram_terms`, weighted and summed inside it, in under half of the operations
        target = _label_similarity(y, n_classes, torch.float64) if w_inv != 0.0 else None
        total, variance, invariance, covariance = InfoRegularization.apply(z, target, (w_var, w_inv, w_cov))
    else:
        normed = F.normalize(z, dim=1)
        centred = normed - normed.mean(dim=0)
        variance = _variance(centred) if w_var != 0.0 else z.new_zeros(())
        invariance, covariance = _column_terms(normed, centred, y, n_classes, w_inv != 0.0, w_cov != 0.0)
        total = w_var * variance + w_inv * invariance + w_cov * covariance

    if return_parts:
        return total, {"variance": variance, "invariance": invariance, "covariance": covariance}
    return total


def _variance(centred: torch.Tensor) -> torch.Tensor:
    """The variance term of column-centred rows."""
    # Unbiased variance of the already-centred columns (what torch.var computes, without
    # centring a second time).
    n = centred.shape[0]
    std = torch.sqrt(centred.pow(2).sum(dim=0) / (n - 1) + _STD_EPS)
    return F.relu(1.0 - std).mean() / n


def uses_gram(n: int, width: int, invariance: bool) -> bool:
    """Whether the N x N Gram form is the cheaper one for a batch of n rows of ``width``."""
    return invariance or width >= n


def _label_similarity(y: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``similarity_matrix`` of the one-hot labels, in closed form (no gradient: it is data).

    A row-centred one-hot row is ``e_y - 1/K`` with squared norm ``1 - 1/K``, so two rows have
    cosine ``([y_i = y_j] - 1/K) / (1 - 1/K)``; the ``_NORM_EPS`` of the norm is kept so that
    the value equals ``similarity_matrix(one_hot(y))`` to rounding.
    """
    k = float(n_classes)
    same = (y[:, None] == y[None, :]).to(dtype)
    return ((same - 1.0 / k) / (math.sqrt(1.0 - 1.0 / k) + _NORM_EPS) ** 2).clamp(-1.0, 1.0)


def _column_terms(
    normed: torch.Tensor, centred: torch.Tensor, y: torch.Tensor, n_classes: int, inv: bool, cov: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invariance and covariance from the D x D covariance and the N x N row similarity."""
    n, width = normed.shape
    zero = normed.new_zeros(())
    invariance = zero
    if inv:
        invariance = F.mse_loss(similarity_matrix(normed), _label_similarity(y, n_classes, normed.dtype))
    covariance = zero
    if cov:
        c = centred.T @ centred / n
        covariance = _off_diagonal(c).pow(2).sum() / width
    return invariance, covariance


def _gram_terms(
    normed: torch.Tensor, centred: torch.Tensor, y: torch.Tensor, n_classes: int, inv: bool, cov: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invariance and covariance from the one Gram matrix ``normed @ normed.T`` (exact).

    The autograd form of what :class:`~deinforeg_sklearn.losses.fused.InfoRegularization`
    computes with a closed-form backward: the tests check that gradient against this one, and
    ``benchmarks/loss_speed.py`` times both.
    """
    n, width = normed.shape
    zero = normed.new_zeros(())
    gram = (normed @ normed.T).double()  # the one O(N^2 D) product; O(N^2) work below in float64
    invariance = zero
    if inv:
        m = normed.mean(dim=1).double()  # row means: the row-centred dot products are G - D m m^T
        dots = gram - width * m[:, None] * m[None, :]
        inv_norm = 1.0 / (_safe_sqrt(torch.diagonal(dots)) + _NORM_EPS)
        similarity = (dots * inv_norm[:, None] * inv_norm[None, :]).clamp(-1.0, 1.0)
        invariance = F.mse_loss(similarity, _label_similarity(y, n_classes, torch.float64)).to(normed.dtype)
    covariance = zero
    if cov:
        r = gram.mean(dim=1)
        centred_gram = gram - r[:, None] - r[None, :] + r.mean()  # c c^T, c the column-centred rows
        diagonal = centred.pow(2).sum(dim=0).double() / n  # diag(C)
        off = centred_gram.pow(2).sum() / n**2 - diagonal.pow(2).sum()  # ||C||_F^2 - ||diag C||^2
        covariance = (off.clamp_min(0.0) / width).to(normed.dtype)  # >= 0 up to rounding
    return invariance, covariance
