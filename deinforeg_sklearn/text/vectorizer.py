"""SequenceVectorizer: texts -> padded token-id rows for Embedding / LSTM / Transformer blocks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from deinforeg_sklearn.blocks.embedding import N_SPECIAL_IDS, OOV_ID, PAD_ID
from deinforeg_sklearn.text.vectors import WordVectors


def _check_texts(X: object) -> list[str]:
    if isinstance(X, str):
        raise TypeError(
            "SequenceVectorizer expects an iterable of strings, not a single string: wrap it in a list."
        )
    if not isinstance(X, Iterable):
        raise TypeError(f"SequenceVectorizer expects an iterable of strings, got {type(X).__name__}.")
    texts = list(X.ravel()) if isinstance(X, np.ndarray) else list(X)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"Item {i} is {type(text).__name__} ({text!r}), not a string: give one string per document."
            )
    return texts


class SequenceVectorizer(TransformerMixin, BaseEstimator):
    """Turn documents into right-padded rows of token ids (N x ``max_len``).

    Token ids follow the package's convention: 0 is padding, 1 is out-of-vocabulary, 2.. are
    vocabulary entries. Feed the output to a model whose first block is an ``Embedding``.

    Parameters
    ----------
    max_len : int, default=350
        Tokens kept per document (longer ones are cut, shorter ones padded with 0).
    lowercase : bool, default=True
    token_pattern : str, default=r"(?u)\\b\\w+\\b"
        Regular expression of a token.
    stop_words : {"english"}, list of str or None, default=None
        Words removed before counting (the paper removes English stop words).
    max_vocab : int, default=30000
        Most frequent training words kept when the vocabulary is built from the texts.
    vocabulary : list of str, default=None
        A fixed word list (word k -> id k + 2) instead of one built from the texts.
    vectors : WordVectors, default=None
        Use the vectors' own word list as the vocabulary (word k -> id k + 2), the same indexing
        as ``Embedding(dim, vectors=...)``.

    Attributes
    ----------
    vocabulary_ : dict of str to int
        Word -> token id.
    """

    _parameter_constraints: ClassVar[dict] = {
        "max_len": [Interval(Integral, 1, None, closed="left")],
        "lowercase": ["boolean"],
        "token_pattern": [str],
        "stop_words": [StrOptions({"english"}), list, tuple, set, frozenset, None],
        "max_vocab": [Interval(Integral, 1, None, closed="left")],
        "vocabulary": [list, tuple, None],
        "vectors": [WordVectors, None],
    }

    def __init__(
        self,
        max_len: int = 350,
        *,
        lowercase: bool = True,
        token_pattern: str = r"(?u)\b\w+\b",
        stop_words=None,
        max_vocab: int = 30000,
        vocabulary=None,
        vectors: WordVectors | None = None,
    ) -> None:
        self.max_len = max_len
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.stop_words = stop_words
        self.max_vocab = max_vocab
        self.vocabulary = vocabulary
        self.vectors = vectors

    def _tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        tokens = self._pattern.findall(text)
        if self._stop:
            tokens = [t for t in tokens if t not in self._stop]
        return tokens

    def _prepare(self) -> None:
        self._pattern = re.compile(self.token_pattern)
        stop = ENGLISH_STOP_WORDS if self.stop_words == "english" else self.stop_words
        self._stop = frozenset(stop or ())

    def fit(self, X, y=None) -> SequenceVectorizer:
        """Learn the vocabulary from the documents X (unless it is fixed)."""
        self._validate_params()
        if self.vocabulary is not None and self.vectors is not None:
            raise ValueError("Give either vocabulary or vectors, not both.")
        texts = _check_texts(X)
        self._prepare()
        if self.vectors is not None:
            words = list(self.vectors.words)
        elif self.vocabulary is not None:
            words = list(dict.fromkeys(self.vocabulary))
        else:
            counts = Counter(t for text in texts for t in self._tokenize(text))
            # most frequent first; ties alphabetically, so the vocabulary does not depend on order
            words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_vocab]]
        self.vocabulary_ = {w: i + N_SPECIAL_IDS for i, w in enumerate(words)}
        self.n_features_in_ = 1
        return self

    def transform(self, X) -> np.ndarray:
        """Token ids of each document, shape (n_documents, max_len), int64."""
        check_is_fitted(self, "vocabulary_")
        texts = _check_texts(X)
        self._prepare()
        out = np.full((len(texts), self.max_len), PAD_ID, dtype=np.int64)
        vocab = self.vocabulary_
        for row, text in enumerate(texts):
            ids = [vocab.get(t, OOV_ID) for t in self._tokenize(text)[: self.max_len]]
            out[row, : len(ids)] = ids
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """One name per position: ``token_0`` ... ``token_{max_len-1}``."""
        check_is_fitted(self, "vocabulary_")
        return np.array([f"token_{i}" for i in range(self.max_len)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_pattern", None)  # compiled again on use
        return state
