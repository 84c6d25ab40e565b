"""VADER movie-review sentences, read from a local cache (download from PyPI is opt-in).

VADER movie-review sentences (Hutto & Gilbert, 2014; MIT licence): 10,605 sentences with
human sentiment scores from -4 to 4. They ship inside the ``vaderSentiment`` source
distribution on PyPI, which :func:`load_vader_movie_reviews` can download (urllib, pinned
sha256) into a cache directory outside any repository.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from deinforeg_sklearn.datasets._paths import default_cache

VADER_ARCHIVE = "vaderSentiment-3.3.2.tar.gz"
#: The ``vaderSentiment`` 3.3.2 source distribution on PyPI, and its sha256 (from PyPI's index).
VADER_URL = (
    "https://files.pythonhosted.org/packages/77/8c/4a48c10a50f750ae565e341e697d74a38075a3e43ff0df6f1ab72e186902/"
    + VADER_ARCHIVE
)
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_MEMBER = "movieReviewSnippets_GroundTruth.txt"
#: The four corpora of the archive (movie reviews, tweets, Amazon reviews, NYT editorials).
VADER_CORPORA = (
    VADER_MEMBER,
    "tweets_GroundTruth.txt",
    "amazonReviewSnippets_GroundTruth.txt",
    "nytEditorialSnippets_GroundTruth.txt",
)


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
        Download the ``vaderSentiment`` sdist from PyPI when the file is missing (its sha256
        is checked; an offline machine gets a ConnectionError that says what to copy where).
    """
    folder = Path(cache) if cache is not None else default_cache()
    target = folder / VADER_MEMBER
    if not target.is_file():
        archive = folder / VADER_ARCHIVE
        if not archive.is_file():
            if not download:
                raise FileNotFoundError(
                    f"{target} is missing: call with download=True (or run the benchmark with --fetch) "
                    f"to download {VADER_ARCHIVE} from PyPI into {folder}."
                )
            _fetch_vader(folder)
        _extract_vader(archive, VADER_SHA256)
    return parse_vader_ground_truth(target)


def load_vader_sentences(
    cache: str | os.PathLike | None = None, download: bool = False
) -> tuple[list[str], np.ndarray]:
    """All four VADER corpora with sign labels: 23,320 sentences after dropping neutral ones.

    Movie reviews, tweets, Amazon reviews and NYT editorials, in that order (as
    :func:`load_vader_movie_reviews`, whose arguments these are); enough text for a TF-IDF
    matrix of 2^16 unigram and bigram columns.
    """
    load_vader_movie_reviews(cache, download)  # fetches and checks the archive when needed
    folder = Path(cache) if cache is not None else default_cache()
    for name in VADER_CORPORA:
        if not (folder / name).is_file():
            _extract_vader(folder / VADER_ARCHIVE, VADER_SHA256, name)
    texts, labels = [], []
    for name in VADER_CORPORA:
        more_texts, more_labels = parse_vader_ground_truth(folder / name)
        texts += more_texts
        labels.append(more_labels)
    return texts, np.concatenate(labels)


def _fetch_vader(folder: Path, url: str = VADER_URL, sha256: str = VADER_SHA256) -> None:
    """Download the sdist with urllib into ``folder``, checking its sha256.

    urllib rather than pip: it needs no pip, ignores the user's pip configuration, and the
    pinned hash makes a changed or truncated download an error instead of silently other data.
    The archive is written under a temporary name and renamed only once its hash matches.
    """
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (VADER_ARCHIVE + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise ConnectionError(
            f"Could not download {url} ({exc}). Offline? Copy {VADER_ARCHIVE} (sha256 {sha256}) "
            f"or {VADER_MEMBER} into {folder} by hand, or set DEINFOREG_DATA to a folder that has it."
        ) from exc
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise ValueError(
            f"{url} has sha256 {digest.hexdigest()}, not the pinned {sha256}: the download is "
            "corrupt or the file changed; nothing was kept. Try again, or fetch it by hand."
        )
    os.replace(partial, folder / VADER_ARCHIVE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_vader(archive: Path, sha256: str, name: str = VADER_MEMBER) -> None:
    """Check the archive's hash, then write the ground-truth file ``name`` beside it."""
    if _sha256(archive) != sha256:
        raise ValueError(
            f"{archive} has sha256 {_sha256(archive)}, not the pinned {sha256}: delete it and "
            "download again (download=True)."
        )
    with tarfile.open(archive) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner = outer.extractfile(inner_member)
        with tarfile.open(fileobj=inner) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(name))
            (archive.parent / name).write_bytes(tar.extractfile(member).read())
