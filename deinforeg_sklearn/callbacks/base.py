"""What a callback is, and how the estimator calls a list of them.

Why hooks on the estimator and not on the training loop: the loop runs in every rank of a
pipeline and knows no estimator (training/loop.py). The estimator calls ``on_fit_begin`` and
``on_fit_end`` itself, in the process that leads the fit, and hands the loop one function for
the end of each epoch; under the process engine and torchrun that function runs on rank 0
alone, and its stop decision reaches every rank (``Engine.decide``).

Invariant: a callback is a parameter like any other. The estimator never changes it and
``clone`` deep-copies it, so a callback must hold no open file or connection between fits:
the loggers here open their writer when the fit begins (or per epoch) and close it when it
ends, so a copy, a pickle or a search's candidate holds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The hooks a callback may define.
HOOKS = ("on_fit_begin", "on_epoch_end", "on_fit_end")


class Callback:
    """Base class of a callback: every hook does nothing; override those you need.

    Hooks
    -----
    on_fit_begin(estimator)
        Before the first epoch of ``fit`` or ``partial_fit``, after the inputs are checked.
        The estimator's fitted attributes are still those of before this fit.
    on_epoch_end(estimator, record)
        After each epoch, with that epoch's ``history_`` entry (``record["epoch"]`` counts
        over warm starts). Return True to stop the fit after this epoch, as early stopping
        does (with early stopping on, its best epoch is still restored).
    on_fit_end(estimator)
        After a fit that completed (or was stopped), once the fitted attributes are set:
        ``estimator.history_`` holds every epoch. Not called after an error or Ctrl-C.

    close()
        Optional: called when the fit ends, however it ends (after ``on_fit_end``, or after
        an error or Ctrl-C), to release a writer or connection opened in ``on_fit_begin``.

    A hook that raises ends the fit with that error; the estimator keeps its state of before
    the fit (the fit is transactional).
    """

    def on_fit_begin(self, estimator: Any) -> None:
        """Called before the first epoch."""

    def on_epoch_end(self, estimator: Any, record: dict) -> bool | None:
        """Called after each epoch; True stops the fit."""
        return None

    def on_fit_end(self, estimator: Any) -> None:
        """Called after the fit."""


def check_callbacks(callbacks: Sequence[Any] | None) -> list[Any]:
    """The callbacks as a list, each checked to define at least one hook (before any work).

    Raises
    ------
    TypeError
        ``callbacks`` is not a list or tuple, or an entry has none of :data:`HOOKS`.
    """
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"callbacks must be a list of callback objects, got {type(callbacks).__name__}: "
            "wrap a single callback in a list, e.g. callbacks=[CSVLogger('log.csv')]."
        )
    for position, callback in enumerate(callbacks):
        if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise TypeError(
                f"callbacks[{position}] ({type(callback).__name__}) has none of the hooks "
                f"{', '.join(HOOKS)}: subclass deinforeg_sklearn.callbacks.Callback, or define "
                "one of those methods."
            )
    return list(callbacks)


def call_hook(callbacks: Sequence[Any], hook: str, *args: Any) -> list[Any]:
    """Call ``hook(*args)`` on every callback that defines it, in order; their return values."""
    results = []
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if callable(method):
            results.append(method(*args))
    return results


def close_callbacks(callbacks: object) -> None:
    """Call ``close()`` on each callback that has one (the end of every fit, however it ends)."""
    if not isinstance(callbacks, (list, tuple)):
        return
    for callback in callbacks:
        close = getattr(callback, "close", None)
        if callable(close):
            close()
