"""Pipeline engine with one process per stage (or per stage x replica) over torch.distributed.

Every rank runs the same epoch loop (SPMD), stage r on rank r:

* rank 0 reads the data and trains the first stage; rank r > 0 receives each batch's activations,
  labels (and padding mask) from rank r - 1, trains its blocks, and sends its output to r + 1;
* sends are asynchronous with at most ``depth`` batches in flight per link (bounded buffers);
* after each epoch the stats, and (when asked) the trained states, are all-gathered, so every
  rank holds the whole trained network and takes the same early-stopping decisions.

Two ways to get the ranks: under ``torchrun`` (or any launcher that set up a process group or
the env:// variables) each process is one rank; otherwise :func:`run_local` makes the caller rank
0 and spawns ranks 1..K-1 on this machine.

Activations travel over one of two backends (:func:`data_backend`): NCCL, GPU to GPU, when every
stage has a CUDA device of its own; otherwise gloo, through host memory. NCCL refuses two ranks
on one GPU ("duplicate GPU"), so stages that share a GPU, or mix CPU and CUDA, use gloo and copy
activations to and from the host at the stage boundaries. The control traffic (stats, states,
the agreed split) always goes over the default gloo group.

Data-parallel replicas (``devices`` as a list of lists): the world is stages x replicas, rank
``stage * R + replica``, laid out as a ``DeviceMesh`` with dimensions ("stage", "replica").
Replica r of every stage forms one pipeline over its own shard of each batch (stage s, replica
r hands on to stage s + 1, replica r); the replicas of a stage compute the loss of the global
batch and sum their gradients over the mesh's "replica" group (``training/replicas.py``), so
the fit equals one device's (``tests/test_replicas.py``). Replicas of the first stage read
only their rows of each batch.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from deinforeg_sklearn.engines.base import (
    Augment,
    Engine,
    MaskFn,
    RankRandomState,
    RowSource,
    prepare_batch,
    step_units,
)
from deinforeg_sklearn.engines.launch import SpawnedRanks, dist_timeout
from deinforeg_sklearn.engines.placement import place_units
from deinforeg_sklearn.engines.randomness import rank_seed
from deinforeg_sklearn.engines.wavefront import WavefrontRun
from deinforeg_sklearn.training.protocols import UnitNetwork
from deinforeg_sklearn.training.replicas import (
    ReplicaGroup,
    replicas_active,
    shard,
    use_global_batch_norm,
)
from deinforeg_sklearn.training.stats import EpochStats, UnitEpochStats

#: Set to "gloo" or "nccl" to override the choice of :func:`data_backend`.
DATA_BACKEND_ENV = "DEINFOREG_DATA_BACKEND"


def data_backend(places: Sequence[tuple[str, str] | None], override: str = "auto") -> str:
    """The backend that carries activations between stages: "nccl" or "gloo".

    Parameters
    ----------
    places : sequence of (host, device) or None
        Where each rank's stage runs: its host name and CUDA device, or None for a CPU stage.
    override : {"auto", "gloo", "nccl"}
        "auto" picks NCCL only when every stage has a CUDA device that no other stage shares
        (NCCL refuses two ranks on one GPU) and this PyTorch build has NCCL.
    """
    if override not in ("auto", "gloo", "nccl"):
        raise ValueError(f"{DATA_BACKEND_ENV}={override!r}: use 'auto', 'gloo' or 'nccl'.")
    all_cuda = all(p is not None for p in places)
    if override == "nccl" and not all_cuda:
        raise ValueError(f"{DATA_BACKEND_ENV}=nccl needs every pipeline stage on a CUDA device.")
    if override != "auto":
        return override
    distinct = len(set(places)) == len(places)
    return "nccl" if all_cuda and distinct and dist.is_nccl_available() else "gloo"


@dataclass(frozen=True)
class Boundary:
    """What crosses from stage r to r + 1 for each batch: shapes per sample, and whether a mask does."""

    sample_shape: tuple[int, ...]
    mask_steps: int | None  # length of the padding mask (token input), or None


class ProcessEngine(Engine):
    """Stage ``rank`` of a pipeline whose stages are the ranks of the default process group.

    Parameters
    ----------
    network : UnitNetwork
        The whole network (every rank holds the same one); this rank trains ``stages[rank]``.
    stages : list of list of int
    devices : list of torch.device
    mask_steps : int or None
        Length of the padding mask that travels with each batch (token input), or None.
    depth : int, default=2
        Batches in flight per link.
    launcher : callable or None
        Returns a context manager that makes this process a rank of a process group for the
        length of the fit (spawned children, or torchrun's env:// group); None: the caller's
        group is already initialised.
    cpu_threads : int or None
        torch threads of this rank during the fit.
    quiet : bool
        A helper rank (not the caller's process): the fit loop reports nothing.
    replica_devices : list of list of torch.device or None
        Data-parallel replicas: per stage, the device of each replica (every stage the same
        number); ``devices`` is then replica 0's column. None: one replica per stage.
    """

    def __init__(
        self,
        network: UnitNetwork,
        stages: list[list[int]],
        devices: list[torch.device],
        mask_steps: int | None,
        depth: int = 2,
        launcher: Callable[[], contextlib.AbstractContextManager] | None = None,
        cpu_threads: int | None = None,
        quiet: bool = False,
        replica_devices: list[list[torch.device]] | None = None,
    ) -> None:
        super().__init__(network.trainers, stages, cpu_threads)
        self.replica_devices = replica_devices or [[d] for d in devices]
        self.replicas = len(self.replica_devices[0])
        self.replica_group: ReplicaGroup | None = None  # this stage's replicas, once started
        # a temporary folder of the fit (the rows that replicas map), removed at close
        self.owned_folder: tempfile.TemporaryDirectory | None = None
        self.launcher = launcher
        self.network = network
        self.devices = devices
        self.mask_steps = mask_steps
        self.depth = depth
        self.in_process = False
        self.quiet = quiet
        self.gathered_gradients: dict[int, list[float]] = {}
        self.data_group: dist.ProcessGroup | None = None  # None: the default (gloo) group
        self.data_backend = "gloo"
        self._group: contextlib.AbstractContextManager | None = None  # the launcher's, while started
        self._ranks: SpawnedRanks | None = None  # what spawned_group yields (env_group: None)
        self._saved_cuda_device: int | None = None
        self._rank_states: dict[int, RankRandomState] = {}  # ranks > 0, as of the last sync

    @property
    def rank(self) -> int:
        return dist.get_rank()

    @property
    def stage(self) -> int:
        """The pipeline stage this rank trains."""
        return self.rank // self.replicas

    @property
    def replica(self) -> int:
        """This rank's place among the replicas of its stage."""
        return self.rank % self.replicas

    @property
    def writes_checkpoints(self) -> bool:
        # Under torchrun every rank is a caller (none is quiet); rank 0 alone writes, and after
        # each epoch's sync its network holds every stage's state.
        return not self.quiet and self.rank == 0

    def _acquire(self) -> None:
        if self.launcher is not None:
            self._group = self.launcher()
            self._ranks = self._group.__enter__()
        self._agree_on_stages()
        self._pin_cuda_device()
        self._open_data_group()
        self._open_replica_group()

    def _release(self, exc: BaseException | None) -> None:
        # The launcher (spawned children, or an env:// group) sees the exception, so that it
        # can stop the other ranks and add their tracebacks to it.
        try:
            if self.replicas > 1:  # a saved model holds torch's BatchNorm, however it trained
                use_global_batch_norm([self.trainers[u].unit for u in self.stages[self.stage]], on=False)
            self.replica_group = None
            if self.data_group is not None and self._group is None and dist.is_initialized():
                # the caller's own process group stays; only the data group made here goes
                with contextlib.suppress(Exception):
                    dist.destroy_process_group(self.data_group)
            self.data_group = None
            group, self._group, self._ranks = self._group, None, None
            if group is not None:
                group.__exit__(
                    None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__
                )
        finally:
            if self.owned_folder is not None:
                self.owned_folder.cleanup()
                self.owned_folder = None
            if self._saved_cuda_device is not None:
                torch.cuda.set_device(self._saved_cuda_device)  # the caller's, as it was
                self._saved_cuda_device = None

    def boundary(self, stage: int) -> Boundary:
        """What stage ``stage`` sends to the next one."""
        last_block = self.stages[stage][-1]
        return Boundary(tuple(self.network.output_shapes[last_block]), self.mask_steps)

    def _agree_on_stages(self) -> None:
        world = dist.get_world_size()
        if world != len(self.stages) * self.replicas:
            raise ValueError(
                f"The process group has {world} ranks but the pipeline has {len(self.stages)} "
                f"stages of {self.replicas} replica(s): launch one process per device named "
                "in devices."
            )
        # this rank's pipeline is its replica's column of the grid
        self.devices = [stage[self.replica] for stage in self.replica_devices]
        # Ranks started by a launcher measured block costs on their own and may have split the
        # blocks differently; every rank must run rank 0's split.
        agreed = [self.stages]
        dist.broadcast_object_list(agreed, src=0)
        if agreed[0] != self.stages:
            self.stages = agreed[0]
            self.stage_sizes = [len(s) for s in self.stages]
            place_units(self.trainers, self.stages, self.devices)

    def _pin_cuda_device(self) -> None:
        """Make a GPU stage's device this rank's current CUDA device, on every data path.

        Work on the stage's tensors runs on their device anyway; what the pin changes is
        everything keyed to the *current* device (default streams, ``synchronize()``, the NCCL
        communicator), which would otherwise be cuda:0 in every rank and open a context there.
        ``__exit__`` restores the caller's device: rank 0 is the caller's own process.
        """
        device = self.devices[self.stage]
        if device.type == "cuda":
            self._saved_cuda_device = torch.cuda.current_device()
            torch.cuda.set_device(device)

    def _open_data_group(self) -> None:
        place_units(self.trainers, self.stages, self.devices)
        device = self.devices[self.stage]
        place = (socket.gethostname(), str(device)) if device.type == "cuda" else None
        places: list = [None] * dist.get_world_size()
        dist.all_gather_object(places, place)
        self.data_backend = data_backend(places, os.environ.get(DATA_BACKEND_ENV, "auto"))
        if self.data_backend == "nccl":
            # NCCL binds each rank to its current device, pinned by _pin_cuda_device;
            # every rank must call new_group, in the same order
            self.data_group = dist.new_group(backend="nccl")

    def _open_replica_group(self) -> None:
        """The mesh of stages x replicas, and this stage's replica group (every rank calls it)."""
        if self.replicas == 1:
            return
        from torch.distributed.device_mesh import init_device_mesh

        nccl = self.data_backend == "nccl"
        # the replica groups carry every step's gathers and gradient sums: NCCL where the
        # activations travel over NCCL too (each replica on a GPU of its own), else gloo
        mesh = init_device_mesh(
            "cuda" if nccl else "cpu",
            (len(self.stages), self.replicas),
            mesh_dim_names=("stage", "replica"),
            backend_override={"stage": "gloo", "replica": "nccl" if nccl else "gloo"},
        )
        self.replica_group = ReplicaGroup(
            mesh.get_group("replica"), self.replicas, self.replica, host_only=not nccl
        )
        use_global_batch_norm([self.trainers[u].unit for u in self.stages[self.stage]], on=True)

    def train_epoch(
        self,
        X: RowSource,
        y: torch.Tensor,
        batches: Sequence[np.ndarray],
        mask_fn: MaskFn,
        augment: Augment,
        epoch: int,
    ) -> list[UnitEpochStats]:
        stage, last = self.stage, len(self.stages) - 1
        device = self.devices[stage]
        stats = EpochStats(len(self.trainers))
        in_flight: list[list[tuple[dist.Work, torch.Tensor]]] = []

        def hand_on(done: tuple) -> None:
            if self.on_batch is not None:
                self.on_batch()
            if stage < last:
                if len(in_flight) >= self.depth:
                    for work, _ in in_flight.pop(0):
                        work.wait()
                in_flight.append(self._send(*done))

        # a wavefront stage sends batch t once its last unit has it; sends stay in batch order,
        # so the next rank receives each batch with the size it expects
        units = self.stages[stage]
        run = WavefrontRun(self.trainers, units, stats, epoch) if self.wavefront[stage] else None
        group = self.replica_group
        with run if run is not None else contextlib.nullcontext(), replicas_active(group):
            for index in batches:
                if group is not None:  # this replica's rows of the batch
                    group.set_batch(len(index))
                    index = shard(index, self.replicas, self.replica)
                if stage == 0:
                    h, yb, mask = prepare_batch(X, y, index, device, mask_fn, augment)
                else:
                    h, yb, mask = self._receive(len(index), device)
                start = time.perf_counter()
                if run is None:
                    done = (step_units(self.trainers, units, h, yb, mask, epoch, stats), yb, mask)
                else:
                    done = run.feed(h, yb, mask)
                self.busy_seconds[stage] += time.perf_counter() - start
                if done is not None:
                    hand_on(done)
            if run is not None:
                start = time.perf_counter()
                finished = run.drain()
                self.busy_seconds[stage] += time.perf_counter() - start
                for done in finished:
                    hand_on(done)
        for sends in in_flight:
            for work, _ in sends:
                work.wait()
        mine = stats.export(self.stages[stage])
        gathered: list[tuple] = [None] * dist.get_world_size()  # type: ignore[list-item]
        dist.all_gather_object(gathered, (self.rank, self.busy_seconds[stage], mine))
        # each replica's sums weigh the global batch's loss terms by its own rows, and count
        # its own correct rows: summed over the replicas they are one device's sums
        totals = EpochStats(len(self.trainers))
        for other, busy, part in gathered:
            if other % self.replicas == 0:
                self.busy_seconds[other // self.replicas] = busy
            totals.accumulate(part)
        return totals.means(sum(len(b) for b in batches))

    def seed_ranks(self, seed: int, saved: dict[int, RankRandomState] | None) -> None:
        # Rank 0's view wins: under torchrun every rank reads the checkpoint itself, and a
        # spawned rank never does.
        shared = [saved]
        dist.broadcast_object_list(shared, src=0)
        rank = self.rank
        if rank == 0:  # the estimator seeded (or restored) the caller's own stream
            return
        state = (shared[0] or {}).get(rank)
        if state is None:
            torch.manual_seed(rank_seed(seed, rank))
            return
        cpu, cuda = state
        torch.set_rng_state(cpu)
        device = self.devices[self.stage]
        if cuda is not None and device.type == "cuda":
            torch.cuda.set_rng_state(cuda, device)

    def rank_random_states(self) -> dict[int, RankRandomState]:
        return dict(self._rank_states)

    def _own_random_state(self) -> RankRandomState:
        device = self.devices[self.stage]
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def sync(self) -> None:
        """All-gather every stage's trained state (weights, buffers, optimiser, schedule).

        Each rank's random state travels with it, so that rank 0 can checkpoint it.
        """
        rank, stage = self.rank, self.stage
        # the replicas of a stage hold the same state: replica 0 sends it
        mine = {
            u: (
                {k: v.cpu() for k, v in self.trainers[u].unit.state_dict().items()},
                _cpu_state(self.trainers[u].optimizer.state_dict()),
                self.trainers[u].steps_done,
                self.trainers[u].take_gradients(),
            )
            for u in self.stages[stage]
            if self.replica == 0
        }
        gathered: list[tuple] = [None] * dist.get_world_size()  # type: ignore[list-item]
        dist.all_gather_object(gathered, (rank, self._own_random_state(), mine))
        for other, random_state, part in gathered:
            if other > 0:
                self._rank_states[other] = random_state
            for u, (module_state, optim_state, steps, grads) in part.items():
                # every rank keeps the gathered gradient means, for its history
                self.gathered_gradients[u] = grads
                if u in self.stages[stage]:
                    continue
                self.trainers[u].unit.load_state_dict(module_state)
                self.trainers[u].optimizer.load_state_dict(optim_state)
                self.trainers[u].steps_done = steps

    def validation_scores(self, score: Callable[[], np.ndarray]) -> np.ndarray:
        """Rank 0 scores the (synced) network; every rank receives its scores."""
        scores = [score() if self.rank == 0 else None]
        dist.broadcast_object_list(scores, src=0)
        return scores[0]

    def decide(self, decision: Callable[[], bool]) -> bool:
        """Rank 0 decides; every rank receives its answer."""
        answer = [bool(decision()) if self.rank == 0 else None]
        dist.broadcast_object_list(answer, src=0)
        return bool(answer[0])

    def interrupt(self) -> None:
        """Stop spawned stage processes at once (a launcher's ranks stop with their launcher)."""
        if self._ranks is not None:  # spawned_group's ranks; torchrun's stop with torchrun
            self._ranks.interrupt()

    def epoch_gradients(self) -> list[float]:
        # gathered by the last sync, from every rank
        grads = [g for u in range(len(self.trainers)) for g in self.gathered_gradients.get(u, [])]
        self.gathered_gradients = {}
        return grads

    def _send(
        self, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> list[tuple[dist.Work, torch.Tensor]]:
        """Start sending a batch to the next rank; each send is kept with its buffer until it is waited on."""
        dst = self.rank + self.replicas  # the same replica of the next stage
        tensors = [h.detach().float(), y]
        if mask is not None:
            tensors.append(mask.to(torch.uint8))
        if self.data_group is None:
            # gloo moves CPU tensors; a CUDA stage stages its output through host memory
            tensors = [t.cpu() for t in tensors]
        tensors = [t.contiguous() for t in tensors]
        return [(dist.isend(t, dst, group=self.data_group), t) for t in tensors]

    def _receive(
        self, n: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        src = self.rank - self.replicas
        boundary = self.boundary(self.stage - 1)
        # NCCL receives straight into device memory (on an NCCL stream that the current stream
        # then waits for); gloo into host memory, copied to the device afterwards.
        where = device if self.data_group is not None else torch.device("cpu")
        h = torch.empty((n, *boundary.sample_shape), dtype=torch.float32, device=where)
        yb = torch.empty(n, dtype=torch.int64, device=where)
        dist.recv(h, src, group=self.data_group)
        dist.recv(yb, src, group=self.data_group)
        mask = None
        if boundary.mask_steps is not None:
            raw = torch.empty((n, boundary.mask_steps), dtype=torch.uint8, device=where)
            dist.recv(raw, src, group=self.data_group)
            mask = raw.bool().to(device)
        return h.to(device), yb.to(device), mask


def _cpu_state(state: dict) -> dict:
    """An optimiser state_dict with every tensor on the CPU (to pickle across ranks)."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, value in state["state"].items():
        out["state"][key] = {k: v.cpu() if torch.is_tensor(v) else v for k, v in value.items()}
    return out


def launched_by_torchrun() -> bool:
    """True when this process is one rank of a launcher-made job (env:// variables set)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


@contextlib.contextmanager
def env_group() -> Iterator[None]:
    """A gloo group from the env:// variables that ``torchrun`` sets, for the length of a fit."""
    dist.init_process_group("gloo", init_method="env://", timeout=dist_timeout())
    try:
        yield
    finally:
        dist.destroy_process_group()
