"""The features a head's classifier reads, for many rows, batch by batch (``transform``).

Why a hook and not a second forward path: each method builds its heads differently (DeInfoReg:
projector then classifier per block; BP and SCPL: one head after the last block; AL: the last
block's bridge into the label side). Recording the input of ``network.classifier_of(head)``
during the same ``head_logits`` pass that ``predict_proba`` runs gives exactly the features the
predictions come from, for every method, with no copy of its forward code.

Invariant: the classifier applied to the features ``transform`` returns gives the logits
``predict_proba`` uses (tests/test_transform.py).
"""

from __future__ import annotations

import numpy as np
import torch

from deinforeg_sklearn.data.eval_batches import padded_rows, rows_per_pass
from deinforeg_sklearn.data.inputs import MaskFn, RowSource
from deinforeg_sklearn.training.protocols import UnitNetwork


@torch.no_grad()
def evaluate_features(
    network: UnitNetwork, X: RowSource, batch_size: int, device: torch.device, mask_fn: MaskFn, head: int
) -> np.ndarray:
    """The input of head ``head``'s classifier for all rows of X, in eval mode, as float32.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    batch_size = rows_per_pass(X, batch_size)
    seen: list[torch.Tensor] = []

    def record(module: torch.nn.Module, args: tuple) -> None:
        seen.append(args[0].detach().float().cpu())

    handle = network.classifier_of(head).register_forward_pre_hook(record)
    was_training = network.training
    network.eval()
    try:
        for start in range(0, len(X), batch_size):
            xb, n = padded_rows(X.batch(slice(start, start + batch_size), device))
            network.head_logits(xb, mask_fn(xb), last=head)
            seen[-1] = seen[-1][:n]
    finally:
        handle.remove()
        network.train(was_training)
    if not seen:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(seen).reshape(len(X), -1).numpy()
