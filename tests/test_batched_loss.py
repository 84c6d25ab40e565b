"""The batched local loss (``losses/batched.py``) against the one-block node, slice by slice.

Invariant (stated in ``losses/batched.py``): slice b of every output and of the gradient of
:class:`BatchedInfoRegularization` equals :class:`InfoRegularization` on slice b, for every
subset of the term weights; and ``batched_label_similarity`` equals the one-batch target.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deinforeg_sklearn.losses.batched import BatchedInfoRegularization, batched_label_similarity
from deinforeg_sklearn.losses.fused import InfoRegularization
from deinforeg_sklearn.losses.info_regularization import _label_similarity

WEIGHT_SETS = [
    (2.0, 0.5, 3.0),
    (2.0, 0.0, 0.0),
    (0.0, 0.5, 0.0),
    (0.0, 0.0, 3.0),
    (2.0, 0.0, 3.0),
    (0.0, 0.0, 0.0),
]


def _stack(n_stack, n, d, seed):
    rng = np.random.RandomState(seed)
    z = torch.tensor(rng.randn(n_stack, n, d))
    y = torch.tensor(rng.randint(0, 3, (n_stack, n)))
    return z, y


@pytest.mark.parametrize("weights", WEIGHT_SETS)
@pytest.mark.parametrize("n_stack,n,d", [(1, 7, 4), (3, 16, 5), (4, 9, 12)])
def test_each_slice_equals_the_one_block_loss(weights, n_stack, n, d):
    z0, y = _stack(n_stack, n, d, seed=n_stack * 100 + n + d)
    target = batched_label_similarity(y, 3) if weights[1] else None
    z = z0.clone().requires_grad_(True)
    total, *parts = BatchedInfoRegularization.apply(z, target, weights)
    # distinct upstream gradients per slice: a slice's gradient mixed into another's would show
    upstream = torch.arange(1.0, n_stack + 1.0, dtype=torch.float64)
    if total.requires_grad:
        (total * upstream).sum().backward()
    assert total.shape == (n_stack,) and all(p.shape == (n_stack,) for p in parts)
    for b in range(n_stack):
        one = z0[b].clone().requires_grad_(True)
        one_target = _label_similarity(y[b], 3, torch.float64) if weights[1] else None
        one_total, *one_parts = InfoRegularization.apply(one, one_target, weights)
        if one_total.requires_grad:
            (one_total * upstream[b]).backward()
        torch.testing.assert_close(total[b], one_total, rtol=1e-12, atol=1e-14)
        for part, one_part in zip(parts, one_parts, strict=True):
            torch.testing.assert_close(part[b], one_part, rtol=1e-12, atol=1e-14)
        if one.grad is not None:
            torch.testing.assert_close(z.grad[b], one.grad, rtol=1e-10, atol=1e-14)


def test_float32_slices_match_to_rounding():
    z0, y = _stack(3, 32, 16, seed=5)
    z0 = z0.float()
    z = z0.clone().requires_grad_(True)
    total, *_ = BatchedInfoRegularization.apply(z, batched_label_similarity(y, 3), (1.0, 1.0, 1.0))
    total.sum().backward()
    assert total.dtype == torch.float32
    for b in range(3):
        one = z0[b].clone().requires_grad_(True)
        one_target = _label_similarity(y[b], 3, torch.float64)
        one_total, *_ = InfoRegularization.apply(one, one_target, (1.0, 1.0, 1.0))
        one_total.backward()
        torch.testing.assert_close(total[b], one_total, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(z.grad[b], one.grad, rtol=1e-4, atol=1e-6)


def test_batched_loss_passes_gradcheck():
    z = torch.randn(2, 8, 5, dtype=torch.float64, requires_grad=True)
    target = batched_label_similarity(torch.tensor([[0, 1, 2, 0, 1, 2, 0, 1]] * 2), 3)
    assert torch.autograd.gradcheck(
        lambda t: BatchedInfoRegularization.apply(t, target, (1.0, 0.5, 2.0))[0], (z,)
    )


def test_a_collapsed_slice_does_not_disturb_the_others():
    # one slice of identical rows (its norms and spreads at their floors) beside a normal one
    z0, y = _stack(2, 10, 6, seed=3)
    z0[0] = z0[0, :1].expand(10, 6)
    z = z0.clone().requires_grad_(True)
    total, *_ = BatchedInfoRegularization.apply(z, batched_label_similarity(y, 3), (1.0, 1.0, 1.0))
    total.sum().backward()
    assert torch.isfinite(z.grad).all()
    one = z0[1].clone().requires_grad_(True)
    InfoRegularization.apply(one, _label_similarity(y[1], 3, torch.float64), (1.0, 1.0, 1.0))[0].backward()
    torch.testing.assert_close(z.grad[1], one.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_label_similarity_per_slice(k):
    y = torch.randint(0, k, (4, 11), generator=torch.Generator().manual_seed(k))
    batched = batched_label_similarity(y, k)
    for b in range(4):
        assert torch.equal(batched[b], _label_similarity(y[b], k, torch.float64))
