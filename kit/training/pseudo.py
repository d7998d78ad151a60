"""Self-training (train.pseudo): unlabelled clips join the batches under the model's own confident labels."""

from __future__ import annotations

import numpy as np
import torch

from kit.params import TrainParams
from kit.training.fold import Fold
from kit.training.model import predict


def pseudo_labels(model, fold: Fold, val_probs: np.ndarray, p: TrainParams, device, amp):
    """(rows, labels): the unlabelled clips (validation, then test) that `model` classifies with at
    least the threshold's confidence, under the classes it gives them. val_probs: its validation
    predictions."""
    probs = [val_probs]
    if len(fold.test_rows):
        probs.append(predict(model, fold.x, fold.test_rows, device, p.eval_batch_size, amp))
    probs = np.concatenate(probs)
    keep = probs.max(1) >= p.pseudo.threshold
    return np.concatenate([fold.val_idx, fold.test_rows])[keep], probs[keep].argmax(1)


def with_pseudo(fold: Fold, rows: np.ndarray, labels: np.ndarray):
    """The epoch's training rows (train fold + pseudo-labelled rows) and labels for every row of x."""
    y = fold.y.clone()
    y[torch.as_tensor(rows, device=y.device)] = torch.as_tensor(labels, device=y.device)
    return np.concatenate([fold.train_idx, rows]), y
