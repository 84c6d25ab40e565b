"""Small pure checks of the estimators' parameters and targets (no torch, no state)."""

from __future__ import annotations

import numpy as np


def check_widths(name: str, widths: object) -> tuple[int, ...] | None:
    """``widths`` as a tuple of positive ints, or None; a clear error for anything else."""
    if widths is None:
        return None
    widths = tuple(widths)
    if any(not isinstance(w, (int, np.integer)) or isinstance(w, bool) or w < 1 for w in widths):
        raise ValueError(f"{name} must be None or a sequence of positive ints, got {widths!r}.")
    return tuple(int(w) for w in widths)


def resolve_classes(y: np.ndarray, classes: object, known: np.ndarray | None) -> np.ndarray:
    """The sorted classes of a fit: the fitted ones when continuing, else ``classes`` or y's.

    Parameters
    ----------
    y : ndarray
        The labels of this call.
    classes : array-like or None
        ``partial_fit``'s ``classes`` (all classes that will ever be seen), or None.
    known : ndarray or None
        ``classes_`` of the fitted model when this call continues it.

    Raises
    ------
    ValueError
        Labels outside the known or given classes, or fewer than 2 classes.
    """
    if known is not None:
        new = np.setdiff1d(np.unique(y), known)
        if len(new):
            raise ValueError(
                f"y has classes {new.tolist()} not seen in the first fit (classes_ = "
                f"{known.tolist()}): refit from scratch with warm_start=False."
            )
        resolved = known
    else:
        resolved = np.unique(y if classes is None else classes)
        if classes is not None and len(np.setdiff1d(np.unique(y), resolved)):
            raise ValueError("y has labels that are not in `classes`.")
    if len(resolved) < 2:
        raise ValueError(f"y has a single class ({resolved[0]!r}): a classifier needs at least 2 classes.")
    return resolved
