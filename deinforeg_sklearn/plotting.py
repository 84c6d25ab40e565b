"""Plots of a fit's ``history_`` (needs matplotlib: ``pip install "deinforeg-sklearn[plot]"``).

Each function takes a fitted estimator or its ``history_`` list, draws one block per line on
the given matplotlib Axes (or a new figure), and returns the Axes.
"""

from __future__ import annotations

from collections.abc import Sequence


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            'deinforeg_sklearn.plotting needs matplotlib: pip install "deinforeg-sklearn[plot]"'
        ) from exc
    return plt


def _history(source: object) -> list[dict]:
    history = getattr(source, "history_", source)
    if not isinstance(history, list) or not history:
        raise ValueError("Give a fitted estimator or its non-empty history_ list.")
    return history


def _axes(ax):
    return ax if ax is not None else _pyplot().subplots()[1]


def plot_accuracy(source: object, ax=None):
    """Train (solid) and validation (dashed) accuracy of each block's classifier per epoch."""
    history, ax = _history(source), _axes(ax)
    epochs = [r["epoch"] for r in history]
    for b in range(len(history[0]["blocks"])):
        if history[0]["blocks"][b]["train_accuracy"] is None:
            continue  # a unit without a classifier (an SCPL block)
        line = ax.plot(epochs, [r["blocks"][b]["train_accuracy"] for r in history], label=f"block {b} train")
        val = [r["blocks"][b]["validation_accuracy"] for r in history]
        if val[0] is not None:
            ax.plot(epochs, val, "--", color=line[0].get_color(), label=f"block {b} validation")
    ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy per block")
    ax.legend(fontsize="small")
    return ax


def plot_losses(
    source: object,
    terms: Sequence[str] = ("variance", "invariance", "covariance", "cross_entropy"),
    ax=None,
):
    """Training loss terms of each block per epoch (one colour per term, one style per block)."""
    history, ax = _history(source), _axes(ax)
    epochs = [r["epoch"] for r in history]
    styles = ["-", "--", ":", "-."]
    present = [t for t in terms if t in history[0]["blocks"][0]]
    for b in range(len(history[0]["blocks"])):
        for i, term in enumerate(present):
            ax.plot(
                epochs,
                [r["blocks"][b][term] for r in history],
                styles[b % len(styles)],
                color=f"C{i}",
                label=f"{term} (block {b})",
            )
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="Loss terms per block")
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def plot_gradients(source: object, ax=None):
    """Mean absolute encoder gradient of each block per epoch (fit with ``record_gradients=True``)."""
    history, ax = _history(source), _axes(ax)
    if "encoder_gradients" not in history[0]:
        raise ValueError("No gradients in this history: fit with record_gradients=True.")
    epochs = [r["epoch"] for r in history]
    for b in range(len(history[0]["encoder_gradients"])):
        ax.plot(epochs, [r["encoder_gradients"][b] for r in history], label=f"block {b}")
    ax.set(
        xlabel="epoch", ylabel="mean |gradient| of encoder", yscale="log", title="Encoder gradients per block"
    )
    ax.legend(fontsize="small")
    return ax
