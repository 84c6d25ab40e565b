"""Entry point of a spawned pipeline stage: ``python -m deinforeg_sklearn.engines.stage_main``.

Arguments: the store's port on 127.0.0.1, this rank, the world size, torch threads, and the
caller's pid. The caller (:func:`~deinforeg_sklearn.engines.launch.spawned_group`) put the rest
in the store. Every failure, from the first line on, is written to ``error/<rank>`` so that the
caller can raise it with the traceback; the exit code is then 1.

Ctrl-C goes to the whole terminal process group, children included. A stage ignores it: the
caller decides what an interrupt means (keep the last completed epoch) and stops the stages.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from datetime import timedelta


def _exit_with_parent(parent_pid: int) -> None:
    """End this process when the caller's has gone (no orphan after a hard kill of the caller)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="deinforeg-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    port, rank, world, threads, parent_pid = (int(a) for a in argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent_pid)

    import torch
    import torch.distributed as dist

    from deinforeg_sklearn.engines.launch import dist_timeout, start_timeout

    store = dist.TCPStore(
        "127.0.0.1", port, world, is_master=False, timeout=timedelta(seconds=start_timeout())
    )
    try:
        torch.set_num_threads(threads)
        from multiprocessing import spawn

        # sys.path, working directory and the caller's main module (as __mp_main__), so that
        # classes the caller defined there unpickle here, as under multiprocessing's spawn
        spawn.prepare(pickle.loads(store.get("prepare")))
        target = pickle.loads(store.get("target"))
        try:
            payload = torch.load(io.BytesIO(store.get(f"payload/{rank}")), weights_only=False)
        except AttributeError as exc:  # a class or function that only the caller's process has
            raise RuntimeError(
                "A stage process could not rebuild the network: something it holds is defined "
                "where a new process cannot import it (a script read from standard input, a "
                "notebook or an interactive session). Define custom blocks in a module or a "
                "script file, or use engine='threads'."
            ) from exc
        store.set(f"ready/{rank}", b"1")
        store.set_timeout(dist_timeout())
        dist.init_process_group(
            "gloo",
            store=dist.PrefixStore("group", store),
            rank=rank,
            world_size=world,
            timeout=dist_timeout(),
        )
        target(rank, payload)
        dist.destroy_process_group()
        store.set(f"done/{rank}", b"1")
    except BaseException:
        with contextlib.suppress(Exception):
            store.set(f"error/{rank}", traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Everything this rank owes the caller is in the store; the interpreter's own teardown
    # (torch's, gloo's) takes over a second and nobody waits for it to end well.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
