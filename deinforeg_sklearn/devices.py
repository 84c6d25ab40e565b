"""Turning the ``devices`` parameter into checked ``torch.device`` objects."""

from __future__ import annotations

import torch

DeviceLike = int | str | torch.device


def resolve_device(device: DeviceLike | None) -> torch.device:
    """One device, checked to exist on this machine (None means CPU)."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, bool):
        raise ValueError(f"device {device!r} is not a device: use 'cpu', 'cuda:N' or an int.")
    try:
        dev = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{device!r} is not a device: use 'cpu', 'cuda:N', an int or torch.device.") from exc
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if dev.index is None else dev.index
        if index >= count:
            raise ValueError(
                f"Device {dev} is not present: this machine has {count} CUDA device(s). "
                "Use devices=None or 'cpu' here."
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("Device mps is not present on this machine: use devices=None or 'cpu'.")
    elif dev.type != "cpu":
        raise ValueError(f"Device type {dev.type!r} is not supported: use 'cpu' or 'cuda:N'.")
    return dev


def resolve_devices(devices: DeviceLike | list | tuple | None) -> list[torch.device]:
    """The list of devices named by ``devices`` (one per pipeline stage), each checked."""
    if devices is None or isinstance(devices, (int, str, torch.device)):
        return [resolve_device(devices)]
    if len(devices) == 0:
        raise ValueError("devices is an empty list: use None, one device, or a list of devices.")
    return [resolve_device(d) for d in devices]


def resolve_device_grid(devices: DeviceLike | list | tuple | None) -> list[list[torch.device]]:
    """Per pipeline stage, the device of each data-parallel replica, each checked.

    ``devices`` as :func:`resolve_devices` takes it (one replica per stage), or a list of lists:
    outer = stages, inner = the replicas of that stage, e.g. ``[[0, 1], [2, 3]]`` or
    ``[["cpu", "cpu"]]``. Every stage must have the same number of replicas.
    """
    nested = isinstance(devices, (list, tuple)) and any(isinstance(d, (list, tuple)) for d in devices)
    if not nested:
        return [[d] for d in resolve_devices(devices)]
    if not all(isinstance(d, (list, tuple)) for d in devices):
        raise ValueError(
            f"devices={devices!r} mixes devices and lists: give a list of devices (one per "
            "stage) or a list of lists (per stage, its data-parallel replicas), e.g. [[0, 1], [2, 3]]."
        )
    grid = [resolve_devices(list(stage)) for stage in devices]
    counts = sorted({len(stage) for stage in grid})
    if len(counts) > 1:
        raise ValueError(
            f"devices={devices!r} gives the stages {', '.join(str(len(s)) for s in grid)} "
            "replicas: every stage needs the same number of replicas."
        )
    return grid
