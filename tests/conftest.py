import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits


@pytest.fixture(autouse=True, scope="session")
def _two_threads():
    # The suite is sized for 2 cores; more threads than cores only adds contention.
    torch.set_num_threads(2)


@pytest.fixture
def one_thread():
    # A sequential reference and every CPU stage then use one thread: same kernels, same sums.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32) / 16.0, y


@pytest.fixture
def small_data():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 6).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y
