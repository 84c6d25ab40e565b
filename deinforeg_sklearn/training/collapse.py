"""A fit that ended without error but learned nothing: every head's output is one constant.

Why: some failures keep every loss finite, so the loop's non-finite check never fires. Inputs
too large for float32 are the common case (``data/magnitude.py``): BatchNorm divides by an
infinite variance and each block's output becomes its bias. The model then predicts one class
for every row and reports a chance score, and nothing says that training failed. After the fit,
one forward of a few training rows in eval mode shows it: if each head gives the same logits for
rows that differ, or logits that are not finite, the fit warns. (It also fires, rightly, for a
tiny block whose ReLU units all died: the model then predicts one class too.)
"""

from __future__ import annotations

import numpy as np
import torch

from deinforeg_sklearn.data.inputs import MaskFn, RowSource
from deinforeg_sklearn.training.evaluate import evaluate_logits
from deinforeg_sklearn.training.protocols import UnitNetwork

#: Training rows the check runs through the network.
CHECK_ROWS = 32

#: Logits whose spread over the rows is at most this fraction of their size are "constant".
CONSTANT_RTOL = 1e-6


def collapsed_heads(
    network: UnitNetwork, rows: RowSource, device: torch.device, mask_fn: MaskFn
) -> list[int] | None:
    """The heads whose logits are constant or non-finite over ``rows``, or None when the rows
    themselves are all alike (nothing to conclude from constant outputs then).

    Parameters
    ----------
    network : UnitNetwork
        The fitted network (left in the train/eval mode it was in).
    rows : RowSource
        A few training rows (at most ``CHECK_ROWS`` are read).
    device : torch.device
        Where the network's first block is.
    mask_fn : callable
        The padding mask of a batch (token input), or ``no_mask``.
    """
    n = min(len(rows), CHECK_ROWS)
    if n < 2:
        return None
    sample = rows.take(np.arange(n))
    first = sample.batch(slice(0, n), torch.device("cpu")).reshape(n, -1).double()
    if bool((first == first[0]).all()):
        return None
    failed = []
    for head, logits in enumerate(evaluate_logits(network, sample, n, device, mask_fn)):
        logits = logits.astype(np.float64)
        if not np.isfinite(logits).all():
            failed.append(head)
            continue
        spread = float(np.ptp(logits, axis=0).max())
        if spread <= CONSTANT_RTOL * (1.0 + float(np.abs(logits).max())):
            failed.append(head)
    return failed


def collapse_message(n_heads: int, failed: list[int], n_rows: int) -> str | None:
    """The warning when every head failed (None when at least one head still tells rows apart)."""
    if len(failed) < n_heads:
        return None
    return (
        f"Training failed: every block's classifier gives the same output for the {n_rows} "
        "training rows checked (or outputs that are not finite), so the model predicts one "
        "class whatever the input, although the losses stayed finite. The usual cause is "
        "input values too large for float32 (see the warning that names the columns, if any); "
        "scale X (e.g. sklearn.preprocessing.StandardScaler in a Pipeline) or set input_scale. "
        "A learning rate far too high, or a block so narrow that all its ReLU units died, can "
        "do the same: lower learning_rate, or widen the blocks."
    )
