"""Peak memory of a fit against the size of its data: X read in place, not copied to float32.

Rows of ``benchmarks/memory.py --data``. Each run is a fresh process that builds (or maps) a
uint8 array of CIFAR-shaped rows (3 x 32 x 32 = 3,072 bytes each), fits DeInfoReg with default
parameters apart from ``blocks=[Dense(32)]``, one epoch, ``input_scale=1/255``, and reports its
peak resident memory (``ru_maxrss``) minus the resident memory just before ``fit``, divided by
the uint8 size of the data. A warm-up fit on 256 rows runs first, so torch's one-off start-up
allocations are not counted as data. The storages:

- ``memmap``: ``np.memmap(mode="r")`` over a file; pages become resident as the epoch reads
  them, so about 1x is the floor (the page cache), and the target is at most 1.5x.
- ``array``: a uint8 array already in memory; growth is what the fit adds on top.
- ``float32 copy``: the caller converts to float32 inside the measured region, which is what
  ``fit`` itself did before it read X in place (4x the uint8 size, for comparison).

What lies above 1x (memmap) or 0 (array) is the validation split's rows (10 % of X, gathered
in uint8 by default, 0.1x) and the fit's own buffers (network, batches), which do not grow
with the data.

Run alone (2 CPU cores; torch.set_num_threads(2)):
    python benchmarks/memory.py --data --sizes-mib 256 1024
Results: docs/results/memory_data.md and .csv
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROW_BYTES = 3 * 32 * 32
STORAGES = ("memmap", "array", "float32 copy")


def write_data(path: Path, n_rows: int, seed: int = 0) -> None:
    """A uint8 file of ``n_rows`` random rows, written in chunks (never all in memory)."""
    rng = np.random.default_rng(seed)
    out = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n_rows, ROW_BYTES))
    for start in range(0, n_rows, 16384):
        stop = min(n_rows, start + 16384)
        out[start:stop] = rng.integers(0, 256, (stop - start, ROW_BYTES), dtype=np.uint8)
    out.flush()
    del out


def labels(n_rows: int) -> np.ndarray:
    return np.arange(n_rows) % 10


def child(storage: str, path: str, n_rows: int) -> dict:
    """One measured fit (in its own process); returns the row of the table."""
    import torch
    from experiment import current_rss_mib, peak_rss_mib, reset_peak_rss

    from deinforeg_sklearn import DeInfoRegClassifier
    from deinforeg_sklearn.blocks import Dense

    torch.set_num_threads(2)
    y = labels(n_rows)
    params = dict(blocks=[Dense(32)], max_iter=1, input_scale=1 / 255, random_state=0)
    warm = np.random.default_rng(1).integers(0, 256, (256, ROW_BYTES), dtype=np.uint8)
    DeInfoRegClassifier(**params).fit(warm, labels(256))  # torch's one-off allocations
    if storage == "memmap":
        X = np.memmap(path, dtype=np.uint8, mode="r", shape=(n_rows, ROW_BYTES))
    else:
        # read, not mapped: copying out of a map would hold map and copy at once
        X = np.fromfile(path, dtype=np.uint8).reshape(n_rows, ROW_BYTES)
    reset_peak_rss()  # the warm-up fit and the read of X must not count as the fit's peak
    before = current_rss_mib()
    start = time.perf_counter()
    if storage == "float32 copy":
        DeInfoRegClassifier(**params).fit(X.astype(np.float32), y)
    else:
        DeInfoRegClassifier(**params).fit(X, y)
    seconds = time.perf_counter() - start
    grown = peak_rss_mib() - before
    data_mib = n_rows * ROW_BYTES / 2**20
    return {
        "storage": storage,
        "data_mib_uint8": round(data_mib, 1),
        "rows": n_rows,
        "peak_rss_growth_mib": round(grown, 1),
        "growth_over_uint8_size": round(grown / data_mib, 2),
        "fit_seconds": round(seconds, 1),
    }


def run(sizes_mib: list[int], out: Path) -> list[dict]:
    """Measure every storage at every size, one fresh process each; write the page."""
    from report import child_result, table, write_csv, write_page

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes_mib:
            n_rows = int(size * 2**20 // ROW_BYTES)
            path = Path(folder) / f"x{size}.u8"
            write_data(path, n_rows)
            for storage in STORAGES:
                command = [sys.executable, __file__, "--child", storage, str(path), str(n_rows)]
                row = child_result(command, f"{storage} at {size} MiB")
                rows.append(row)
                print(row, flush=True)
            path.unlink()
    write_csv(out / "memory_data.csv", rows)
    header = ["storage", "uint8 data (MiB)", "peak RSS growth (MiB)", "growth / uint8 size", "fit s"]
    body = [
        [
            r["storage"],
            r["data_mib_uint8"],
            r["peak_rss_growth_mib"],
            r["growth_over_uint8_size"],
            r["fit_seconds"],
        ]
        for r in rows
    ]
    write_page(
        out / "memory_data.md",
        "Fit memory against data size (uint8 images read in place)",
        __doc__.split("Run alone")[0],
        [table(header, body)],
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        sys.path.insert(0, str(Path(__file__).parent))
        print("RESULT " + json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        raise SystemExit("run it through: python benchmarks/memory.py --data [--sizes-mib ...]")
