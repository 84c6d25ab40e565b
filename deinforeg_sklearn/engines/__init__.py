"""Schedules that drive a network's step trainers over the batches of an epoch."""

from deinforeg_sklearn.engines.sequential import evaluate_logits, train_epoch

__all__ = ["evaluate_logits", "train_epoch"]
