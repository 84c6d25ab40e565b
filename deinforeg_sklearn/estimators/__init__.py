"""The scikit-learn estimators."""

from deinforeg_sklearn.estimators.associated import ALClassifier
from deinforeg_sklearn.estimators.backprop import BackpropClassifier
from deinforeg_sklearn.estimators.deinforeg import DeInfoRegClassifier
from deinforeg_sklearn.estimators.scpl import SCPLClassifier

__all__ = ["ALClassifier", "BackpropClassifier", "DeInfoRegClassifier", "SCPLClassifier"]
