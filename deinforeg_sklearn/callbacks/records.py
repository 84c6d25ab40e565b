"""One ``history_`` record as flat named scalars: what a logger writes per epoch."""

from __future__ import annotations

from typing import Any


def flat_record(record: dict) -> dict[str, float]:
    """The scalars of an epoch's record, named for a dashboard or a CSV column.

    ``epoch``, ``time`` (seconds of training), ``learning_rate``, ``validation_score/<h>`` for
    each head h (1-based, as the blocks are numbered in messages) and ``block<l>/<name>`` for
    each block's stats (``loss``, ``train_accuracy``, ``validation_accuracy``, the loss
    terms). Entries that are None (no validation) are left out; so are lists that are not
    per-head scores (``stage_busy``, ``encoder_gradients``).
    """
    flat: dict[str, float] = {}
    for key in ("epoch", "time", "learning_rate"):
        if record.get(key) is not None:
            flat[key] = float(record[key])
    for head, score in enumerate(record.get("validation_scores") or [], start=1):
        flat[f"validation_score/{head}"] = float(score)
    for block, stats in enumerate(record.get("blocks") or [], start=1):
        for name, value in stats.items():
            if _is_number(value):
                flat[f"block{block}/{name}"] = float(value)
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
