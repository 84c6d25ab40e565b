"""A fit with a checkpoint, run in its own process so that a test can kill it mid-epoch.

Usage: python tests/checkpoint_job.py OUT.npy [CHECKPOINT_DIR]
Fits DeInfoReg on digits (with augmentation, so torch's random state matters) and saves its
predict_proba on the training rows to OUT.npy. Without CHECKPOINT_DIR it runs uninterrupted.
"""

import sys

import numpy as np
import torch
from sklearn.datasets import load_digits

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Conv, Dense

PARAMS = {
    "blocks": [Conv([32]), Conv([32, "M"]), Dense(128)],
    "input_shape": (1, 8, 8),
    "augment": "basic",
    "max_iter": 6,
    "batch_size": 16,
    "random_state": 0,
    "early_stopping": True,
    "n_iter_no_change": 20,
}


def data():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


if __name__ == "__main__":
    torch.set_num_threads(1)
    X, y = data()
    checkpoint = sys.argv[2] if len(sys.argv) > 2 else None
    est = DeInfoRegClassifier(checkpoint=checkpoint, **PARAMS).fit(X, y)
    np.save(sys.argv[1], est.predict_proba(X))
