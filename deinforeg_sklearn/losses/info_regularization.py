"""The variance / invariance / covariance local loss of DeInfoReg.

The constants follow the authors' code, which produced the paper's numbers, where it differs
from the paper's equations (see ``docs/architecture.md``):

* the projector output is L2-normalised per row before any term is computed;
* the variance term is divided once more by the batch size;
* the invariance term is the mean over the N x N similarity entries;
* the covariance term is divided by the embedding width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Names of the three terms, in the order of ``weights``.
LOSS_TERMS: tuple[str, str, str] = ("variance", "invariance", "covariance")

_STD_EPS = 1e-7  # keeps sqrt differentiable when a column has zero variance (collapse)
_NORM_EPS = 1e-8  # keeps the row normalisation of `similarity_matrix` finite for constant rows


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
        ``covariance`` terms (a removed term is reported as 0).
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

    w_var, w_inv, w_cov = (float(w) for w in weights)
    normed = F.normalize(z, dim=1)
    centred = normed - normed.mean(dim=0)
    zero = z.new_zeros(())

    variance = zero
    if w_var != 0.0:
        # Unbiased variance of the already-centred columns (what torch.var computes, without
        # centring a second time).
        std = torch.sqrt(centred.pow(2).sum(dim=0) / (n - 1) + _STD_EPS)
        variance = F.relu(1.0 - std).mean() / n

    invariance = zero
    if w_inv != 0.0:
        with torch.no_grad():  # the label similarity is data, not a function of the weights
            target = similarity_matrix(F.one_hot(y.long(), n_classes).to(z.dtype))
        invariance = F.mse_loss(similarity_matrix(normed), target)

    covariance = zero
    if w_cov != 0.0:
        cov = centred.T @ centred / n
        covariance = _off_diagonal(cov).pow(2).sum() / width

    total = w_var * variance + w_inv * invariance + w_cov * covariance
    if return_parts:
        return total, {"variance": variance, "invariance": invariance, "covariance": covariance}
    return total
