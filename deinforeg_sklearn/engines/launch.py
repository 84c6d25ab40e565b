"""Getting the ranks of a process pipeline: a launcher's job, or processes spawned here.

``spawned_group`` makes the caller rank 0 of a fresh gloo group on 127.0.0.1 and starts ranks
1..K-1 as child processes (spawn, not fork: a forked child would inherit the caller's threads and
CUDA state). Each child runs ``target(rank, payload)``. Every child that fails sends its
traceback back through a queue; on any failure, in the caller or in a child, all children are
terminated and joined before the error is raised, so no process outlives the fit.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import socket
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

#: How long a rank waits on a peer before giving up. A dead peer is seen at once (its sockets
#: close); this bounds the wait for one that hangs. A stage step or a validation pass longer than
#: this would need a larger value: set DEINFOREG_DIST_TIMEOUT (seconds).
DEFAULT_TIMEOUT_S = 300.0


class StageProcessError(RuntimeError):
    """A pipeline stage failed in another process (its traceback is in the message)."""


def dist_timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get("DEINFOREG_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_main(rank: int, world: int, port: int, payload: bytes, threads: int, errors, target) -> None:
    try:
        torch.set_num_threads(threads)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=dist_timeout()
        )
        target(rank, torch.load(io.BytesIO(payload), weights_only=False))
    except BaseException:
        errors.put((rank, traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


def dumps(obj: object) -> bytes:
    """Serialise a payload for a child (torch.save keeps tensors out of shared memory)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def spawned_group(
    world: int, payloads: dict[int, bytes], target: Callable[[int, object], None], threads: int
) -> Iterator[None]:
    """Rank 0 here, ranks 1..world-1 spawned; yields once every rank has joined the group."""
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    port = _free_port()
    children = [
        ctx.Process(
            target=_child_main,
            args=(rank, world, port, payloads[rank], threads, errors, target),
            name=f"deinforeg-stage-{rank}",
            daemon=True,
        )
        for rank in range(1, world)
    ]
    for child in children:
        child.start()
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=world, timeout=dist_timeout()
        )
        yield
        for child in children:
            child.join(timeout=dist_timeout().total_seconds())
        failed = [c for c in children if c.exitcode != 0]
        if failed:
            raise StageProcessError(_describe(failed, errors))
    except BaseException as exc:
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join()
        if isinstance(exc, StageProcessError | KeyboardInterrupt):
            raise
        failed = [c for c in children if c.exitcode not in (0, None, -15)]
        report = _describe(failed, errors)
        if report:
            raise StageProcessError(report) from exc
        raise
    finally:
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        errors.close()


def _describe(failed: list, errors) -> str:
    """The children's tracebacks, or their exit codes when they died without one."""
    reports = {}
    with contextlib.suppress(queue.Empty, OSError, ValueError):
        while True:
            rank, text = errors.get(timeout=1.0)
            reports[rank] = text
    lines = []
    for rank in sorted(reports):
        lines.append(f"pipeline stage {rank} (a separate process) failed:\n{reports[rank]}")
    for child in failed:
        rank = int(child.name.rsplit("-", 1)[1])
        if rank not in reports:
            lines.append(f"pipeline stage {rank} (pid {child.pid}) died with exit code {child.exitcode}.")
    return "\n".join(lines)
