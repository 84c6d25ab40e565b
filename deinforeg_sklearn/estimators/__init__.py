"""The scikit-learn estimators."""

from deinforeg_sklearn.estimators.backprop import BackpropClassifier
from deinforeg_sklearn.estimators.deinforeg import DeInfoRegClassifier

__all__ = ["BackpropClassifier", "DeInfoRegClassifier"]
