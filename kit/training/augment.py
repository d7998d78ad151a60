"""Augmentation on batches of feature tensors (B, C, *, *), on whatever device they live.

Random numbers come from one CPU `torch.Generator` (saved with every checkpoint), so a
resumed run draws exactly what an uninterrupted one would.

SpecAugment masks, time reversal and circular time shifts are vectorised over the batch; mixup
returns the mixed batch and both label sets with the mixing weight.
"""

from __future__ import annotations

import torch

from kit.config import AugmentParams


def spec_augment(x, p: AugmentParams, time_dim: int, freq_dim: int, gen):
    """Mask random frequency bands and time spans with each example's mean (as SpecAugment)."""
    b = x.shape[0]
    fill = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    keep = torch.ones_like(x, dtype=torch.bool)
    for dim, count, width in ((freq_dim, p.freq_masks, p.freq_width), (time_dim, p.time_masks, p.time_width)):
        size = x.shape[dim]
        width = min(width, size // 4)  # never hide most of a small input
        if count <= 0 or width <= 0:
            continue
        pos = torch.arange(size, device=x.device)
        w = torch.randint(0, width + 1, (b, count, 1), generator=gen).to(x.device)
        start = (torch.rand((b, count, 1), generator=gen).to(x.device) * (size - w + 1)).long()
        masked = ((pos >= start) & (pos < start + w)).any(dim=1)  # (b, size)
        shape = [b] + [1] * (x.dim() - 1)
        shape[dim] = size
        keep &= ~masked.view(shape)
    return torch.where(keep, x, fill)


def time_reverse(x, prob: float, time_dim: int, gen):
    flip = (torch.rand(x.shape[0], generator=gen) < prob).to(x.device)
    if not flip.any():
        return x
    x = x.clone()
    x[flip] = x[flip].flip(time_dim)
    return x


def time_shift(x, max_fraction: float, time_dim: int, gen):
    """Roll each example by its own random number of frames (circular)."""
    size = x.shape[time_dim]
    limit = int(max_fraction * size)
    if limit <= 0:
        return x
    shifts = torch.randint(-limit, limit + 1, (x.shape[0],), generator=gen).to(x.device)
    idx = (torch.arange(size, device=x.device)[None, :] - shifts[:, None]) % size  # (b, size)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[time_dim] = size
    return torch.gather(x, time_dim, idx.view(shape).expand_as(x))


def mixup(x, y, alpha: float, gen):
    """(mixed x, y, y of the partners, lam): loss = lam * CE(y) + (1 - lam) * CE(y_partner)."""
    g1, g2 = torch._standard_gamma(torch.full((2,), float(alpha)), generator=gen).tolist()
    lam = max(g1 / (g1 + g2), g2 / (g1 + g2))  # Beta(alpha, alpha); the original example dominates
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam
