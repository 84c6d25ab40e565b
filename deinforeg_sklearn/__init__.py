"""deinforeg-sklearn: decoupled (local-loss) training of deep networks as scikit-learn estimators.

DeInfoReg ("Decoupled Supervised Learning with Information Regularization") trains each block
of a network by its own loss, so no gradient crosses a block boundary.
"""

from deinforeg_sklearn.estimators import ALClassifier, BackpropClassifier, DeInfoRegClassifier, SCPLClassifier

__version__ = "0.1.0"

__all__ = ["ALClassifier", "BackpropClassifier", "DeInfoRegClassifier", "SCPLClassifier", "__version__"]
