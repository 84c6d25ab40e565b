"""VADER movie-review sentences, read from a local cache (download from PyPI is opt-in).

VADER movie-review sentences (Hutto & Gilbert, 2014; MIT licence): 10,605 sentences with
human sentiment scores from -4 to 4. They ship inside the ``vaderSentiment`` source
distribution on PyPI, which :func:`load_vader_movie_reviews` can fetch with pip into a cache
directory outside any repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from deinforeg_sklearn.datasets._paths import default_cache

VADER_SDIST = "vadersentiment==3.3.2"
VADER_MEMBER = "movieReviewSnippets_GroundTruth.txt"


def parse_vader_ground_truth(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Texts and labels (1 = positive score, 0 = negative) of a VADER ``*_GroundTruth.txt`` file.

    Lines are ``id <tab> score <tab> text`` in latin-1; sentences scored exactly 0 are dropped.
    """
    texts, labels = [], []
    with open(path, encoding="latin-1") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                if line.strip():
                    raise ValueError(f"{Path(path).name}, line {number}: expected 'id<TAB>score<TAB>text'.")
                continue
            score = float(parts[1])
            if score == 0:
                continue
            texts.append("\t".join(parts[2:]))
            labels.append(int(score > 0))
    return texts, np.array(labels)


def load_vader_movie_reviews(
    cache: str | os.PathLike | None = None, download: bool = False
) -> tuple[list[str], np.ndarray]:
    """The VADER movie-review sentences with sign labels (10,568 after dropping neutral ones).

    Parameters
    ----------
    cache : path, default=None
        Where the extracted file lives (default: :func:`default_cache`).
    download : bool, default=False
        Fetch the ``vaderSentiment`` sdist from PyPI with pip when the file is missing.
    """
    folder = Path(cache) if cache is not None else default_cache()
    target = folder / VADER_MEMBER
    if not target.is_file():
        if not download:
            raise FileNotFoundError(
                f"{target} is missing: call with download=True (or run the benchmark with --fetch) to "
                f"fetch {VADER_SDIST} from PyPI into {folder}."
            )
        _fetch_vader(folder)
    return parse_vader_ground_truth(target)


def _fetch_vader(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            VADER_SDIST,
            "-d",
            str(folder),
        ],
        check=True,
    )
    sdist = next(folder.glob("vaderSentiment-*.tar.gz"))
    with tarfile.open(sdist) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner = outer.extractfile(inner_member)
        with tarfile.open(fileobj=inner) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith(VADER_MEMBER))
            (folder / VADER_MEMBER).write_bytes(archive.extractfile(member).read())
