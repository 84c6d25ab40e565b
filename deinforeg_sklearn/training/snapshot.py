"""The trained state after an epoch, kept so that an interrupted fit can go back to it."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Snapshot:
    """Weights, buffers, optimiser states and schedule positions of a network at one moment."""

    model: dict
    optimizers: list[dict]
    steps: list[int]
    n_history: int
    scores: np.ndarray | None

    @classmethod
    def take(cls, network: torch.nn.Module, n_history: int, scores: np.ndarray | None) -> Snapshot:
        return cls(
            model=copy.deepcopy(network.state_dict()),
            optimizers=[copy.deepcopy(t.optimizer.state_dict()) for t in network.trainers],
            steps=[t.steps_done for t in network.trainers],
            n_history=n_history,
            scores=None if scores is None else scores.copy(),
        )

    def restore(self, network: torch.nn.Module) -> None:
        network.load_state_dict(self.model)
        for trainer, state, steps in zip(network.trainers, self.optimizers, self.steps, strict=True):
            trainer.optimizer.load_state_dict(state)
            trainer.steps_done = steps
