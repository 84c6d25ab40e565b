"""Moving a fitted network through bytes: pickling, and save / load in a torch file.

A model trained on CUDA must still load where CUDA is absent (or has fewer devices): every
storage saved on a device that is not present here is restored on the CPU instead, with a
warning, rather than failing the whole unpickle as plain ``torch.load`` would.
"""

from __future__ import annotations

import io
import warnings

import torch

#: Marks a file written by ``save`` so that ``load`` can say clearly when a file is something else.
FILE_FORMAT = "deinforeg-sklearn estimator"


def _device_present(location: str) -> bool:
    if location.startswith("cuda"):
        index = int(location.split(":")[1]) if ":" in location else 0
        return torch.cuda.is_available() and index < torch.cuda.device_count()
    if location.startswith("mps"):
        return torch.backends.mps.is_available()
    return True


def network_to_bytes(network: torch.nn.Module) -> bytes:
    """The network (modules, optimisers, schedules) as torch-serialised bytes."""
    buffer = io.BytesIO()
    torch.save(network, buffer)
    return buffer.getvalue()


def network_from_bytes(data: bytes) -> torch.nn.Module:
    """Inverse of :func:`network_to_bytes`; storages of absent devices land on the CPU."""
    moved: set[str] = set()

    def restore(storage, location: str):
        if _device_present(location):
            return None  # torch's default: restore where it was saved
        moved.add(location)
        return storage  # the CPU copy torch made while reading

    network = torch.load(io.BytesIO(data), map_location=restore, weights_only=False)
    if moved:
        warnings.warn(
            f"The model was saved on {', '.join(sorted(moved))}, which is not present here; it "
            "was loaded on the CPU.",
            UserWarning,
            stacklevel=3,
        )
    return network


def first_device(network: torch.nn.Module) -> torch.device:
    """The device of the network's first parameter (where prediction batches start)."""
    return next(network.parameters()).device
