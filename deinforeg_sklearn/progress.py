"""What ``verbose`` shows during ``fit``: a progress bar per epoch, or one plain line per epoch.

A terminal gets a tqdm bar that advances with each batch and ends with each block's loss and
accuracy. Output that is not a terminal (a log file, CI, a notebook's captured stream) gets one
plain line per epoch instead of a stream of carriage returns.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm.auto import tqdm


def _summary(record: dict) -> str:
    parts = []
    for i, block in enumerate(record["blocks"]):
        text = f"b{i} loss {block['loss']:.4f}"
        if block["train_accuracy"] is not None:
            text += f" acc {block['train_accuracy']:.3f}"
        if block["validation_accuracy"] is not None:
            text += f" val {block['validation_accuracy']:.3f}"
        parts.append(text)
    return " | ".join(parts)


class EpochReporter:
    """Reports epochs of one fit according to ``verbose`` (0: nothing).

    Parameters
    ----------
    verbose : int
    n_batches : int
        Batches per epoch (the length of each bar).
    stream : text stream, default=sys.stderr
    """

    def __init__(self, verbose: int, n_batches: int, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.n_batches = n_batches
        self.stream = stream if stream is not None else sys.stderr
        self.bar: tqdm | None = None

    @property
    def interactive(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def start(self, epoch: int) -> None:
        if self.verbose and self.interactive:
            self.bar = tqdm(total=self.n_batches, desc=f"epoch {epoch}", file=self.stream, leave=True)

    def batch_done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def end(self, record: dict) -> None:
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(_summary(record), refresh=True)
            self.bar.close()
            self.bar = None
        else:
            print(
                f"epoch {record['epoch']} ({record['time']:.2f}s): {_summary(record)}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
