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
