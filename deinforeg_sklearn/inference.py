"""Per-sample early exit ("adaptive" inference) through the blocks of a DeInfoReg network.

The authors' rule, decided for each sample (their code decides for a whole batch): walk the
blocks; a block *agrees* with the one before when both predict the same class and the cosine
similarity of their class probabilities exceeds ``threshold``; a sample leaves at the first block
that completes ``patience`` consecutive agreements, with that block's probabilities. Samples
that never qualify leave at the last block. Exited samples are dropped from the batch, so later
blocks run only on the samples still inside.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deinforeg_sklearn.data.eval_batches import padded_rows, rows_per_pass
from deinforeg_sklearn.data.inputs import MaskFn, RowSource


@torch.no_grad()
def adaptive_probabilities(
    network: torch.nn.Module,
    X: RowSource,
    batch_size: int,
    mask_fn: MaskFn,
    patience: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and exit depth (number of blocks run, 1..L) of every row of X."""
    batch_size = rows_per_pass(X, batch_size)
    was_training = network.training
    network.eval()
    try:
        probs, depths = [], []
        for start in range(0, len(X), batch_size):
            xb = X.batch(slice(start, start + batch_size), torch.device("cpu"))  # moved per block below
            p, d = _adaptive_batch(network, xb, mask_fn, patience, threshold)
            probs.append(p)
            depths.append(d)
    finally:
        network.train(was_training)
    return np.concatenate(probs), np.concatenate(depths)


def _adaptive_batch(network, xb, mask_fn, patience, threshold):
    blocks = network.blocks
    n = len(xb)
    out = torch.empty((n, 0))
    depth = torch.full((n,), len(blocks), dtype=torch.long)
    alive = torch.arange(n)  # batch positions of the samples still inside
    h, mask = xb, mask_fn(xb)
    previous = count = None
    for level, block in enumerate(blocks):
        device = next(block.parameters()).device
        h = h.to(device)
        mask = None if mask is None else mask.to(device)
        h, p = _block_step(block, h, mask)
        if out.shape[1] == 0:
            out = torch.empty((n, p.shape[1]))
        if previous is None:
            count = torch.zeros(len(alive), dtype=torch.long)
        else:
            agree = (p.argmax(1) == previous.argmax(1)) & (
                F.cosine_similarity(p, previous, dim=1) > threshold
            )
            count = torch.where(agree, count + 1, torch.zeros_like(count))
        leave = count >= patience if previous is not None else torch.zeros(len(alive), dtype=torch.bool)
        if level == len(blocks) - 1:
            leave = torch.ones(len(alive), dtype=torch.bool)
        out[alive[leave]] = p[leave]
        depth[alive[leave]] = level + 1
        stay = ~leave
        if not stay.any():
            break
        keep = stay.to(h.device)
        alive, previous, count = alive[stay], p[stay], count[stay]
        h = h[keep]
        mask = None if mask is None else mask[keep]
    return out.double().numpy(), depth.numpy()


def _block_step(block, h, mask):
    """One block's output and class probabilities for the rows still inside.

    Those rows shrink as samples exit, to a few at the end, so they are padded as every
    evaluation batch is (``data/eval_batches.padded_rows``): a sample's probabilities do not
    depend on which others are still inside with it.
    """
    h_in, n = padded_rows(h)
    mask_in = None if mask is None else padded_rows(mask)[0]
    out = block(h_in, mask_in)
    return out[:n], F.softmax(block.logits(out, mask_in)[:n].float(), dim=1).cpu()
