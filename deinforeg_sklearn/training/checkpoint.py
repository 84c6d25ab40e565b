"""Crash-safe checkpoints of a fit: written after every epoch, resumed exactly.

Invariant: a fit that resumes from the checkpoint of epoch k ends where the uninterrupted fit
ends. That holds because the checkpoint holds everything the remaining epochs read: the
network (weights, buffers, optimiser states, schedule positions), the history, the numpy
generator that draws the batch order and the weighted rows, torch's random state (dropout,
augmentation), early stopping's counters and best epoch, and the seed the split was drawn
with (reused on resume, so even ``random_state=None`` resumes the same split).

Each write goes to a temporary file in the same folder, is flushed to disk, and replaces the
checkpoint with one ``os.replace``: a crash in the middle of a write leaves the previous
checkpoint whole. The file is torch's format (``torch.save``), read with ``weights_only=False``:
like a pickle, load only checkpoints you wrote.

Under the process engine only rank 0 writes: after each epoch's sync its network holds every
stage's state, and the random state of every other rank's process (which the resumed ranks take
back, so dropout on any stage continues its stream).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deinforeg_sklearn.persistence import network_from_bytes, network_to_bytes
from deinforeg_sklearn.training.checkpoint_lock import FitLock
from deinforeg_sklearn.training.protocols import UnitNetwork
from deinforeg_sklearn.training.snapshot import Snapshot

#: The checkpoint's file name inside the ``checkpoint`` folder.
CHECKPOINT_FILE = "fit-checkpoint.pt"
#: Marks a file as one of these checkpoints (and its layout's version).
CHECKPOINT_FORMAT = "deinforeg-sklearn fit checkpoint 1"


@dataclass
class Progress:
    """Where an unfinished fit stands after a completed epoch (what resuming restores).

    Attributes
    ----------
    network : UnitNetwork
    history : list of dict
    numpy_rng : dict
        ``bit_generator.state`` of the plan's generator.
    torch_rng : tensor
        ``torch.get_rng_state()`` (CPU).
    cuda_rng : list of tensor
        ``torch.cuda.get_rng_state_all()`` where CUDA is in use, else empty.
    best_score, stale : float, int
        Early stopping's best score so far and the epochs since it.
    best : Snapshot or None
        Early stopping's best epoch.
    scores : ndarray or None
        The validation scores of the last epoch.
    stopped : bool
        Early stopping ended the fit at this epoch (nothing is left to train).
    extra : dict
        What the estimator needs besides (e.g. the projector widths of its blocks).
    rank_rngs : dict of int to (tensor, tensor or None)
        Under the process engine, the random state of each stage process other than the
        writer's (CPU, and its CUDA device's), as of the epoch's sync; empty otherwise.
    """

    network: UnitNetwork
    history: list[dict]
    numpy_rng: dict
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] = field(default_factory=list)
    best_score: float = -np.inf
    stale: int = 0
    best: Snapshot | None = None
    scores: np.ndarray | None = None
    stopped: bool = False
    extra: dict = field(default_factory=dict)
    rank_rngs: dict = field(default_factory=dict)


class Checkpointer:
    """Reads and writes the checkpoint of one fit configuration in ``folder``.

    Parameters
    ----------
    folder : path
        The estimator's ``checkpoint`` parameter; created when missing.
    fingerprint : dict
        What must match for a checkpoint to be resumed: the estimator, its training
        parameters and the data's shape and classes (plain values, compared with ``==``).
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: dict) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def locked(self) -> FitLock:
        """The folder's exclusive lock, to hold for the whole fit (``with checkpointer.locked():``)."""
        return FitLock(self.folder)

    def load(self) -> tuple[Progress | None, int | None]:
        """The unfinished fit to resume and its seed, or ``(None, None)`` to start afresh.

        A finished fit's checkpoint is not resumed: a new ``fit`` trains from scratch, as
        ``fit`` always does, and overwrites it.

        Raises
        ------
        ValueError
            The file is not a checkpoint, or one of another configuration or data shape.
        """
        if not self.path.is_file():
            return None, None
        try:
            content = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # garbage, a truncated copy, a file of another program
            raise ValueError(
                f"{self.path} is not a checkpoint of this library (it could not be read: {exc}): "
                "pass another checkpoint folder, or delete the file to start over."
            ) from exc
        if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{self.path} is not a checkpoint of this library: pass another checkpoint folder, "
                "or delete the file to start over."
            )
        if content["finished"]:
            return None, None
        if content["fingerprint"] != self.fingerprint:
            raise ValueError(
                f"{self.path} holds an unfinished fit of another configuration or data "
                f"({_difference(content['fingerprint'], self.fingerprint)}): fit with the same "
                "parameters and data to resume it, or delete the file (or pass another "
                "checkpoint folder) to start over."
            )
        progress: Progress = content["progress"]
        progress.network = network_from_bytes(content["network"])
        return progress, int(content["seed"])

    def save(self, progress: Progress, seed: int, finished: bool = False) -> None:
        """Write ``progress`` atomically (a crash leaves the previous checkpoint whole)."""
        network = progress.network
        progress.network = None  # travels as torch bytes, restorable on a machine without its GPU
        try:
            content = {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": self.fingerprint,
                "seed": seed,
                "finished": finished,
                "network": network_to_bytes(network),
                "progress": progress,
            }
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".checkpoint-", dir=self.folder)
            try:
                with os.fdopen(handle, "wb") as out:
                    torch.save(content, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        finally:
            progress.network = network


class EpochSaver:
    """What the fit loop calls after each completed epoch: adds the random states, writes.

    Parameters
    ----------
    checkpointer : Checkpointer
    seed : int
        The seed of the fit (its split and batch order), stored for the resume.
    cuda : bool
        The fit uses CUDA: its random states are saved too.
    extra : dict
        Stored in :attr:`Progress.extra`.
    """

    def __init__(self, checkpointer: Checkpointer, seed: int, cuda: bool, extra: dict) -> None:
        self.checkpointer, self.seed, self.cuda, self.extra = checkpointer, seed, cuda, extra
        self.last: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        progress.torch_rng = torch.get_rng_state()
        progress.cuda_rng = torch.cuda.get_rng_state_all() if self.cuda else []
        progress.extra = self.extra
        self.checkpointer.save(progress, self.seed)
        self.last = progress

    def finish(self) -> None:
        """Mark the checkpoint finished (the next ``fit`` starts over)."""
        if self.last is not None:
            self.checkpointer.save(self.last, self.seed, finished=True)

    def __getstate__(self) -> dict:
        # a pipeline rank receives the loop (and so this saver) but never writes
        return {**self.__dict__, "last": None}


def restore_random_states(progress: Progress) -> None:
    """Put torch's random state back where the checkpoint's epoch left it."""
    torch.set_rng_state(progress.torch_rng)
    if progress.cuda_rng:
        torch.cuda.set_rng_state_all(progress.cuda_rng)


def _difference(saved: dict, wanted: dict) -> str:
    """The first keys whose values differ, for the error message."""
    keys = [k for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k)]
    parts = []
    for key in keys[:3]:
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)][:3]
            parts += [f"{key}.{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} now" for k in inner]
        else:
            parts.append(f"{key}: {a!r} in the checkpoint, {b!r} now")
    return "; ".join(parts)
