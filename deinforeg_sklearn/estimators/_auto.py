"""Defaults that depend on the blocks or the data, resolved at fit time.

``projector="auto"`` and ``inference="auto"`` stay what ``get_params`` returns (so ``clone`` and
grid searches see what the user passed); what they stood for in a fit is the fitted
``projector_`` and ``inference_``. The rules were chosen on validation scores of a development
suite of 8 networks on 7 data sets (docs/results/defaults.md), and are pure functions of what
the fit knows.
"""

from __future__ import annotations

from collections.abc import Sequence

from deinforeg_sklearn.blocks.base import Encoder
from deinforeg_sklearn.estimators._checks import check_widths

#: Widest hidden layer an "auto" projector gets. A conv block without ``head_pool`` hands its
#: heads thousands of features (16 x 14 x 14 = 3,136 for a first block on 28 x 28 images); a
#: projector as wide would cost more than the block.
AUTO_PROJECTOR_MAX_WIDTH = 256


def check_projector(projector: object) -> tuple[int, ...] | str | None:
    """``"auto"``, or the checked widths (None for the identity)."""
    if isinstance(projector, str):
        if projector != "auto":
            raise ValueError(
                f'projector must be "auto", None or a sequence of positive ints, got {projector!r}.'
            )
        return projector
    return check_widths("projector", projector)


def resolve_projectors(
    projector: tuple[int, ...] | str | None, encoders: Sequence[Encoder], widths: Sequence[int]
) -> list[tuple[int, ...]]:
    """The projector widths of each block; ``()`` is the identity.

    ``"auto"``: one hidden layer as wide as the block's features, at most
    :data:`AUTO_PROJECTOR_MAX_WIDTH`, for blocks whose output is not a sequence (dense, conv,
    residual, custom); the identity for sequence blocks (LSTM, Transformer, Embedding), the
    authors' text setting. A tuple or None applies to every block.
    """
    if projector == "auto":
        return [
            () if enc.sequence else (min(w, AUTO_PROJECTOR_MAX_WIDTH),)
            for enc, w in zip(encoders, widths, strict=True)
        ]
    return [tuple(projector or ())] * len(encoders)


def resolve_inference(inference: str, validation: bool) -> str:
    """``"auto"``: ``"best"`` when the fit has validation data (a split or ``X_val``), else ``"last"``."""
    if inference != "auto":
        return inference
    return "best" if validation else "last"
