"""Token embedding block: integer token ids (N, T) -> vectors (N, T, dim).

Token ids follow one convention across the package: 0 is padding, 1 is out-of-vocabulary,
and ids 2, 3, ... are vocabulary entries (with ``vectors``, id ``k + 2`` is row ``k``).
An id beyond the table at predict time is read as out-of-vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from deinforeg_sklearn.blocks.base import BlockSpec, BuildContext, Encoder, check_positive_ints, masked_mean


def _is_word_vectors(value: object) -> bool:
    # duck-typed, so that blocks do not import the text layer above them
    return hasattr(value, "words") and hasattr(value, "vectors") and hasattr(value, "dim")


PAD_ID = 0
OOV_ID = 1
N_SPECIAL_IDS = 2


class EmbeddingEncoder(Encoder):
    sequence = True

    def __init__(self, n_rows: int, dim: int, vectors: np.ndarray | None, trainable: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_rows, dim, padding_idx=PAD_ID)
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight[N_SPECIAL_IDS : N_SPECIAL_IDS + len(vectors)] = torch.from_numpy(
                    np.array(vectors, dtype=np.float32)
                )
        self.embedding.weight.requires_grad_(trainable)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        ids = h.long()
        ids = torch.where(ids >= self.embedding.num_embeddings, OOV_ID, ids)
        return self.embedding(ids)

    def features(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return masked_mean(h, mask)


@dataclass(frozen=True, eq=False)
class Embedding(BlockSpec):
    """Embedding table for token-id input; the heads read the mean over non-padding tokens.

    Parameters
    ----------
    dim : int
        Embedding width.
    vectors : WordVectors or array-like of shape (V, dim), default=None
        Pretrained vectors (e.g. from :func:`deinforeg_sklearn.text.load_word_vectors`); row
        ``k`` initialises token id ``k + 2``, the id :class:`~deinforeg_sklearn.text.SequenceVectorizer`
        gives word k when it has the same ``vectors``. None: random init and a vocabulary as
        large as the largest token id seen in ``fit``.
    trainable : bool, default=True
        Whether the table is updated during training.
    """

    dim: int
    vectors: np.ndarray | None = field(default=None, repr=False)
    trainable: bool = True
    accepts = "tokens"

    def __post_init__(self) -> None:
        check_positive_ints(self, "dim")
        if self.vectors is None or _is_word_vectors(self.vectors):
            width = None if self.vectors is None else self.vectors.dim
            if width is not None and width != self.dim:
                raise ValueError(
                    f"Embedding(dim={self.dim}) got word vectors of dimension {width}: make dim "
                    f"{width}, or load vectors of dimension {self.dim}."
                )
            return
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(
                f"Embedding(dim={self.dim}) got vectors of shape {vectors.shape}: they must be "
                f"(n_words, {self.dim})."
            )
        vectors.setflags(write=False)
        object.__setattr__(self, "vectors", vectors)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        a, b = self.vectors, other.vectors
        if a is None or b is None or _is_word_vectors(a) or _is_word_vectors(b):
            same_vectors = a is b or (a is not None and b is not None and type(a) is type(b) and a == b)
        else:
            same_vectors = np.array_equal(a, b)
        return self.dim == other.dim and self.trainable == other.trainable and same_vectors

    def __hash__(self) -> int:
        return hash(
            (type(self), self.dim, self.trainable, None if self.vectors is None else len(self.vectors))
        )

    def __repr__(self) -> str:
        vectors = "None" if self.vectors is None else f"<{len(self.vectors)}x{self.dim}>"
        return f"Embedding(dim={self.dim}, vectors={vectors}, trainable={self.trainable})"

    def build(self, input_shape: tuple[int, ...], context: BuildContext) -> Encoder:
        if context.position != 0 or len(input_shape) != 1 or context.max_token_id is None:
            raise ValueError(
                f"Block {context.position} (Embedding) reads integer token ids (N, T) and must be "
                f"the first block; it receives shape {input_shape}."
            )
        n_words = 0 if self.vectors is None else len(self.vectors)
        n_rows = max(N_SPECIAL_IDS + n_words, context.max_token_id + 1, N_SPECIAL_IDS)
        table = self.vectors.vectors if _is_word_vectors(self.vectors) else self.vectors
        return EmbeddingEncoder(n_rows, self.dim, table, self.trainable)
