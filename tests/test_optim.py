import pytest
import torch

from deinforeg_sklearn.optim import LARS, cosine_lr, make_optimizer


def test_cosine_lr_endpoints_and_midpoint():
    assert cosine_lr(0, 100, 0.2, 0.002) == pytest.approx(0.2)
    assert cosine_lr(50, 100, 0.2, 0.002) == pytest.approx(0.101)
    assert cosine_lr(100, 100, 0.2, 0.002) == pytest.approx(0.002)
    assert cosine_lr(500, 100, 0.2, 0.002) == pytest.approx(0.002)
    assert cosine_lr(37, 100, 0.2, None) == 0.2


def test_lars_step_matches_formula():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    opt = LARS([w, b], lr=0.1, momentum=0.9, weight_decay=0.5, eta=0.01)
    w.grad = torch.tensor([[1.0, 0.0]])
    b.grad = torch.tensor([2.0])
    opt.step()
    g = torch.tensor([[1.0, 0.0]]) + 0.5 * torch.tensor([[3.0, 4.0]])  # weight decay on matrices
    ratio = 0.01 * 5.0 / torch.linalg.vector_norm(g)
    torch.testing.assert_close(w.detach(), torch.tensor([[3.0, 4.0]]) - 0.1 * ratio * g)
    torch.testing.assert_close(b.detach(), torch.tensor([1.0 - 0.1 * 2.0]))  # biases: plain SGD
    w.grad = torch.tensor([[1.0, 0.0]])
    b.grad = torch.tensor([2.0])
    opt.step()  # momentum: buffer = 0.9 * 2 + 2
    torch.testing.assert_close(b.detach(), torch.tensor([0.8 - 0.1 * 3.8]))


@pytest.mark.parametrize("name", ["adam", "sgd", "lars"])
def test_make_optimizer(name):
    layer = torch.nn.Linear(2, 2)
    frozen = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    opt = make_optimizer([*layer.parameters(), frozen], name, 0.01, 0.0)
    assert sum(len(g["params"]) for g in opt.param_groups) == 2


@pytest.mark.parametrize("name", ["adam", "sgd", "lars"])
def test_make_optimizer_keeps_parameter_groups_and_their_keys(name):
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    frozen = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    groups = [
        {"params": [*a.parameters(), frozen]},
        {"params": list(b.parameters()), "lr_scale": 4.0},
        {"params": [frozen]},
    ]
    opt = make_optimizer(groups, name, 0.01, 0.0)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]  # frozen left out; empty group dropped
    assert "lr_scale" not in opt.param_groups[0]
    assert opt.param_groups[1]["lr_scale"] == 4.0
    assert all(g["lr"] == 0.01 for g in opt.param_groups)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="Unknown optimizer"):
        make_optimizer(torch.nn.Linear(1, 1).parameters(), "rmsprop", 0.1, 0.0)
