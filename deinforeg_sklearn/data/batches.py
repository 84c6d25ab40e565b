"""Minibatch order for one epoch."""

from __future__ import annotations

import numpy as np


def epoch_batches(n_samples: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Indices of each minibatch of one epoch (shuffled when ``rng`` is given).

    A last batch of a single sample is merged into the batch before it: the local loss and
    BatchNorm need at least two samples, and dropping it would silently skip data.
    """
    order = rng.permutation(n_samples) if rng is not None else np.arange(n_samples)
    batches = [order[i : i + batch_size] for i in range(0, n_samples, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return batches
