"""Handing a batch from one pipeline stage to the next, across devices and CUDA streams.

On CUDA each stage works on its own stream, so stages on one GPU can overlap. A tensor made on
stage l's stream must not be read by stage l+1 before it is ready, and must not be freed and
reused by stage l's allocator while stage l+1 still reads it:

* the producer records an event on the stream that finished the tensor, after the copy;
* the consumer makes its stream wait for that event (the host does not block);
* ``record_stream`` tells the caching allocator that the consumer's stream uses the memory.

On the CPU all of this is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Handoff:
    """Tensors in flight between two stages, with the event that says they are ready."""

    tensors: tuple[torch.Tensor | None, ...]
    ready: torch.cuda.Event | None = None


def send(tensors: tuple[torch.Tensor | None, ...], device: torch.device) -> Handoff:
    """Copy ``tensors`` to ``device`` (asynchronously on CUDA) and mark when they are ready."""
    # Only copies into CUDA memory may be asynchronous: the event below orders them. A
    # non-blocking copy into host memory could be read by a CPU stage before it has landed.
    non_blocking = device.type == "cuda"
    moved = tuple(None if t is None else t.to(device, non_blocking=non_blocking) for t in tensors)
    ready = None
    if device.type == "cuda":
        # Cross-device copies are ordered on the destination's current stream; record there.
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(device))
    return Handoff(moved, ready)


def receive(handoff: Handoff, stream: torch.cuda.Stream | None) -> tuple[torch.Tensor | None, ...]:
    """Make ``stream`` wait for the handoff and register its tensors with that stream."""
    if stream is not None and handoff.ready is not None:
        stream.wait_event(handoff.ready)
        for t in handoff.tensors:
            if t is not None:
                t.record_stream(stream)
    return handoff.tensors
