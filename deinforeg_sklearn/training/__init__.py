"""Trainable networks: the units that engines schedule (one ``StepTrainer`` per stage of work)."""

from deinforeg_sklearn.training.backprop import BackpropNetwork
from deinforeg_sklearn.training.decoupled import DecoupledNetwork, LocalBlock
from deinforeg_sklearn.training.step import LossConfig, StepTrainer

__all__ = ["BackpropNetwork", "DecoupledNetwork", "LocalBlock", "LossConfig", "StepTrainer"]
