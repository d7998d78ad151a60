"""The pieces of one optimisation step: batch order, augmentation, per-member losses, the optimiser."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kit.errors import KitError
from kit.params import TrainParams
from kit.training import augment
from kit.training.model import FREQ_DIM, TIME_DIM


def by_member(xb, members: int):
    """(B * members, C, F, T) rows b * members + g -> (B, members, C, F, T); one member: as is."""
    return xb if members == 1 else xb.view(-1, members, *xb.shape[1:])


def check_finite(loss_sum: torch.Tensor, epoch: int, seeds: list[int], lr: float) -> None:
    bad = (~torch.isfinite(loss_sum)).nonzero().flatten().tolist()
    if bad:
        who = f" (seed {seeds[bad[0]]})" if len(seeds) > 1 else ""
        raise KitError(f"training diverged in epoch {epoch}{who}: the loss is not finite; lower --lr (now {lr:g})")


def losses(logits, y, class_w, smoothing: float):
    """Each member's mean cross-entropy over its batch: (members,), from (B, members, K) logits and
    (B * members,) labels, or (1,) from one model's (B, K)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, y, class_w, label_smoothing=smoothing).reshape(1)
    y = y.view(logits.shape[:2])
    per = F.cross_entropy(logits.transpose(1, 2), y, class_w, reduction="none", label_smoothing=smoothing)
    return per.mean(0) if class_w is None else per.sum(0) / class_w[y].sum(0)  # as reduction="mean" would


def per_member(probs: np.ndarray) -> list[np.ndarray]:
    """predict's output as one (N, K) array per member."""
    return [probs] if probs.ndim == 2 else list(probs.transpose(1, 0, 2))


def augment_batch(xb, p: TrainParams, log_unit: float, gen):
    a = p.augment
    if a.freq_shift > 0:
        xb = augment.freq_shift(xb, a.freq_shift, FREQ_DIM, gen)
    if a.filter_db > 0:
        xb = augment.filter_augment(xb, a.filter_db, a.filter_points, log_unit, FREQ_DIM, gen)
    if a.freq_masks or a.time_masks:
        xb = augment.spec_augment(xb, a, TIME_DIM, FREQ_DIM, gen)
    if a.time_reverse > 0:
        xb = augment.time_reverse(xb, a.time_reverse, TIME_DIM, gen)
    if a.time_shift > 0:
        xb = augment.time_shift(xb, a.time_shift, TIME_DIM, gen)
    return xb


def order(y, balance: str, gen, n: int):
    """n positions into y (the epoch's training labels): the first n of a shuffle, or class-balanced draws."""
    if balance == "sampler":
        counts = torch.bincount(y.cpu()).float()
        weights = (1.0 / counts)[y.cpu()]
        return torch.multinomial(weights, n, replacement=True, generator=gen).numpy()
    return torch.randperm(len(y), generator=gen)[:n].numpy()


def optimizer(model, p: TrainParams, cuda: bool):
    if p.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, nesterov=True
        )
    return torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay, fused=cuda)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one example is dropped (it breaks BatchNorm)."""
    return max(1, n_train // batch_size + (n_train % batch_size > 1))
