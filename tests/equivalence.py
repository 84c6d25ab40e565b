"""Asserting that two fits trained the same network (the pipeline invariant)."""

import numpy as np
import pytest
import torch


def assert_same_training(a, b, X, atol: float = 1e-5, history_atol: float | None = None) -> None:
    """Weights, BatchNorm buffers, optimiser state, schedule, history and predict_proba agree.

    ``history_atol`` (default ``atol``) bounds the epoch means of the loss terms in ``history_``:
    engines that report a step's terms from another kernel (a batched one) than the step that
    trained agree on the weights bit for bit, and on the reported terms only to rounding.
    """
    history_atol = atol if history_atol is None else history_atol
    for (name, va), vb in zip(a.network_.state_dict().items(), b.network_.state_dict().values(), strict=True):
        torch.testing.assert_close(va.cpu(), vb.cpu(), atol=atol, rtol=0, msg=name)
    for ta, tb in zip(a.network_.trainers, b.network_.trainers, strict=True):
        assert ta.steps_done == tb.steps_done
        sa, sb = ta.optimizer.state_dict()["state"], tb.optimizer.state_dict()["state"]
        assert sa.keys() == sb.keys()
        for key in sa:
            for field in sa[key]:
                torch.testing.assert_close(sa[key][field].cpu(), sb[key][field].cpu(), atol=atol, rtol=0)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=atol)
    assert len(a.history_) == len(b.history_)
    for ra, rb in zip(a.history_, b.history_, strict=True):
        for block_a, block_b in zip(ra["blocks"], rb["blocks"], strict=True):
            assert block_a == pytest.approx(block_b, abs=history_atol)
