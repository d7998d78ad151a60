"""A fold's inputs and what training it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kit.training import augment


@dataclass
class Fold:
    """One fold's inputs: tensors (possibly on the device) and indices into them."""

    x: object  # (N, C, freq, time) float16 tensor of all train clips (self-training: then the test clips)
    y: object  # (N,) int64 tensor of their labels (-1 for test clips)
    train_idx: np.ndarray
    val_idx: np.ndarray
    x_test: object | None  # (M, C, freq, time) float16 tensor, or None
    num_classes: int
    sum_spec: augment.SumSpec | None = None  # sum mixing, or None when it is off
    log_unit: float = 0.0  # feature units per neper of power (sum mixing, filter augmentation); 0: not log power
    test_rows: np.ndarray = field(default_factory=lambda: np.arange(0))  # rows of x holding test clips (self-training)


@dataclass
class FoldResult:
    best_epoch: int
    best_score: float | None  # None: a fold without validation (refit)
    val_probs: np.ndarray
    test_probs: np.ndarray | None
    weights: dict  # best epoch's state_dict (CPU tensors)
    history: list[dict]
    epochs_run: int
