"""Where the data loaders look for files."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache() -> Path:
    """``$DEINFOREG_DATA`` or ``~/.cache/deinforeg-sklearn``."""
    return Path(os.environ.get("DEINFOREG_DATA", Path.home() / ".cache" / "deinforeg-sklearn"))


def missing(path: Path, what: str, how: str) -> FileNotFoundError:
    """The error a loader raises when its files are not where it looked."""
    return FileNotFoundError(f"{what} not found at {path}: {how}")
