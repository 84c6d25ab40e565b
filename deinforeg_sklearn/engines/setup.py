"""The one entry point from "train this network on these devices" to a started engine.

Why one place: setting up a pipeline takes measurements (the cost of each block's step on a
probe batch, with the threads each stage will get), a placement (given, or balanced on those
costs), moving units to their devices, a choice of engine, and for the process engine the ranks
themselves, each with the network, the plan and the work it runs. None of that is the
estimator's business. It checks the request before any work (:meth:`EngineRequest.check`) and
asks :func:`start_engine` for a started engine.

A spawned rank receives ``work`` (the fit loop) with the network and plan, never an estimator.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deinforeg_sklearn._frames import user_stacklevel
from deinforeg_sklearn.data.inputs import Rows
from deinforeg_sklearn.data.mapped import mapped_rows
from deinforeg_sklearn.engines.base import Engine
from deinforeg_sklearn.engines.choice import (
    auto_devices,
    cpu_pipeline_pays,
    cpu_pipeline_seconds,
    cpu_threads_per_stage,
    default_engine,
)
from deinforeg_sklearn.engines.launch import dumps, spawned_group
from deinforeg_sklearn.engines.placement import (
    balance,
    check_placement,
    place_units,
    stage_units,
)
from deinforeg_sklearn.engines.probe import (
    probe_batch,
    probes_cpu_replicas,
    unit_costs,
    warn_if_cpu_replicas_do_not_pay,
)
from deinforeg_sklearn.engines.processes import ProcessEngine, env_group, launched_by_torchrun
from deinforeg_sklearn.engines.randomness import draws_random_numbers, shared_stream_devices
from deinforeg_sklearn.engines.sequential import SequentialEngine
from deinforeg_sklearn.engines.threads import ThreadEngine
from deinforeg_sklearn.engines.wavefront import WavefrontEngine
from deinforeg_sklearn.training.plan import FitPlan
from deinforeg_sklearn.training.protocols import UnitNetwork
from deinforeg_sklearn.training.stacked import stack_groups

#: What every rank runs once the engine is started: ``work(network, engine, plan, history)``.
#: It must pickle (spawned ranks receive it), e.g. a ``FitLoop``.
Work = Callable[[UnitNetwork, Engine, FitPlan, list[dict]], object]

ENGINE_KINDS = ("auto", "threads", "processes")
SCHEDULES = ("auto", "sequential", "wavefront")


@dataclass(frozen=True)
class EngineRequest:
    """Where a fit trains and how, checked against the size of the network before any work.

    Attributes
    ----------
    devices : tuple of torch.device
        One per pipeline stage (one device: no pipeline).
    counts : tuple of int or None
        Units per stage, given by the user; None: balanced by measured cost.
    kind : {"auto", "threads", "processes"}
    auto : bool
        ``devices="auto"``: ``devices`` are the stages that may be used; CPU stages are used
        only when a probe predicts that they beat one device (:func:`cpu_pipeline_pays`).
    schedule : {"auto", "sequential", "wavefront"}
        How the units of one device, or of each pipeline stage, train
        (:func:`one_device_engine`, :func:`stage_schedules`).
    replica_devices : tuple of tuple of torch.device or None
        Data-parallel replicas: per stage, the device of each replica (``devices`` holds
        replica 0 of each stage); None: one replica per stage.
    """

    devices: tuple[torch.device, ...]
    counts: tuple[int, ...] | None = None
    kind: str = "auto"
    auto: bool = False
    schedule: str = "auto"
    replica_devices: tuple[tuple[torch.device, ...], ...] | None = None

    @property
    def replicas(self) -> int:
        """Data-parallel replicas of each stage."""
        return 1 if self.replica_devices is None else len(self.replica_devices[0])

    @classmethod
    def check(
        cls,
        devices: Sequence[torch.device],
        n_units: int,
        placement: Sequence[int] | None = None,
        kind: str = "auto",
        auto: bool = False,
        schedule: str = "auto",
        replica_devices: Sequence[Sequence[torch.device]] | None = None,
    ) -> EngineRequest:
        """Validate a request for a network of ``n_units`` units.

        ``auto=True`` (``devices="auto"``): ``devices`` are ignored, and the candidate stages
        are :func:`auto_devices`. ``replica_devices``: per stage, its data-parallel replicas
        (one each: no replicas).

        Raises
        ------
        ValueError
            More devices than units, a placement that does not fit, an unknown engine or
            schedule, or replicas with what they cannot run with.
        """
        grid = None
        if replica_devices and max(len(stage) for stage in replica_devices) > 1:
            grid = tuple(tuple(stage) for stage in replica_devices)
            _check_replicas(kind, schedule)
        if kind not in ENGINE_KINDS:
            raise ValueError(f"engine={kind!r}: use one of {', '.join(map(repr, ENGINE_KINDS))}.")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule={schedule!r}: use one of {', '.join(map(repr, SCHEDULES))}.")
        if auto:
            if placement is not None:
                raise ValueError(
                    "placement needs a list of devices; devices='auto' chooses the stages itself. "
                    "Pass devices=[...] with placement, or leave placement=None."
                )
            devices = auto_devices(n_units)
        if len(devices) > n_units:
            raise ValueError(
                f"devices names {len(devices)} stages but there are only {n_units} blocks: "
                "give at most one device per block."
            )
        counts = None if placement is None else tuple(check_placement(placement, n_units, len(devices)))
        return cls(tuple(devices), counts, kind, auto, schedule, grid)


def _check_replicas(kind: str, schedule: str) -> None:
    """What data-parallel replicas cannot be combined with, said before any work."""
    if kind == "threads":
        raise ValueError(
            "engine='threads' cannot run data-parallel replicas (devices as a list of lists): "
            "replicas are processes that sum their gradients over torch.distributed. Use "
            "engine='auto' or 'processes'."
        )
    if schedule == "wavefront":
        raise ValueError(
            "schedule='wavefront' does not run with data-parallel replicas yet: each replica "
            "trains its stage's blocks one after the other. Use schedule='auto' or 'sequential'."
        )


def start_engine(
    request: EngineRequest, network: UnitNetwork, plan: FitPlan, history: list[dict], work: Work
) -> Engine:
    """Place ``network`` as ``request`` says and return its started engine.

    One device: the sequential engine. Several: units are split into stages (the given
    placement, or balanced on the measured cost of each unit's step), moved to their devices,
    and run by the thread or process engine (``kind``, or for "auto": processes when stages
    that share a device draw random numbers, see :mod:`~deinforeg_sklearn.engines.randomness`,
    else :func:`default_engine`).
    Use the result as a context manager (``with start_engine(...) as engine:``) so that it is
    closed, whatever happens.

    Parameters
    ----------
    request : EngineRequest
    network : UnitNetwork
    plan : FitPlan
        The fit's data; a probe batch of it measures the step costs.
    history : list of dict
        History so far (a warm start's); spawned ranks start from a copy.
    work : Work
        What spawned ranks run on their copy of network, plan and history.
    """
    devices, costs = list(request.devices), None
    if request.auto and len(devices) > 1 and devices[0].type == "cpu":
        devices, costs = _auto_cpu_stages(network, devices, plan)
    elif _may_run_in_one_process(request, devices):
        devices, costs = _explicit_cpu_stages(network, devices, plan, request.counts)
    if request.replicas > 1:
        grid = request.replica_devices or ()
        if probes_cpu_replicas(grid):
            warn_if_cpu_replicas_do_not_pay(network, grid, request.counts, plan)
        engine: Engine = _replica_engine(request, network, plan, history, work)
    elif len(devices) == 1:
        network.to(devices[0])
        engine = one_device_engine(network, devices[0], plan, request.schedule)
    else:
        if costs is None and (
            request.counts is None or (request.kind == "auto" and devices[0].type == "cpu")
        ):
            costs = unit_costs(network, devices, plan)
        counts = list(request.counts) if request.counts is not None else balance(costs, len(devices))
        stages = stage_units(counts)
        shared = shared_stream_devices(devices)
        shares_a_stream = bool(shared) and request.kind != "processes" and _draws_on(network, plan, shared[0])
        # before placement: the probe for random draws moves the whole network to one device
        wavefront = stage_schedules(network, stages, devices, plan, request.schedule)
        place_units(network.trainers, stages, devices)
        kind = request.kind
        if kind == "auto":
            slowest = None if costs is None else max(sum(costs[u] for u in units) for units in stages)
            # stage processes own their random streams; threads on one device would share one
            kind = "processes" if shares_a_stream else default_engine(devices, slowest)
        elif shares_a_stream:
            warnings.warn(
                f"engine='threads' with several stages on {shared[0]}, whose blocks draw random "
                "numbers in training (e.g. dropout): those stages share one random generator and "
                "draw from it in no fixed order, so the fit is not reproducible. Use "
                "engine='processes' (a generator per stage), one stage per device, or one device.",
                UserWarning,
                stacklevel=2,
            )
        engine = pipeline_engine(network, stages, devices, plan, history, work, kind, wavefront=wavefront)
    engine.start()
    return engine


def _replica_engine(
    request: EngineRequest, network: UnitNetwork, plan: FitPlan, history: list[dict], work: Work
) -> Engine:
    """The process engine of a grid of stages x data-parallel replicas (``training/replicas.py``).

    Stages are balanced on unit costs as for a pipeline; each stage trains its units one after
    the other (the wavefront's stacked losses do not gather over replicas yet).
    """
    devices = list(request.devices)
    if request.counts is not None:
        counts = list(request.counts)
    elif len(devices) == 1:
        counts = [len(network.trainers)]
    else:
        counts = balance(unit_costs(network, devices, plan), len(devices))
    stages = stage_units(counts)
    place_units(network.trainers, stages, devices)
    grid = [list(stage) for stage in request.replica_devices or ()]
    return pipeline_engine(network, stages, devices, plan, history, work, "processes", replica_devices=grid)


def writes_checkpoints(request: EngineRequest) -> bool:
    """Whether this process writes the fit's checkpoint, and so must hold the folder's lock.

    Under torchrun or an initialised process group the ranks of a pipeline are its stages, and
    rank 0 alone writes (after each epoch's sync its network holds every stage): the other
    ranks read the checkpoint to resume, and must not lock the folder that rank 0 writes.
    Every other fit writes its own checkpoint.
    """
    if len(request.devices) < 2 and request.replicas < 2:
        return True
    if dist.is_initialized():
        return dist.get_rank() == 0
    return not launched_by_torchrun() or int(os.environ["RANK"]) == 0


def one_device_engine(network: UnitNetwork, device: torch.device, plan: FitPlan, schedule: str) -> Engine:
    """The (unstarted) engine of a fit on one device, as ``schedule`` asks.

    "auto" takes the wavefront on a CPU when it has same-shaped blocks to batch (without them it
    saves only a backward call per block, within noise on 2 CPU cores) and no unit draws random
    numbers in training: interleaved units would draw them in another order than the
    sequential loop, and the fit would no longer equal it. A forced "wavefront" on such units
    warns instead. On a GPU "auto" stays sequential until the wavefront has been measured there
    (``benchmarks/gpu_checks.sh wavefront``); it equals the sequential fit only to rounding
    there, as GPU kernels sum in their own order.
    """
    trainers = network.trainers
    if stage_schedules(network, [list(range(len(trainers)))], [device], plan, schedule)[0]:
        return WavefrontEngine(trainers, device)
    return SequentialEngine(trainers, device)


def stage_schedules(
    network: UnitNetwork,
    stages: list[list[int]],
    devices: list[torch.device],
    plan: FitPlan,
    schedule: str,
) -> list[bool]:
    """Per pipeline stage, whether it trains its units as a wavefront.

    The rule of :func:`one_device_engine` (which asks it for one stage of every unit), per
    stage: "auto" on a CPU stage that has
    same-shaped blocks to stack, when no unit draws random numbers in training; "wavefront"
    on every stage of two units or more (with the same warning about random draws);
    "sequential" on none. A stage's wavefront hands on each batch once its last unit has it,
    so the next stage sees the batches in order and the fit equals the sequential one
    (``tests/test_wavefront.py``).
    """
    trainers = network.trainers
    candidates = [
        len(units) > 1
        and schedule != "sequential"
        and (
            schedule == "wavefront"
            or (device.type == "cpu" and bool(stack_groups([trainers[u] for u in units])))
        )
        for units, device in zip(stages, devices, strict=True)
    ]
    if not any(candidates):
        return candidates
    if _draws_on(network, plan, devices[0]):
        if schedule == "auto":
            return [False] * len(stages)
        warnings.warn(
            "schedule='wavefront' with blocks that draw random numbers in training (e.g. "
            "dropout): they draw in another order than in the sequential loop, so the fit is "
            "reproducible but differs from schedule='sequential'.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return candidates


def _auto_cpu_stages(
    network: UnitNetwork, candidates: list[torch.device], plan: FitPlan
) -> tuple[list[torch.device], list[float] | None]:
    """``devices="auto"`` on CPU: the candidate stages when they pay, else one device.

    Returns the devices and, for stages, the unit costs measured with their threads (reused
    to balance them).
    """
    pays, staged, _ = _cpu_stages_pay(network, candidates, plan, None)
    return (candidates, staged) if pays else (candidates[:1], None)


def _may_run_in_one_process(request: EngineRequest, devices: list[torch.device]) -> bool:
    """Whether explicit stages may be merged into one device when they do not pay.

    Only CPU stages under ``engine="auto"`` (a named engine forces the stages), and never under
    torchrun or an initialised process group, whose ranks are the stages.
    """
    return (
        not request.auto
        and request.replicas == 1
        and request.kind == "auto"
        and len(devices) > 1
        and all(d.type == "cpu" for d in devices)
        and not dist.is_initialized()
        and not launched_by_torchrun()
    )


def _explicit_cpu_stages(
    network: UnitNetwork, devices: list[torch.device], plan: FitPlan, counts: Sequence[int] | None
) -> tuple[list[torch.device], list[float] | None]:
    """Explicit CPU stages: kept when the probe predicts that they pay, else one device.

    Why: on a few cores, stages split the threads that one device would use, and hand every
    batch over; for blocks with short steps that costs more than the overlap gains (4 x
    Dense(256): 2 stages took 2.1x one device's time, docs/results/wavefront.md). A user who
    asked for stages is told, with the predicted times, and how to force them.
    """
    pays, staged, message = _cpu_stages_pay(network, devices, plan, counts)
    if pays:
        return devices, staged
    warnings.warn(
        f"devices names {len(devices)} CPU stages, but a probe step of each block predicts "
        f"{message}: the hand-over of each batch between stages costs more than running "
        "them side by side saves, so the blocks train on one device in this process "
        "(devices_ says so). Pass engine='threads' or engine='processes' to run the stages "
        "anyway, or devices=None to silence this warning.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
    return devices[:1], None


def _cpu_stages_pay(
    network: UnitNetwork, devices: list[torch.device], plan: FitPlan, counts: Sequence[int] | None
) -> tuple[bool, list[float], str]:
    """Whether CPU stages on ``devices`` pay (:func:`cpu_pipeline_pays`), their unit costs,
    and the prediction in words."""
    sequential = unit_costs(network, devices[:1], plan, repeats=1)
    staged = unit_costs(network, devices, plan, repeats=1)
    counts = list(counts) if counts is not None else balance(staged, len(devices))
    pays, _ = cpu_pipeline_pays(sequential, staged, counts, plan.n_batches, plan.epochs)
    piped, one_device, kind = cpu_pipeline_seconds(sequential, staged, counts, plan.n_batches, plan.epochs)
    return pays, staged, f"{piped:.1f} s on stages ({kind}) against {one_device:.1f} s on one device"


def _draws_on(network: UnitNetwork, plan: FitPlan, device: torch.device) -> bool:
    """Whether the network's training forward draws random numbers on ``device`` (a probe batch)."""
    return draws_random_numbers(network.trainers, *probe_batch(network, plan, device))


def pipeline_engine(
    network: UnitNetwork,
    stages: list[list[int]],
    devices: list[torch.device],
    plan: FitPlan,
    history: list[dict],
    work: Work,
    kind: str,
    wavefront: Sequence[bool] | None = None,
    replica_devices: list[list[torch.device]] | None = None,
) -> Engine:
    """The (unstarted) engine that trains ``network`` as a pipeline of ``stages`` on ``devices``.

    CPU stages share the thread budget: see :func:`~deinforeg_sklearn.engines.cpu_threads_per_stage`.
    ``wavefront``: per stage, whether it trains its units as a wavefront (:func:`stage_schedules`).
    ``replica_devices``: per stage, the device of each data-parallel replica (process engine).
    """
    grid = replica_devices or [[d] for d in devices]
    replicas = len(grid[0])
    cpu_threads = cpu_threads_per_stage([d for stage in grid for d in stage])
    wavefront = list(wavefront) if wavefront is not None else [False] * len(stages)
    if kind == "threads":
        engine: Engine = ThreadEngine(network.trainers, stages, devices, cpu_threads=cpu_threads)
        engine.wavefront = wavefront
        return engine
    folder = None
    if dist.is_initialized():
        launcher = None  # the caller's own process group: this process is one rank of it
    elif launched_by_torchrun():
        launcher = env_group
    else:
        world = len(stages) * replicas
        folder = tempfile.TemporaryDirectory(prefix="deinforeg-rows-") if replicas > 1 else None
        helper = helper_plan(plan)
        common = (work, network, list(history), stages, devices, plan.mask_steps, wavefront, grid)
        payload = dumps((helper, *common))
        payloads = {rank: payload for rank in range(replicas, world)}
        if folder is not None:  # replicas of the first stage read their rows from a file of X
            reader = dumps((replica_plan(plan, folder.name), *common))
            payloads.update(dict.fromkeys(range(1, replicas), reader))
        names = functools.partial(rank_name, replicas) if replicas > 1 else None
        launcher = functools.partial(
            spawned_group, world, payloads, run_stage_process, cpu_threads or 1, names
        )
    engine = ProcessEngine(
        network,
        stages,
        devices,
        plan.mask_steps,
        launcher=launcher,
        cpu_threads=cpu_threads,
        replica_devices=grid,
    )
    engine.wavefront = wavefront
    engine.owned_folder = folder  # removed when the engine closes
    return engine


def helper_plan(plan: FitPlan) -> FitPlan:
    """The plan a rank > 0 needs: the batch order and sizes, but no rows and no augmentation.

    Ranks > 0 receive every batch (inputs and labels) from the previous stage and leave the
    validation pass to rank 0, so X and y shrink to empty tensors of the same shapes (fresh
    ones: ``torch.save`` of a slice would write the whole storage behind it).
    """
    X = Rows(torch.empty((0, *plan.X.shape[1:]), dtype=plan.X.storage_dtype), plan.X.scale, plan.X.tokens)
    y = torch.empty((0,), dtype=plan.y.dtype)
    return dataclasses.replace(plan, X=X, y=y, augment=None, X_val=None, y_val=None)


def rank_name(replicas: int, rank: int) -> str:
    """How an error report names rank ``rank`` of a grid of stages x ``replicas``."""
    return f"pipeline stage {rank // replicas}, replica {rank % replicas} (rank {rank})"


def replica_plan(plan: FitPlan, folder: str) -> FitPlan:
    """The plan of a replica of the first stage in another process: every row of X, as a file.

    It reads its shard of each batch itself (``data/mapped.py``: X is written once into
    ``folder`` and mapped, so no payload holds it) and augments it with its own random stream;
    validation stays with rank 0.
    """
    return dataclasses.replace(plan, X=mapped_rows(plan.X, folder), X_val=None, y_val=None)


def run_stage_process(rank: int, payload: tuple) -> None:
    """Body of a spawned rank: ``work`` on its own copy of the network, on its own stage."""
    plan, work, network, history, stages, devices, mask_steps, wavefront, grid = payload
    engine = ProcessEngine(network, stages, devices, mask_steps, quiet=True, replica_devices=grid)
    engine.wavefront = wavefront
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank 0 reports warnings to the user
        with engine:
            work(network, engine, plan, history)
