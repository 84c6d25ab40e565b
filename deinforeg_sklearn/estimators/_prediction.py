"""Prediction from a fitted network: probabilities of the inference head, or of every head.

It reads only the fitted attributes (``network_``, ``device_``, ``input_shape_``,
``inference_block_``, ``classes_``), never the training machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from sklearn.utils.validation import check_is_fitted

from deinforeg_sklearn.data.inputs import RowSource, no_mask, to_rows, token_mask
from deinforeg_sklearn.data.sparse import sparse_refusal
from deinforeg_sklearn.estimators._inputs import prediction_input, warn_about_magnitude
from deinforeg_sklearn.training.evaluate import evaluate_logits
from deinforeg_sklearn.training.features import evaluate_features

#: Rows per batch at prediction.
PREDICT_BATCH = 1024


class PredictionMixin:
    """``predict``, ``predict_proba``, ``staged_predict_proba`` and ``transform`` of the estimators."""

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities from the inference block's classifier.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return _softmax(self._logits(X, last=self.inference_block_)[-1])

    def predict(self, X) -> np.ndarray:
        """Predicted class labels (from ``classes_``)."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]

    def staged_predict_proba(self, X) -> Iterator[np.ndarray]:
        """Class probabilities of each block's classifier, first block first.

        For BackpropClassifier, which has one classifier, this yields one array.

        Yields
        ------
        ndarray of shape (n_samples, n_classes)
        """
        for logits in self._logits(X, last=None):
            yield _softmax(logits)

    def transform(self, X, block: int | None = None) -> np.ndarray:
        """The features a block's classifier reads: the learned representation of X.

        With the default, the inference block's (``inference_block_``, the one ``predict``
        uses; under adaptive inference too), so a fitted estimator works as a feature step in
        a ``Pipeline``. For DeInfoReg these are the block's projector output, for BP the
        projector output before its classifier, for SCPL the head's input and for AL the
        last block's features that its bridge reads.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        block : int or None, default=None
            Another block's features (0-based; negative counts from the last). Only
            DeInfoReg has a classifier per block; the other estimators have one head, so
            only ``None``, 0 or -1 are valid for them.

        Returns
        -------
        ndarray of shape (n_samples, n_output_features), float32
        """
        check_is_fitted(self)
        n_heads = self.network_.n_heads
        if block is None:
            head = self.inference_block_
        elif (
            isinstance(block, (int, np.integer))
            and not isinstance(block, bool)
            and -n_heads <= block < n_heads
        ):
            head = int(block) % n_heads
        else:
            raise ValueError(
                f"block={block!r} is not a block with a classifier: this model has {n_heads} "
                f"(0 to {n_heads - 1}, or -1 for the last); None takes the inference block."
            )
        X_t, mask_fn = self._prediction_input(X)
        return evaluate_features(self.network_, X_t, PREDICT_BATCH, self.device_, mask_fn, head)

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """``fit(X, y, **fit_params)``, then :meth:`transform` of X (the inference block's)."""
        return self.fit(X, y, **fit_params).transform(X)

    def _prediction_input(self, X) -> tuple[RowSource, Callable]:
        """Checked rows of X in the training sample shape (read in place), and the mask function."""
        check_is_fitted(self)
        accepts = "tokens" if self._tokens else "any"
        refusal = sparse_refusal("Embedding" if self._tokens else "", accepts, self.input_shape_)
        X = prediction_input(self, X, self._tokens, refusal)
        scale = getattr(self, "_input_scale", None)  # absent from models saved before it existed
        warn_about_magnitude(self, X, scale, self._tokens, "predict")
        rows = to_rows(X, self.input_shape_, scale, self._tokens, getattr(self, "num_workers", 0))
        return rows, token_mask if self._tokens else no_mask

    def _logits(self, X, last: int | None) -> list[np.ndarray]:
        X_t, mask_fn = self._prediction_input(X)
        return evaluate_logits(self.network_, X_t, PREDICT_BATCH, self.device_, mask_fn, last=last)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z.astype(np.float64))
    return e / e.sum(axis=1, keepdims=True)
