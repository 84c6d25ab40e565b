"""Whether a network's training steps draw random numbers, and which stages would share a stream.

Why the engine cares: torch has one random generator per device in a process. Dropout draws
from the generator of its tensors' device, so two thread-engine stages on the same device (two
CPU stages, or two stages on one GPU) draw from one generator in whatever order their threads
reach it, and a fit with ``random_state`` set is not reproducible. Stage processes each own their
generators (seeded per rank, :func:`rank_seed`), and stages on distinct GPUs own theirs, which
the thread engine seeds apart (:func:`cuda_stage_seeds`): ``torch.manual_seed`` gives every
GPU's generator the same seed, and two GPUs with one seed draw the same dropout masks.

Whether a block draws is measured, not guessed from its module types: a custom block may call
``torch.rand`` itself. One training-mode forward of every unit runs on a probe batch, on copies
and inside a forked generator, and the generator's state before and after is compared.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence

import torch

from deinforeg_sklearn.blocks.streams import derived_seed
from deinforeg_sklearn.training.step import StepTrainer, detached


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of pipeline rank (or stage) ``rank`` in a fit seeded with ``seed``.

    Drawn from a ``SeedSequence`` of both (:func:`~deinforeg_sklearn.blocks.streams.derived_seed`).
    Rank 0 keeps ``seed`` itself.
    """
    return derived_seed(seed, rank)


def cuda_stage_seeds(devices: Sequence[torch.device], seed: int) -> dict[int, int]:
    """Seeds for the GPUs of a thread-engine pipeline: ``{cuda index: seed}``.

    The first GPU in stage order keeps the estimator's ``seed``; every other GPU gets
    ``rank_seed(seed, s)``, ``s`` the first stage on it, as a stage process of that rank would.
    Stages that share a GPU share its stream (see :func:`shared_stream_devices`).
    """
    seeds: dict[int, int] = {}
    for stage, device in enumerate(devices):
        if device.type != "cuda":
            continue
        _, index = _generator_key(device)
        if index not in seeds:
            seeds[index] = seed if not seeds else rank_seed(seed, stage)
    return seeds


def shared_stream_devices(devices: Sequence[torch.device]) -> list[torch.device]:
    """Devices that host two or more stages: thread stages there share one generator."""
    counts = Counter(_generator_key(d) for d in devices)
    return [d for d in dict.fromkeys(devices) if counts[_generator_key(d)] > 1]


def draws_random_numbers(
    trainers: Sequence[StepTrainer], x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
) -> bool:
    """Whether a training-mode forward of the units draws from the generator of ``x``'s device.

    The units must sit on ``x``'s device. They run on deep copies (BatchNorm statistics move in
    training mode) without gradients, and the generator is restored afterwards, so the fit
    itself is unchanged.
    """
    device = x.device
    cuda = [device] if device.type == "cuda" else []
    units = copy.deepcopy([trainer.unit for trainer in trainers])
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        before = _state(device)
        h = x
        for unit in units:
            unit.train()
            h_out, _, _ = unit.step_loss(h, y, mask)
            h = detached(h_out)
        return not torch.equal(before, _state(device))


def _state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _generator_key(device: torch.device) -> tuple[str, int]:
    # "cuda" and "cuda:0" name one generator when device 0 is the current one
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return ("cuda", index)
    return (device.type, 0)
