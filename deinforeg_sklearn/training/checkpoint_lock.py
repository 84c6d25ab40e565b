"""One fit at a time per checkpoint folder: an exclusive lock held for the whole fit.

Why: ``checkpoint`` is a parameter, so ``clone`` copies it into every candidate and fold of a
search. Two fits writing one folder at the same time would each replace the other's file after
every epoch, and the resumable state of both would be lost without a word. The lock turns that
into an error, before any training, that names the process holding the folder.

The lock is an operating-system lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows)
on ``fit-checkpoint.lock`` in the folder, which also records the owner's pid and host for the
message. The operating system drops it when its process ends, however it ends, so a lock left
by a killed fit is never stale: the next fit takes it over. On a network file system without
lock support the lock may not exclude other machines.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

#: The lock's file name inside the checkpoint folder.
LOCK_FILE = "fit-checkpoint.lock"


class CheckpointInUseError(RuntimeError):
    """Another fit, alive, holds the checkpoint folder."""


class FitLock:
    """The exclusive lock of one checkpoint folder, held from :meth:`acquire` to :meth:`release`.

    Parameters
    ----------
    folder : path
        The checkpoint folder (created when missing).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._handle = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    def acquire(self) -> FitLock:
        """Take the lock, or raise :class:`CheckpointInUseError` naming its holder (no wait)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            _lock(handle)
        except OSError:
            try:
                handle.seek(0)
                owner = handle.read().strip() or "an unknown process"
            except OSError:  # Windows: the holder's locked byte cannot be read
                owner = "another process"
            handle.close()
            raise CheckpointInUseError(
                f"checkpoint={str(self.folder)!r} is in use by another fit ({owner}): two fits "
                "writing one folder would overwrite each other's checkpoint. Give each fit its "
                "own folder, or put '{fit}' in the path (e.g. checkpoint='runs/{fit}'), which "
                "gives every configuration and data set its own subfolder, as a search's "
                "candidates and folds need."
            ) from None
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"process {os.getpid()} on {socket.gethostname()}, since {since}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        """Drop the lock (the file stays: removing it could race with a fit that opened it)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            _unlock(handle)
        finally:
            handle.close()

    def __enter__(self) -> FitLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __getstate__(self) -> dict:
        # a copy (a pickled estimator, a stage rank) never holds the lock
        return {"folder": self.folder, "_handle": None}


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
