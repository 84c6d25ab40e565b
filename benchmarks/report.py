"""Writing a benchmark's results: a CSV of every run, a markdown page, and a PNG plot.

Every page records the exact command that produced it, the machine's torch thread count and
device, and places the paper's numbers beside ours.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def out_dir(quick: bool, given: str | None) -> Path:
    """docs/results (full runs) or docs/results/quick (--quick), unless --out is given."""
    folder = Path(given) if given else (RESULTS / "quick" if quick else RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def command(argv: Sequence[str] | None = None) -> str:
    """The command line that is running, as a user would type it from the repository root.

    An ``--out`` folder outside the repository (a GPU host's scratch folder, say) is left out:
    it names a place on one machine only, and the page is committed into docs/results, where
    the command writes by default.
    """
    script, *args = sys.argv if argv is None else argv
    root = RESULTS.parent.parent
    kept: list[str] = []
    it = iter(args)
    for arg in it:
        name, sep, value = arg.partition("=")
        if name != "--out":
            kept.append(arg)
            continue
        words = [arg] if sep else [arg, value := next(it, "")]
        if Path(value).resolve().is_relative_to(root):
            kept.extend(words)
    return shlex.join(["python", os.path.relpath(script, root), *kept])


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPU cores, {device}; torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; Python {platform.python_version()}"
    )


def mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std`` in percent (sample std; 0 for one value)."""
    values = [v * scale for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def write_csv(path: Path, rows: Iterable[dict]) -> None:
    rows = [{k: v for k, v in r.items() if k != "estimator"} for r in rows]
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    """Rows that ``write_csv`` wrote, with numbers read back as int or float ("" stays "")."""

    def value(text: str) -> object:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="") as handle:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_page(path: Path, title: str, intro: str, sections: Sequence[str]) -> None:
    text = [
        f"# {title}",
        "",
        intro.strip(),
        "",
        "Command:",
        "```",
        command(),
        "```",
        f"Machine: {machine()}.",
        "",
        *[s.strip() + "\n" for s in sections],
    ]
    path.write_text("\n".join(text))
    print(f"wrote {path}")


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def grouped(rows: Sequence[dict], *keys: str) -> dict[tuple, list[dict]]:
    """Rows grouped by the values of ``keys``, in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def child_result(command: list[str], what: str) -> dict:
    """Run one measurement in a fresh process; its last ``RESULT {json}`` line, as a dict.

    A fresh process per measurement keeps one run's peak memory or warm caches out of the next.
    """
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])
