import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deinforeg_sklearn.losses import info_regularization_loss


def numpy_reference(z, y, n_classes, weights=(1.0, 1.0, 1.0)):
    """Algorithm 1 with the authors' constants, written independently in float64 NumPy."""
    z = np.asarray(z, dtype=np.float64)
    n, c = z.shape
    nz = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    xm = nz - nz.mean(axis=0)
    std = np.sqrt(xm.var(axis=0, ddof=1) + 1e-7)
    var = np.mean(np.maximum(0.0, 1.0 - std)) / n

    def sim(a):
        a = a - a.mean(axis=1, keepdims=True)
        a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)
        return np.clip(a @ a.T, -1.0, 1.0)

    onehot = np.eye(n_classes)[y]
    inv = np.mean((sim(onehot) - sim(nz)) ** 2)
    cov = xm.T @ xm / n
    off = cov[~np.eye(c, dtype=bool)]
    cov_loss = np.sum(off**2) / c
    parts = {"variance": var, "invariance": inv, "covariance": cov_loss}
    total = weights[0] * var + weights[1] * inv + weights[2] * cov_loss
    return total, parts


@pytest.mark.parametrize("n,c,k,seed", [(2, 3, 2, 0), (16, 8, 3, 1), (128, 64, 10, 2), (33, 200, 5, 3)])
def test_matches_numpy_reference(n, c, k, seed):
    rng = np.random.RandomState(seed)
    z = rng.randn(n, c).astype(np.float64)
    y = rng.randint(0, k, n)
    total, parts = info_regularization_loss(torch.tensor(z), torch.tensor(y), k, return_parts=True)
    ref_total, ref_parts = numpy_reference(z, y, k)
    np.testing.assert_allclose(total.item(), ref_total, rtol=1e-5)
    for name in ref_parts:
        np.testing.assert_allclose(parts[name].item(), ref_parts[name], rtol=1e-5, atol=1e-12)


def test_matches_numpy_reference_float32():
    rng = np.random.RandomState(7)
    z = rng.randn(64, 32).astype(np.float32)
    y = rng.randint(0, 4, 64)
    total = info_regularization_loss(torch.tensor(z), torch.tensor(y), 4)
    np.testing.assert_allclose(total.item(), numpy_reference(z, y, 4)[0], rtol=1e-5)


@pytest.mark.parametrize("drop", [0, 1, 2])
def test_zero_weight_removes_its_term(drop):
    rng = np.random.RandomState(1)
    z = torch.tensor(rng.randn(20, 6))
    y = torch.tensor(rng.randint(0, 3, 20))
    weights = [1.0, 1.0, 1.0]
    weights[drop] = 0.0
    total, parts = info_regularization_loss(z, y, 3, weights=weights, return_parts=True)
    names = ["variance", "invariance", "covariance"]
    _, full = info_regularization_loss(z, y, 3, return_parts=True)
    expected = sum(full[name] for i, name in enumerate(names) if i != drop)
    assert parts[names[drop]].item() == 0.0
    assert full[names[drop]].item() > 0.0
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)


def test_weights_scale_terms():
    rng = np.random.RandomState(2)
    z = torch.tensor(rng.randn(10, 4))
    y = torch.tensor(rng.randint(0, 2, 10))
    total, parts = info_regularization_loss(z, y, 2, weights=(2.0, 0.5, 3.0), return_parts=True)
    expected = 2.0 * parts["variance"] + 0.5 * parts["invariance"] + 3.0 * parts["covariance"]
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)


def test_scalar_without_parts():
    z = torch.randn(5, 3)
    out = info_regularization_loss(z, torch.tensor([0, 1, 0, 1, 2]), 3)
    assert isinstance(out, torch.Tensor) and out.dim() == 0


def test_batch_of_one_is_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        info_regularization_loss(torch.randn(1, 4), torch.tensor([0]), 2)


def _check_finite(z_np, y_np, k):
    z = torch.tensor(z_np, requires_grad=True)
    loss = info_regularization_loss(z, torch.tensor(y_np), k)
    assert torch.isfinite(loss)
    assert loss.item() >= 0.0
    loss.backward()
    assert torch.isfinite(z.grad).all()


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 40),
    c=st.integers(1, 16),
    k=st.integers(2, 6),
)
def test_finite_and_nonnegative(data, n, c, k):
    z = data.draw(arrays(np.float64, (n, c), elements=st.floats(-1e3, 1e3)))
    y = data.draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    _check_finite(z, y, k)


@settings(max_examples=30, deadline=None)
@given(
    row=arrays(np.float64, (8,), elements=st.floats(-10, 10)),
    n=st.integers(2, 20),
    k=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_collapsed_embeddings_are_finite(row, n, k, seed):
    z = np.tile(row, (n, 1))  # every sample has the same embedding (zero rows included)
    y = np.random.RandomState(seed).randint(0, k, n)
    _check_finite(z, y, k)


@settings(max_examples=30, deadline=None)
@given(
    base=arrays(np.float64, (3, 5), elements=st.floats(-5, 5)),
    repeats=st.integers(1, 6),
)
def test_duplicated_embeddings_are_finite(base, repeats):
    z = np.repeat(base, repeats + 1, axis=0)
    y = np.repeat(np.array([0, 1, 2]), repeats + 1)
    _check_finite(z, y, 3)


def test_collapse_is_penalised_more_than_spread():
    y = torch.tensor([0, 1] * 8)
    collapsed = torch.ones(16, 8)
    spread = torch.nn.functional.one_hot(y, 8).double() * 3 + 0.01 * torch.randn(16, 8, dtype=torch.double)
    _, p_col = info_regularization_loss(collapsed.double(), y, 2, return_parts=True)
    _, p_spr = info_regularization_loss(spread, y, 2, return_parts=True)
    assert p_col["variance"] > p_spr["variance"]
    assert p_col["invariance"] > p_spr["invariance"]


# The Gram form (one N x N product) and the column form (D x D covariance) are the same terms.
SHAPES = [(16, 512), (128, 8), (24, 24), (5, 3), (2, 7)]  # D >> N, D << N, D = N, tiny


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_form_matches_numpy_reference(n, d, dtype):
    from deinforeg_sklearn.losses.info_regularization import _gram_terms

    rng = np.random.RandomState(n * d)
    z = rng.randn(n, d)
    y = rng.randint(0, 3, n)
    normed = torch.nn.functional.normalize(torch.tensor(z, dtype=dtype), dim=1)
    centred = normed - normed.mean(dim=0)
    inv, cov = _gram_terms(normed, centred, torch.tensor(y), 3, True, True)
    _, ref = numpy_reference(z, y, 3)
    np.testing.assert_allclose(inv.item(), ref["invariance"], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(cov.item(), ref["covariance"], rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("n,d", SHAPES)
def test_gram_form_gradients_equal_the_column_form(n, d):
    from deinforeg_sklearn.losses.info_regularization import _column_terms, _gram_terms

    rng = np.random.RandomState(n + d)
    z0 = torch.tensor(rng.randn(n, d))
    y = torch.tensor(rng.randint(0, 3, n))
    grads = []
    for terms in (_gram_terms, _column_terms):
        z = z0.clone().requires_grad_(True)
        normed = torch.nn.functional.normalize(z, dim=1)
        inv, cov = terms(normed, normed - normed.mean(dim=0), y, 3, True, True)
        (inv + 3.0 * cov).backward()
        grads.append(z.grad)
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=1e-6, atol=1e-12)


def test_the_form_follows_the_cost():
    from deinforeg_sklearn.losses.info_regularization import uses_gram

    assert uses_gram(128, 8192, invariance=True)
    assert uses_gram(128, 64, invariance=True)  # the N x N product is needed anyway
    assert uses_gram(128, 8192, invariance=False)
    assert not uses_gram(128, 64, invariance=False)  # D x D is cheaper


# The closed-form backward of losses/fused.py against autograd through the same terms.
def _autograd_terms(z, y, k, terms):
    """(variance, invariance, covariance) through autograd: `_variance` and `_gram_terms`."""
    from deinforeg_sklearn.losses.info_regularization import _gram_terms, _variance

    normed = torch.nn.functional.normalize(z, dim=1)
    centred = normed - normed.mean(dim=0)
    var = _variance(centred) if terms[0] else z.new_zeros(())
    inv, cov = _gram_terms(normed, centred, y, k, terms[1], terms[2])
    return var, inv, cov


def _fused(z, y, k, weights):
    """``(total, variance, invariance, covariance)`` from the closed-form node."""
    from deinforeg_sklearn.losses.fused import InfoRegularization
    from deinforeg_sklearn.losses.info_regularization import _label_similarity

    target = _label_similarity(y, k, torch.float64) if weights[1] else None
    return InfoRegularization.apply(z, target, tuple(float(w) for w in weights))


TERM_SETS = [
    (True, True, True),
    (True, False, False),
    (False, True, False),
    (False, False, True),
    (True, False, True),
]


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("terms", TERM_SETS)
def test_closed_form_backward_equals_autograd(n, d, terms):
    rng = np.random.RandomState(7 * n + d)
    z0 = torch.tensor(rng.randn(n, d))
    y = torch.tensor(rng.randint(0, 3, n))
    # distinct weights, so that a term's gradient scaled by another's weight would show
    weights = [w if on else 0.0 for w, on in zip((2.0, 0.5, 3.0), terms, strict=True)]
    z = z0.clone().requires_grad_(True)
    values = torch.stack(list(_autograd_terms(z, y, 3, terms)))
    (values * torch.tensor(weights, dtype=torch.float64)).sum().backward()
    expected_values, expected_grad = values.detach().numpy(), z.grad.numpy()

    z = z0.clone().requires_grad_(True)
    total, *parts = _fused(z, y, 3, weights)
    total.backward()
    np.testing.assert_allclose(torch.stack(parts).numpy(), expected_values, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(total.item(), float(np.dot(weights, expected_values)), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(z.grad.numpy(), expected_grad, rtol=1e-6, atol=1e-12)
    assert not any(part.requires_grad for part in parts)  # only the total carries the gradient


# Inputs whose float32 N x N work is hardest: a large common mean (the centring cancels), wide
# sparse rows (a conv block's flattened output), low rank, and N >> D.
FLOAT32_CASES = {
    "gaussian": lambda g: torch.randn(128, 256, generator=g),
    "relu-common-mean": lambda g: (torch.randn(128, 256, generator=g) + 3.0).relu(),
    "conv-like": lambda g: torch.randn(128, 8192, generator=g).relu(),
    "rank-4": lambda g: torch.randn(128, 4, generator=g) @ torch.randn(4, 64, generator=g),
    "tall": lambda g: torch.randn(512, 16, generator=g),
}


@pytest.mark.parametrize("case", FLOAT32_CASES)
def test_float32_work_stays_near_the_float64_loss(case):
    # A float32 input runs the node's N x N work in float32 (losses/fused.py); against the whole
    # loss in float64 its gradient and terms err by at most 4e-6 relative on these inputs
    # (measured), about what the float32 Gram matrix alone costs.
    g = torch.Generator().manual_seed(0)
    z0 = FLOAT32_CASES[case](g)
    y = torch.randint(0, 10, (z0.shape[0],), generator=g)
    results = []
    for dtype in (torch.float64, torch.float32):
        z = z0.to(dtype).requires_grad_(True)
        total, *parts = _fused(z, y, 10, (1.0, 1.0, 1.0))
        total.backward()
        assert z.grad.dtype == dtype and total.dtype == dtype
        results.append((z.grad.double(), torch.stack(parts).double()))
    (grad64, parts64), (grad32, parts32) = results
    assert float((grad32 - grad64).norm() / grad64.norm()) < 2e-5
    torch.testing.assert_close(parts32, parts64, rtol=2e-5, atol=0)


def test_closed_form_backward_passes_gradcheck():
    z = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2] * 3)
    assert torch.autograd.gradcheck(lambda t: _fused(t, y, 3, (1.0, 0.5, 2.0))[0], (z,))


def test_closed_form_without_gradient_computes_the_same_terms():
    # With no gradient wanted the node skips the gradient's matrices; the terms are unchanged.
    z = torch.randn(12, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2] * 4)
    with_grad = _fused(z.clone().requires_grad_(True), y, 3, (1.0, 1.0, 1.0))
    without = _fused(z, y, 3, (1.0, 1.0, 1.0))
    for a, b in zip(with_grad, without, strict=True):
        assert a.item() == b.item()


@settings(max_examples=40, deadline=None)
@given(
    row=arrays(np.float64, (6,), elements=st.floats(-10, 10)),
    noise=st.sampled_from([0.0, 1e-7, 1e-5, 1e-3]),
    n=st.integers(2, 12),
    seed=st.integers(0, 1000),
)
def test_closed_form_backward_on_collapsed_rows(row, noise, n, seed):
    # Equal (or nearly equal, or zero) rows: the norms and spreads sit at their edge cases.
    # The Gram form gets a row's spread about its own mean by cancellation (G_ii - D m_i^2, both
    # about 1), which float64 resolves to about 1e-16: a row whose squared spread lies between
    # rounding and 1e-8 has an inaccurate similarity in both Gram forms (docs/architecture.md),
    # so those inputs are left out; exactly constant rows and resolved spreads are compared.
    rng = np.random.RandomState(seed)
    z0 = torch.tensor(np.tile(row, (n, 1)) + noise * rng.randn(n, 6))
    unit = z0.numpy() / np.maximum(np.linalg.norm(z0.numpy(), axis=1, keepdims=True), 1e-12)
    spread = ((unit - unit.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    assume(np.all((spread < 1e-28) | (spread > 1e-8)))
    y = torch.tensor(rng.randint(0, 3, n))
    grads = []
    autograd_total = lambda t: sum(_autograd_terms(t, y, 3, (True, True, True)))  # noqa: E731
    fused_total = lambda t: _fused(t, y, 3, (1, 1, 1))[0]  # noqa: E731
    for compute in (autograd_total, fused_total):
        z = z0.clone().requires_grad_(True)
        compute(z).backward()
        grads.append(z.grad.numpy())
    assert np.isfinite(grads[1]).all()
    # compared against the largest entry (near collapse the entries span many magnitudes),
    # with a floor far below this loss's gradients (1e-3 and up) for rounding-level ones
    scale = np.abs(grads[0]).max()
    np.testing.assert_allclose(grads[1], grads[0], rtol=0, atol=1e-6 * scale + 1e-8)


def test_label_similarity_equals_the_one_hot_similarity():
    from deinforeg_sklearn.losses.info_regularization import _label_similarity, similarity_matrix

    y = torch.tensor([0, 3, 3, 1, 0, 2, 4])
    for k in (1, 2, 5, 10):
        yk = y % k
        expected = similarity_matrix(torch.nn.functional.one_hot(yk, k).double())
        torch.testing.assert_close(_label_similarity(yk, k, torch.float64), expected, rtol=1e-12, atol=1e-12)
