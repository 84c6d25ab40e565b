"""Trainable networks and how they are trained: units, step trainers, the fit loop.

``protocols`` states what a unit and a network must provide; ``step`` steps one unit;
``loop`` runs the epochs of a fit (import it from ``deinforeg_sklearn.training.loop``: it
drives engines, which themselves import this package).
"""

from deinforeg_sklearn.training.backprop import BackpropNetwork
from deinforeg_sklearn.training.decoupled import DecoupledNetwork, LocalBlock
from deinforeg_sklearn.training.plan import FitPlan
from deinforeg_sklearn.training.protocols import TrainableUnit, UnitNetwork
from deinforeg_sklearn.training.stats import EpochStats, StepStats, UnitEpochStats
from deinforeg_sklearn.training.step import LossConfig, StepTrainer, TrainerFactory

__all__ = [
    "BackpropNetwork",
    "DecoupledNetwork",
    "EpochStats",
    "FitPlan",
    "LocalBlock",
    "LossConfig",
    "StepStats",
    "StepTrainer",
    "TrainableUnit",
    "TrainerFactory",
    "UnitEpochStats",
    "UnitNetwork",
]
