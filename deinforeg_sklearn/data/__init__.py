"""Data handling: minibatches, validation splits, augmentation and input shapes."""
