"""Each block's initial weights drawn from a random stream of its own.

Blocks are trained by their own losses, so what a block learns depends only on its initial
weights, the blocks before it and the batches. If every module drew its initial weights from
one shared stream, the draws of block 3's projector would depend on how many encoders were
built before it: adding a fifth block, or a projector to block 1, would change every block's
starting point, and a 12-block network would share nothing with the 4-block one it is compared
with. With a stream per block and part, seeded from the fit's seed, the block index and the
part, the first k blocks of a deeper network start from exactly the weights of the k-block
network, and, when training draws no random numbers (no dropout or augmentation), end at them:
a comparison of depths is paired, and its difference is the added blocks' alone.

The global generator is forked around each block's construction, so it leaves the network
build in the state the fit seeded it with, whatever the depth.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum

import numpy as np
import torch


class Part(IntEnum):
    """Which modules of a block a stream initialises (part of the stream's seed)."""

    ENCODER = 0
    #: the block's projector and classifier (and a method's per-block label modules)
    HEAD = 1
    #: a network-level head after the last block (BP's and SCPL's classifier)
    OUTPUT = 2


def derived_seed(*keys: int) -> int:
    """A torch seed drawn from a ``SeedSequence`` of ``keys``.

    Neighbouring keys give unrelated streams rather than shifted copies of one another, and
    key tuples of different lengths never share one.
    """
    state = np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0]
    return int(state >> 1)  # torch.manual_seed takes at most 2**63 - 1 in every version


def block_seed(seed: int, index: int, part: Part) -> int:
    """The torch seed of block ``index``'s ``part`` in a fit seeded with ``seed``.

    None equals a pipeline rank's seed (``engines.randomness.rank_seed``, two keys).
    """
    return derived_seed(seed, index, int(part))


@contextmanager
def block_stream(seed: int | None, index: int, part: Part) -> Iterator[None]:
    """Build modules inside this block to draw their weights from its own stream.

    ``seed=None`` draws from the global generator as it stands (a network built outside a
    fit). Blocks are built on the CPU and moved afterwards, so only the CPU generator is forked;
    a custom block that creates its modules on a GPU draws from that GPU's generator, which the
    fit seeds as a whole (reproducible, but not independent of the blocks before it).
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(block_seed(seed, index, part))
        yield
