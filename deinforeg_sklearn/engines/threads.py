"""Pipeline engine with one thread per stage in this process.

Why threads can overlap at all: PyTorch releases the GIL inside its kernels, so while one
stage's thread runs a convolution, another's can run its own. Python-level work between
kernels still takes turns on the GIL; stages made of many small operations overlap less than
stages made of a few large ones (see docs/pipeline.md for measurements).

Stages talk through bounded queues (``depth`` batches at most in flight between two stages),
so a fast stage cannot run ahead and fill memory. On CUDA each stage runs on its own stream and
hands tensors over with events (see :mod:`transfer`). Every wait polls an abort flag, so an
error in any stage, or Ctrl-C in the caller, stops all stages within one poll interval and
leaves no thread behind.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Sequence

import numpy as np
import torch

from deinforeg_sklearn.engines.base import Augment, Engine, MaskFn, RowSource, prepare_batch, step_units
from deinforeg_sklearn.engines.randomness import cuda_stage_seeds
from deinforeg_sklearn.engines.transfer import Handoff, receive, send
from deinforeg_sklearn.engines.wavefront import WavefrontRun
from deinforeg_sklearn.training.stats import EpochStats, UnitEpochStats
from deinforeg_sklearn.training.step import StepTrainer

_DONE = object()
_POLL_S = 0.05


def _put(q: queue.Queue, item: object, abort: threading.Event) -> bool:
    while not abort.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, abort: threading.Event) -> object | None:
    while not abort.is_set():
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return None


class ThreadEngine(Engine):
    """One worker thread per stage; stage s runs blocks ``stages[s]`` on ``devices[s]``.

    Parameters
    ----------
    trainers : sequence of StepTrainer
    stages : list of list of int
        Block indices of each stage, contiguous and in order.
    devices : list of torch.device
        One per stage; the stage's blocks must already be there.
    depth : int, default=2
        Batches that may wait between two stages.
    cpu_threads : int or None
        torch intra-op threads during the fit (the setting is process-wide, so CPU stages
        share it); restored afterwards.
    """

    def __init__(
        self,
        trainers: Sequence[StepTrainer],
        stages: list[list[int]],
        devices: list[torch.device],
        depth: int = 2,
        cpu_threads: int | None = None,
    ) -> None:
        super().__init__(trainers, stages, cpu_threads)
        self.devices = devices
        self.depth = depth
        self.streams: list[torch.cuda.Stream | None] = [None] * len(stages)

    def seed_ranks(self, seed: int, saved: dict | None) -> None:
        """Seed each GPU of the pipeline apart (:func:`randomness.cuda_stage_seeds`).

        The estimator seeded every generator with ``seed``, so stages on two GPUs would draw the
        same dropout masks. On a resumed fit (``saved`` given) the generators were already put
        back where the checkpoint left them.
        """
        if saved is not None:
            return
        for index, cuda_seed in cuda_stage_seeds(self.devices, seed).items():
            if cuda_seed != seed:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(cuda_seed)

    def _acquire(self) -> None:
        self.streams = [torch.cuda.Stream(device=d) if d.type == "cuda" else None for d in self.devices]

    def train_epoch(
        self,
        X: RowSource,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> list[UnitEpochStats]:
        n = len(self.stages)
        queues = [queue.Queue(maxsize=self.depth) for _ in range(n)]
        abort = threading.Event()
        failures: list[BaseException] = []
        stats = EpochStats(len(self.trainers))  # each stage adds only to its own units
        data = (X, y, mask_fn, augment)
        workers = [
            threading.Thread(
                target=self._run_stage,
                args=(s, queues, abort, failures, stats, epoch, data),
                name=f"deinforeg-stage-{s}",
                daemon=True,
            )
            for s in range(n)
        ]
        for w in workers:
            w.start()
        try:
            for index in batches:
                if not _put(queues[0], index, abort):
                    break
            _put(queues[0], _DONE, abort)
            for w in workers:
                while w.is_alive():
                    w.join(timeout=_POLL_S)
        except BaseException:
            abort.set()  # Ctrl-C or any error here: stop every stage at its next poll
            for w in workers:
                w.join()
            raise
        # Kernels queued on the stages' streams may still run: the stats, validation and the
        # next epoch (on other streams) must see their results.
        for stream in self.streams:
            if stream is not None:
                stream.synchronize()
        if failures:
            raise failures[0]
        return stats.means(sum(len(b) for b in batches))

    def _run_stage(self, s, queues, abort, failures, stats, epoch, data) -> None:
        X, y, mask_fn, augment = data
        device, stream = self.devices[s], self.streams[s]
        ctx = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
        # a wavefront stage hands on batch t once its last unit has it, up to len(units) - 1
        # ticks after it came in; the queues keep the order, so the next stage sees no change
        run = WavefrontRun(self.trainers, self.stages[s], stats, epoch) if self.wavefront[s] else None
        try:
            with ctx, run if run is not None else contextlib.nullcontext():
                while True:
                    item = _get(queues[s], abort)
                    if item is None:
                        return
                    if item is _DONE:
                        self._finish_stage(s, run, queues, abort)
                        return
                    if s == 0:
                        h, yb, mask = prepare_batch(X, y, item, device, mask_fn, augment)
                    else:
                        h, yb, mask = receive(item, stream)
                    start = time.perf_counter()
                    if run is None:
                        done = (
                            step_units(self.trainers, self.stages[s], h, yb, mask, epoch, stats),
                            yb,
                            mask,
                        )
                    else:
                        done = run.feed(h, yb, mask)
                    self.busy_seconds[s] += time.perf_counter() - start
                    if done is not None and not self._hand_on(s, done, queues, abort):
                        return
        except BaseException as exc:  # reported to the caller, which re-raises it
            failures.append(exc)
            abort.set()

    def _finish_stage(self, s, run: WavefrontRun | None, queues, abort) -> None:
        """After the last batch: drain a wavefront stage, then tell the next stage."""
        if run is not None:
            start = time.perf_counter()
            finished = run.drain()
            self.busy_seconds[s] += time.perf_counter() - start
            for done in finished:
                if not self._hand_on(s, done, queues, abort):
                    return
        if s < len(self.stages) - 1:
            _put(queues[s + 1], _DONE, abort)

    def _hand_on(self, s: int, done: tuple, queues, abort) -> bool:
        """A batch the stage has finished: to the next stage, or counted by the last one."""
        if s == len(self.stages) - 1:
            if self.on_batch is not None:
                self.on_batch()
            return True
        handoff: Handoff = send(done, self.devices[s + 1])
        return _put(queues[s + 1], handoff, abort)
