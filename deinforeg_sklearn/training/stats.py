"""Named statistics of a training step, and their sums over an epoch.

A unit's step reports the batch means of its loss terms by name, and, when the unit has a
classifier of its own, how many samples of the batch it classified correctly. Engines add these
up per unit over an epoch; the fit loop turns the sums into the rows of ``history_``.

Why sums stay on the device: a step's numbers are 0-d tensors that may live on a GPU. Reading
each one on the host would stall the stream once per step; summing on the device and copying
once per unit and epoch does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StepStats:
    """What one unit step reports.

    Attributes
    ----------
    terms : dict of str to 0-d tensor
        Batch means of the loss terms, detached, in the order ``history_`` lists them.
    correct : 0-d tensor or None
        Samples of the batch that the unit's classifier got right; None for a unit without a
        classifier of its own (an SCPL block, an AL block).
    """

    terms: dict[str, torch.Tensor]
    correct: torch.Tensor | None = None


@dataclass(frozen=True)
class UnitEpochStats:
    """Epoch means of one unit: its loss terms, and its training accuracy (None: no classifier)."""

    terms: dict[str, float]
    accuracy: float | None


#: How a unit's sums travel between processes: term names, summed terms, summed correct count.
ExportedSums = tuple[tuple[str, ...], np.ndarray, float | None]


class EpochStats:
    """Per-unit sums of :class:`StepStats` over one epoch, each term weighted by its batch size.

    Parameters
    ----------
    n_units : int
        Units of the network (one per step trainer).
    """

    def __init__(self, n_units: int) -> None:
        self._names: list[tuple[str, ...]] = [()] * n_units
        self._terms: list[torch.Tensor | np.ndarray | None] = [None] * n_units
        self._correct: list[torch.Tensor | float | None] = [None] * n_units

    def add(self, unit: int, stats: StepStats, n_rows: int) -> None:
        """Add one step of ``unit`` on a batch of ``n_rows`` rows."""
        weighted = torch.stack(tuple(stats.terms.values())) * n_rows
        total = self._terms[unit]
        self._terms[unit] = weighted if total is None else total + weighted
        self._names[unit] = tuple(stats.terms)
        if stats.correct is not None:
            correct = self._correct[unit]
            self._correct[unit] = stats.correct if correct is None else correct + stats.correct

    def export(self, units: list[int]) -> dict[int, ExportedSums]:
        """The sums of ``units`` as host values (to all-gather them across ranks)."""
        return {u: self._host(u) for u in units}

    def merge(self, part: dict[int, ExportedSums]) -> None:
        """Take the sums that another rank exported for its units."""
        for u, (names, terms, correct) in part.items():
            self._names[u], self._terms[u], self._correct[u] = names, terms, correct

    def accumulate(self, part: dict[int, ExportedSums]) -> None:
        """Add the sums that a replica of the same units exported (data-parallel replicas)."""
        for u, (names, terms, correct) in part.items():
            if self._terms[u] is None:
                self._names[u], self._terms[u], self._correct[u] = names, terms, correct
                continue
            _, mine, my_correct = self._host(u)
            self._terms[u] = mine + terms
            self._correct[u] = None if correct is None else (my_correct or 0.0) + correct

    def means(self, n_rows: int) -> list[UnitEpochStats]:
        """Epoch means of every unit over ``n_rows`` training rows."""
        out = []
        for u in range(len(self._terms)):
            names, terms, correct = self._host(u)
            out.append(
                UnitEpochStats(
                    {name: float(v) / n_rows for name, v in zip(names, terms, strict=True)},
                    None if correct is None else correct / n_rows,
                )
            )
        return out

    def _host(self, u: int) -> ExportedSums:
        terms, correct = self._terms[u], self._correct[u]
        if terms is None:
            host_terms = np.zeros(len(self._names[u]))
        else:
            host_terms = torch.as_tensor(terms).double().cpu().numpy()
        return self._names[u], host_terms, None if correct is None else float(correct)
