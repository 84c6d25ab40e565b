"""Projector and classifier heads that sit on top of every block's encoder."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def build_projector(in_features: int, widths: Sequence[int] | None) -> tuple[nn.Module, int]:
    """MLP projector ``in -> w1 -> ... -> wk``; hidden layers Linear + BatchNorm1d + ReLU.

    The last layer is Linear only, as in the paper's vision runs. ``widths=None`` (or empty)
    gives the identity, as in its text runs. Returns the module and its output width.
    """
    if not widths:
        return nn.Identity(), in_features
    layers: list[nn.Module] = []
    width = in_features
    for i, out in enumerate(widths):
        layers.append(nn.Linear(width, out))
        if i < len(widths) - 1:
            layers += [nn.BatchNorm1d(out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers), width


def build_classifier(in_features: int, n_classes: int, sequence: bool) -> nn.Module:
    """The paper's "merge" classifier on the projector output.

    BatchNorm1d -> ReLU -> Linear for vision and dense blocks; Tanh -> Linear for sequence
    blocks (the authors' text setting).
    """
    if sequence:
        return nn.Sequential(nn.Tanh(), nn.Linear(in_features, n_classes))
    return nn.Sequential(nn.BatchNorm1d(in_features), nn.ReLU(), nn.Linear(in_features, n_classes))
