import numpy as np
import pytest
import torch

from deinforeg_sklearn.data.augment import make_augmenter, random_crop_flip
from deinforeg_sklearn.data.batches import epoch_batches
from deinforeg_sklearn.data.split import validation_split


@pytest.mark.parametrize("n,b", [(10, 3), (9, 4), (10, 5), (1, 4), (2, 1), (129, 128)])
def test_epoch_batches_cover_every_sample_and_never_leave_one(n, b):
    batches = epoch_batches(n, b, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert sorted(flat) == list(range(n))
    assert all(len(x) >= 2 for x in batches) or n == 1


def test_validation_split_is_stratified_and_disjoint():
    y = np.repeat(np.arange(4), 25)
    train, val = validation_split(y, 0.2, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100
    assert np.bincount(y[val]).tolist() == [5, 5, 5, 5]


def test_validation_split_too_small_or_zero():
    assert validation_split(np.array([0, 1]), 0.1, 0)[1] is None
    assert validation_split(np.arange(50) % 2, 0.0, 0)[1] is None


def test_random_crop_flip_keeps_content_and_shape():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x)
    assert out.shape == x.shape
    # each output row is a (possibly flipped) window of the zero-padded input
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0.0}


def test_random_crop_flip_differs_per_sample():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16).repeat(64, 1, 1, 1)
    out = random_crop_flip(x)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 10


@pytest.mark.parametrize("channels", [1, 3])
def test_strong_augment(channels):
    aug = make_augmenter("strong", (channels, 8, 8))
    out = aug(torch.rand(5, channels, 8, 8))
    assert out.shape == (5, channels, 8, 8)


def test_augment_needs_images():
    with pytest.raises(ValueError, match="image input"):
        make_augmenter("basic", (64,))
    assert make_augmenter(None, (64,)) is None


def test_importing_the_package_does_not_import_torchvision():
    # torchvision costs about a second at import and only augment="strong" needs it
    import subprocess
    import sys

    code = "import sys, deinforeg_sklearn; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------- per-sample augmentation
def _eight_identical_images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(1, 3, 16, 16).repeat(8, 1, 1, 1)


def test_a_torchvision_transform_draws_one_crop_per_image():
    from torchvision.transforms import v2

    aug = make_augmenter(v2.RandomCrop(16, padding=4), (3, 16, 16))
    out = aug(_eight_identical_images())
    assert out.shape == (8, 3, 16, 16)
    distinct = {tuple(img.flatten()[:64].tolist()) for img in out}
    assert len(distinct) > 1  # a batch call would give 8 equal crops of 8 equal images


def test_per_batch_hands_the_whole_batch_to_the_transform():
    from deinforeg_sklearn.data import PerBatch

    calls = []

    def batch_fn(x):
        calls.append(x.shape)
        return x

    make_augmenter(PerBatch(batch_fn), (3, 16, 16))(_eight_identical_images())
    assert calls == [(8, 3, 16, 16)]


@pytest.mark.parametrize("low, high", [(0.0, 255.0), (-2.5, 3.0)])
def test_strong_augment_keeps_the_data_range(low, high):
    torch.manual_seed(1)
    x = torch.rand(64, 3, 16, 16) * (high - low) + low
    out = make_augmenter("strong", (3, 16, 16), (low, high))(x)
    assert out.min() >= low - 1e-4 and out.max() <= high + 1e-4
    # not clamped into [0, 1]: the values still span the data's range
    assert out.max() > 0.5 * high and (low >= 0 or out.min() < 0.5 * low)
    assert out.std() > 0.2 * x.std()


def test_strong_augment_without_torchvision_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(ImportError, match=r"deinforeg-sklearn\[vision\]"):
        make_augmenter("strong", (3, 16, 16))


def test_strong_augment_in_a_fit_on_0_255_images():
    from deinforeg_sklearn import DeInfoRegClassifier
    from deinforeg_sklearn.blocks import Conv

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 3 * 8 * 8)).astype(np.float32)
    y = np.arange(40) % 2
    est = DeInfoRegClassifier(
        blocks=[Conv([4, "M"])], input_shape=(3, 8, 8), augment="strong", max_iter=1, random_state=0
    )
    est.fit(X, y)
    assert est.predict(X).shape == (40,)
