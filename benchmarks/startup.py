"""Start-up costs a new user pays: the import, the first training step, and a parallel grid search.

Three measurements, each in fresh processes, so that nothing is warm that a new user's first
call would not find warm:

1. ``import torch`` and ``import deinforeg_sklearn``: wall time of each import in a new
   interpreter (median of 5).
2. digits (1,797 rows), ``blocks=[Dense(64)] * 4``, ``max_iter=2``, defaults otherwise: the time
   from the call to ``fit`` to its first training step (the first block step in this process)
   and to its return, for one device and for 2 and 4 CPU stages with each engine. Each fit runs
   in a new interpreter that has already imported the package (median of 3).
3. ``GridSearchCV`` over 4 candidates x 2 folds (3 x Dense(128), 5 epochs, digits) with
   n_jobs=1 and n_jobs=2, twice in one process: the first search starts joblib's workers,
   the second reuses them.

Threads: every fit process calls ``torch.set_num_threads(2)`` (both cores) first, as a user's
fresh session has; CPU pipeline stages then split those cores (``cpu_threads_per_stage``).

Run:  python benchmarks/startup.py            (about 3 minutes on 2 CPU cores)
      python benchmarks/startup.py --quick    (one repeat, no grid search)
Writes docs/results/startup.md (not with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"

IMPORT_SNIPPET = """
import time
t = time.perf_counter()
import {module}
print(time.perf_counter() - t)
"""

# One fit in a fresh interpreter: seconds from fit() to its first epoch (every rank started, the
# probe done), and to its return.
FIT_SNIPPET = """
import json, sys, time
import numpy as np
import torch
from sklearn.datasets import load_digits
import deinforeg_sklearn
from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.training import loop

def main():
    torch.set_num_threads(2)
    devices, engine = json.loads(sys.argv[1])
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    first = []
    original = loop.FitLoop._epoch

    def timed(self, *args, **kwargs):
        if not first:
            first.append(time.perf_counter())
        return original(self, *args, **kwargs)

    loop.FitLoop._epoch = timed
    est = DeInfoRegClassifier(
        blocks=[Dense(64)] * 4, max_iter=2, random_state=0, devices=devices, engine=engine
    )
    start = time.perf_counter()
    est.fit(X, y)
    end = time.perf_counter()
    print(json.dumps({"first_step": first[0] - start, "fit": end - start, "score": est.score(X, y)}))

if __name__ == "__main__":
    main()
"""

GRID_SNIPPET = """
import json, sys, time
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

if __name__ == "__main__":
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    grid = {"alpha": [1e-3, 1e-1], "batch_size": [64, 128]}
    base = DeInfoRegClassifier(blocks=[Dense(128)] * 3, max_iter=5, random_state=0)
    seconds = []
    for _ in range(2):  # the second search finds joblib's workers started (and torch imported)
        start = time.perf_counter()
        GridSearchCV(base, grid, cv=2, n_jobs=int(sys.argv[1])).fit(X, y)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"first": seconds[0], "second": seconds[1]}))
"""

CONFIGS = [
    ("one device", None, "auto"),
    ("2 CPU stages, threads", ["cpu"] * 2, "threads"),
    ("2 CPU stages, processes", ["cpu"] * 2, "processes"),
    ("4 CPU stages, threads", ["cpu"] * 4, "threads"),
    ("4 CPU stages, processes", ["cpu"] * 4, "processes"),
]


def run_python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark process failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def import_seconds(module: str, repeats: int) -> float:
    return statistics.median(float(run_python(IMPORT_SNIPPET.format(module=module))) for _ in range(repeats))


def fit_seconds(devices, engine: str, repeats: int) -> dict[str, float]:
    runs = [json.loads(run_python(FIT_SNIPPET, json.dumps([devices, engine]))) for _ in range(repeats)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, no grid search, no file")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    lines = ["| what | seconds |", "|---|---|"]
    imports = {m: import_seconds(m, 1 if args.quick else 5) for m in ("torch", "deinforeg_sklearn")}
    for module, seconds in imports.items():
        lines.append(f"| `import {module}` | {seconds:.2f} |")
        print(f"import {module}: {seconds:.2f} s", flush=True)
    lines.append(f"| difference | **{imports['deinforeg_sklearn'] - imports['torch']:.2f}** |")

    fits = ["", "| devices | engine | to first epoch (s) | fit (s) | fit - one device (s) | train accuracy |"]
    fits.append("|---|---|---|---|---|---|")
    base = None
    for label, devices, engine in CONFIGS:
        result = fit_seconds(devices, engine, repeats)
        base = result["fit"] if base is None else base
        print(f"{label}: {result}", flush=True)
        fits.append(
            f"| {label} | {engine} | {result['first_step']:.2f} | {result['fit']:.2f} | "
            f"{result['fit'] - base:+.2f} | {result['score']:.3f} |"
        )
    lines += fits

    if not args.quick:
        lines += ["", "| GridSearchCV, 4 candidates x 2 folds | first search (s) | second search (s) |"]
        lines.append("|---|---|---|")
        for n_jobs in (1, 2):
            times = json.loads(run_python(GRID_SNIPPET, str(n_jobs)))
            print(f"grid n_jobs={n_jobs}: {times}", flush=True)
            lines.append(f"| n_jobs={n_jobs} | {times['first']:.1f} | {times['second']:.1f} |")

    table = "\n".join(lines)
    print(table)
    if not args.quick:
        text = (RESULTS / "startup.md").read_text() if (RESULTS / "startup.md").exists() else ""
        marker = "<!-- table -->"
        if marker in text:
            head, _, rest = text.partition(marker)
            tail = rest.split("<!-- end table -->", 1)[-1]
            text = f"{head}{marker}\n{table}\n<!-- end table -->{tail}"
        else:
            text = f"# Start-up costs\n\n{marker}\n{table}\n<!-- end table -->\n"
        (RESULTS / "startup.md").write_text(text)
        print(f"wrote {RESULTS / 'startup.md'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
