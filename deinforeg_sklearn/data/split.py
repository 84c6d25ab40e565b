"""The validation split that early stopping, ``inference="best"`` and ``block_scores_`` use."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices ``(train, validation)``; stratified when every class can appear on both sides.

    Returns ``validation=None`` when the fraction is 0 or the data are too few to leave at
    least two training samples.
    """
    n = len(y)
    index = np.arange(n)
    if not fraction or n - max(1, int(np.ceil(fraction * n))) < 2:
        return index, None
    _, counts = np.unique(y, return_counts=True)
    n_val = int(np.ceil(fraction * n))
    stratify = y if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts) else None
    train, val = train_test_split(index, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)
