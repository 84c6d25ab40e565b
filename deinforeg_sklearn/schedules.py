"""Learning-rate schedules with settings, for an estimator's ``lr_schedule``.

``lr_schedule="one_cycle"`` and ``"plateau"`` use the defaults below; pass an instance for
others, e.g. ``DeInfoRegClassifier(lr_schedule=ReduceOnPlateau(patience=3))``. The rules and
their match with torch's ``lr_scheduler`` classes are in ``deinforeg_sklearn/optim/schedules.py``.
"""

from deinforeg_sklearn.optim.schedules import OneCycle, ReduceOnPlateau

__all__ = ["OneCycle", "ReduceOnPlateau"]
