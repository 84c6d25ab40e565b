"""Where a warning should point: the first frame of the caller's own code."""

from __future__ import annotations

import os
import sys


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised by the caller of this at the user's code.

    Why: a warning raised deep in a fit or a prediction reaches the user's line through a
    varying number of frames of this package and of scikit-learn (``fit``, ``partial_fit``, a
    search, ``predict`` through ``predict_proba``), and should name that line, not ours.
    scikit-learn's frames are recognised by the module already loaded: this never imports it.
    """
    loaded = (sys.modules.get(name) for name in (__name__.split(".")[0], "sklearn"))
    packages = tuple(
        os.path.dirname(os.path.abspath(module.__file__))
        for module in loaded
        if module is not None and getattr(module, "__file__", None)
    )
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(packages):
        frame, level = frame.f_back, level + 1
    return level
