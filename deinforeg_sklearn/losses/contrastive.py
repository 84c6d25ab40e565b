"""Supervised contrastive loss (Khosla et al., 2020), the local loss of the SCPL baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_contrastive_loss(z: torch.Tensor, y: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Mean over anchors of ``-mean_p log softmax_j(sim(i, j) / T)[p]``.

    Rows are L2-normalised; for anchor i the softmax runs over every other row j != i, and the
    positives p are the other rows with i's label (the authors' SCPL setting). Anchors without
    a positive in the batch do not count; a batch where no anchor has one gives 0.

    Parameters
    ----------
    z : torch.Tensor of shape (N, C)
    y : torch.Tensor of shape (N,)
    temperature : float, default=0.1
    """
    if z.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(z.device.type):
        with torch.autocast(z.device.type, enabled=False):  # mixed precision: the loss in float32
            return supervised_contrastive_loss(z.float(), y, temperature)
    n = z.shape[0]
    unit = F.normalize(z, dim=1)
    logits = unit @ unit.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (y.unsqueeze(0) == y.unsqueeze(1)) & ~self_mask
    counts = positives.sum(dim=1)
    has_positive = counts > 0
    if not has_positive.any():
        return z.sum() * 0.0  # keeps the graph (and a zero gradient) for the optimiser step
    summed = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    return -(summed[has_positive] / counts[has_positive]).mean()
