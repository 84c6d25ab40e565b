"""What every engine provides, and the per-batch work they share.

An engine runs the epochs of one fit. It receives the network's step trainers grouped into
*stages* (contiguous runs of blocks, one stage per device) and decides when each stage works on
which batch. Because a block step reads only the previous block's detached output for the same
batch, every engine that feeds each stage the batches in order performs the arithmetic of the
sequential loop (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from deinforeg_sklearn.training.step import StepTrainer

MaskFn = Callable[[torch.Tensor], torch.Tensor | None]
Augment = Callable[[torch.Tensor], torch.Tensor] | None


class Engine:
    """Base class: a context manager around the epochs of one fit.

    ``stage_sizes`` holds the number of blocks per stage, ``busy_seconds`` the time each stage
    has spent in block steps so far (not waiting for input). It is host time: on CUDA it counts
    launching kernels, which run asynchronously.
    """

    stage_sizes: list[int]
    busy_seconds: list[float]
    #: Called once per batch that has passed every stage this process sees (progress bars).
    on_batch: Callable[[], None] | None = None
    #: Whether the caller's network holds every block's live state between epochs, so that a
    #: snapshot of it can be restored after an interrupt (not so for the process engine).
    in_process: bool = True

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def start(self) -> None:
        """Acquire workers (threads, processes) for the fit."""

    def close(self, failed: bool = False) -> None:
        """Release every worker; after this no thread or process of the engine is left."""

    def train_epoch(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> np.ndarray:
        """Train every block on every batch; per-block mean stats (last column: accuracy)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Make the caller's network hold the trained state (a no-op for in-process engines)."""

    def epoch_gradients(self) -> list[float]:
        """Mean encoder-gradient magnitude per block since the last call (when recorded)."""
        return [g for trainer in self.trainers for g in trainer.take_gradients()]


def prepare_batch(
    X: torch.Tensor,
    y: torch.Tensor,
    index: np.ndarray,
    device: torch.device,
    mask_fn: MaskFn,
    augment: Augment,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Rows ``index`` of (X, y) on ``device``, with the padding mask and augmentation applied."""
    idx = torch.from_numpy(index)
    xb = X[idx].to(device, non_blocking=True)
    yb = y[idx].to(device, non_blocking=True)
    mask = mask_fn(xb)
    if augment is not None:
        xb = augment(xb)
    return xb, yb, mask


def step_units(
    trainers: Sequence[StepTrainer],
    units: Sequence[int],
    h: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    epoch: int,
    sums: list,
) -> torch.Tensor:
    """Run the step of each unit in ``units`` on one batch, adding its stats into ``sums``.

    Raises
    ------
    FloatingPointError
        When a unit's loss is not finite, naming the block and the (1-based) epoch.
    """
    for u in units:
        try:
            h, stats = trainers[u].step(h, y, mask)
        except FloatingPointError as exc:
            raise FloatingPointError(
                f"Block {u} produced a non-finite loss in epoch {epoch + 1}: lower "
                "learning_rate, scale the input (e.g. StandardScaler), or check the data."
            ) from exc
        weight = torch.full_like(stats, float(len(y)))
        weight[-1] = 1.0  # the last entry is already a count of correct predictions
        sums[u] = stats * weight if isinstance(sums[u], float) else sums[u] + stats * weight
    return h


def stats_table(sums: Sequence, n_rows: int) -> np.ndarray:
    """Per-unit means from the summed stats (one device-to-host copy per unit and epoch)."""
    return np.stack([torch.as_tensor(s).double().cpu().numpy() for s in sums]) / n_rows
