"""Training: splits, augmentation, the fit loop, checkpoint / resume, metrics."""
