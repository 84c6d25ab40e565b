"""Getting the ranks of a process pipeline: a launcher's job, or processes started here.

``spawned_group`` makes the caller rank 0 of a fresh gloo group on 127.0.0.1 and starts ranks
1..K-1 as new Python processes (``python -m deinforeg_sklearn.engines.stage_main``; never fork,
which would copy the caller's threads and CUDA state).

Why not ``multiprocessing``: its spawn start writes each child's arguments into a pipe that the
parent keeps open for reading too, so a large payload blocks ``start()`` until the child has
imported torch and read it (the children started one after another), and a child that dies
before reading (it could not re-import the caller's main module) blocks the parent for good.
Here everything goes through one ``TCPStore`` that the caller serves on a port the operating
system picked (port 0: nothing to race for):

* all children start at once, and fetch the caller's module search path and main module, the
  function to run, and their own payload from the store;
* each child sets ``ready/<rank>`` once its payload is loaded, and ``error/<rank>`` (a
  traceback) if anything fails, start-up included;
* the caller polls the store and the children's exit codes until every rank is ready, so a
  child that dies at any point of start-up is reported at once, with its traceback (or its
  standard error, when it died before it could reach the store);
* the process group is then made on the same store.

On any failure, in the caller or in a child, every child is terminated and reaped before the
error is raised, so no process outlives the fit. Children also exit on their own when the
caller's process goes away (they watch their parent).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from multiprocessing import spawn

import torch
import torch.distributed as dist

#: How long a rank waits on a peer before giving up. A dead peer is seen at once (its sockets
#: close); this bounds the wait for one that hangs. A stage step or a validation pass longer than
#: this would need a larger value: set DEINFOREG_DIST_TIMEOUT (seconds).
DEFAULT_TIMEOUT_S = 300.0

#: How long the children may take to start (import torch, read their payload) before the fit
#: gives up on them. A child that dies is reported as soon as it dies, whatever this is.
DEFAULT_START_TIMEOUT_S = 120.0

#: Set in every stage process: a stage process must never start stages of its own.
STAGE_RANK_ENV = "DEINFOREG_STAGE_RANK"

_POLL_S = 0.02
_STDERR_TAIL = 4000  # characters of a dead child's standard error that go into the report


class StageProcessError(RuntimeError):
    """A pipeline stage failed in another process (its traceback is in the message)."""


def dist_timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get("DEINFOREG_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))


def start_timeout() -> float:
    return float(os.environ.get("DEINFOREG_START_TIMEOUT", DEFAULT_START_TIMEOUT_S))


def dumps(obj: object) -> bytes:
    """Serialise a payload for a child (torch's format: tensors as raw storages, not pickles)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def main_preparation() -> dict:
    """What a child needs to unpickle objects the caller defined: sys.path, cwd, main module.

    The same data ``multiprocessing``'s spawn start sends, except that a main module without a
    file to re-import (a script read from standard input, ``python -c``) is left out: the child
    then runs without it, which works unless the payload needs a class defined there (and that
    case fails with a traceback that names the class).
    """
    data = spawn.get_preparation_data("deinforeg-stage")
    data.pop("authkey", None)  # for multiprocessing's own connections, which are not used here
    path = data.get("init_main_from_path")
    if path is not None and not os.path.isfile(path):
        del data["init_main_from_path"]
    return data


class SpawnedRanks:
    """Ranks 1..K-1 of a spawned group: their processes, and the store they report to."""

    def __init__(
        self,
        store: dist.TCPStore,
        children: dict[int, subprocess.Popen],
        logs: dict,
        names: Callable[[int], str] | None = None,
    ) -> None:
        self.store = store
        self.children = children
        self.logs = logs
        self.names = names or (lambda rank: f"pipeline stage {rank}")
        self.interrupted = False  # stopped on purpose after Ctrl-C in the caller
        self.terminated = False  # stopped by the caller: SIGTERM exit codes are its own doing

    def failed(self) -> dict[int, int]:
        """Exit code of every child that has ended with one other than 0."""
        codes = {rank: child.poll() for rank, child in self.children.items()}
        return {rank: code for rank, code in codes.items() if code not in (None, 0)}

    def wait_ready(self, timeout: float) -> None:
        """Return once every child has loaded its payload; raise as soon as one has died."""
        self._wait_for("ready", timeout, "start (set DEINFOREG_START_TIMEOUT to wait longer)")

    def wait_done(self, timeout: float) -> None:
        """Wait until every child has finished its work (normally, after the fit).

        The caller's last collective has already brought it everything; what is left to
        learn is whether a child failed after it. Raise as soon as one has died.
        """
        if self.interrupted:
            return  # stopped on purpose (Ctrl-C): their exit codes say nothing
        self._wait_for("done", timeout, "finish")

    def _wait_for(self, key: str, timeout: float, what: str) -> None:
        keys = [f"{key}/{rank}" for rank in self.children]
        deadline = time.monotonic() + timeout
        while not self.store.check(keys):
            if self.failed():
                raise StageProcessError(self.report())
            if time.monotonic() > deadline:
                raise StageProcessError(
                    f"The pipeline's stage processes did not {what} within {timeout:.0f} s.\n" + self.report()
                )
            time.sleep(_POLL_S)

    def interrupt(self) -> None:
        """Stop the children on purpose (the caller was interrupted and keeps what it has)."""
        self.interrupted = True
        self.terminate()

    def terminate(self) -> None:
        """Stop every child that still runs, and reap them all (no zombie, no orphan).

        After :meth:`wait_done` the children are leaving on their own; a short wait lets
        them, and SIGTERM then SIGKILL deal with any that do not.
        """
        with contextlib.suppress(subprocess.TimeoutExpired):
            for child in self.children.values():
                child.wait(timeout=0.5 if self._all_done() else 0.0)
        self.terminated = True
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def _all_done(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.store.check([f"done/{rank}" for rank in self.children]))
        return False

    def report(self) -> str:
        """The children's tracebacks, or their exit codes and standard error when they left none."""
        lines = []
        for rank, child in self.children.items():
            code = child.poll()
            error = self._error(rank)
            if error is not None:
                lines.append(f"{self.names(rank)} (a separate process) failed:\n{error}")
            elif code is None:
                lines.append(f"{self.names(rank)} (pid {child.pid}) is still running.")
            elif code != 0 and not (self.terminated and code == -15):
                lines.append(
                    f"{self.names(rank)} (pid {child.pid}) died with exit code {code}."
                    + self._stderr_tail(rank)
                )
        return "\n".join(lines)

    def _error(self, rank: int) -> str | None:
        key = f"error/{rank}"
        with contextlib.suppress(Exception):
            if self.store.check([key]):
                return self.store.get(key).decode()
        return None

    def _stderr_tail(self, rank: int) -> str:
        log = self.logs.get(rank)
        if log is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            log.seek(0)
            text = log.read().decode(errors="replace").strip()
            if text:
                return f" Its standard error ends:\n{text[-_STDERR_TAIL:]}"
        return ""

    def close_logs(self) -> None:
        for log in self.logs.values():
            with contextlib.suppress(OSError):
                log.close()


def _start_children(world: int, port: int, threads: int) -> tuple[dict, dict]:
    """Start ranks 1..world-1 at once; their standard error goes to temporary files as well."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    children: dict[int, subprocess.Popen] = {}
    logs: dict = {}
    try:
        _start_each(world, port, threads, env, children, logs)
    except BaseException:
        for child in children.values():  # the ones already running must not outlive the failure
            child.kill()
            child.wait()
        for log in logs.values():
            log.close()
        raise
    return children, logs


def _start_each(world: int, port: int, threads: int, env: dict, children: dict, logs: dict) -> None:
    for rank in range(1, world):
        env[STAGE_RANK_ENV] = str(rank)
        log = tempfile.TemporaryFile()  # noqa: SIM115  (closed by SpawnedRanks.close_logs)
        logs[rank] = log
        children[rank] = subprocess.Popen(
            [
                spawn.get_executable(),
                "-m",
                "deinforeg_sklearn.engines.stage_main",
                str(port),
                str(rank),
                str(world),
                str(threads),
                str(os.getpid()),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=log,
        )


@contextlib.contextmanager
def spawned_group(
    world: int,
    payloads: dict[int, bytes],
    target: Callable[[int, object], None],
    threads: int,
    names: Callable[[int], str] | None = None,
) -> Iterator[SpawnedRanks]:
    """Rank 0 here, ranks 1..world-1 started as processes; yields once every rank has joined.

    Parameters
    ----------
    world : int
        Ranks in the group, this process included.
    payloads : dict of int to bytes
        What each child rank receives (:func:`dumps`), by rank.
    target : callable
        ``target(rank, payload)`` is each child's work; it must be importable by name.
    threads : int
        torch threads of each child.
    names : callable or None
        How a report names rank r (e.g. "pipeline stage 1, replica 0"); None: "pipeline stage r".

    Raises
    ------
    RuntimeError
        Called inside a stage process (a script that starts a pipeline at import time).
    StageProcessError
        A child failed or died: its traceback (or exit code and standard error) is the message.
    """
    if STAGE_RANK_ENV in os.environ:
        raise RuntimeError(
            "A pipeline stage process tried to start a pipeline of its own: it re-imported your "
            "main module, which starts a fit at import time. Put the script's work under "
            "`if __name__ == '__main__':`."
        )
    store = dist.TCPStore(
        "127.0.0.1", 0, world, is_master=True, timeout=dist_timeout(), wait_for_workers=False
    )
    store.set("prepare", pickle.dumps(main_preparation()))
    store.set("target", pickle.dumps(target))
    for rank, payload in payloads.items():
        store.set(f"payload/{rank}", payload)
    children, logs = _start_children(world, store.port, threads)
    ranks = SpawnedRanks(store, children, logs, names)
    try:
        ranks.wait_ready(start_timeout())
        dist.init_process_group(
            "gloo", store=dist.PrefixStore("group", store), rank=0, world_size=world, timeout=dist_timeout()
        )
        yield ranks
        ranks.wait_done(dist_timeout().total_seconds())
    except BaseException as exc:
        ranks.terminate()
        if isinstance(exc, StageProcessError | KeyboardInterrupt):
            raise
        report = ranks.report()
        if report:
            raise StageProcessError(report) from exc
        raise
    finally:
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        ranks.terminate()  # a no-op when all have ended; reaps them
        ranks.close_logs()
