"""Augmentation on batches of feature tensors (B, C, *, *), on whatever device they live.

Random numbers come from a seeded `torch.Generator` (saved with every checkpoint), so a
resumed run draws exactly what an uninterrupted one would. They are drawn on the generator's
device: with a CUDA generator and batches on the GPU, augmenting never waits for the GPU.

SpecAugment masks, time reversal and circular time shifts are vectorised over the batch; mixup
returns the mixed batch and both label sets with the mixing weight. Sum mixing adds two clips'
powers and looks the new label up in a table (for labels that count sources: voice + voice =
several voices, voice + no voice = voice). Filter augmentation tilts each example's spectrum by
its own random EQ curve (log power + a piecewise-linear gain over frequency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kit.errors import KitError
from kit.params import AugmentParams


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
        w = _randint(0, width + 1, (b, count, 1), gen, x)
        start = (_rand((b, count, 1), gen, x) * (size - w + 1)).long()
        masked = ((pos >= start) & (pos < start + w)).any(dim=1)  # (b, size)
        shape = [b] + [1] * (x.dim() - 1)
        shape[dim] = size
        keep &= ~masked.view(shape)
    return torch.where(keep, x, fill)


def time_reverse(x, prob: float, time_dim: int, gen):
    flip = _rand(x.shape[0], gen, x) < prob
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(time_dim), x)


def time_shift(x, max_fraction: float, time_dim: int, gen):
    """Roll each example by its own random number of frames (circular)."""
    size = x.shape[time_dim]
    limit = int(max_fraction * size)
    if limit <= 0:
        return x
    shifts = _randint(-limit, limit + 1, (x.shape[0],), gen, x)
    idx = (torch.arange(size, device=x.device)[None, :] - shifts[:, None]) % size  # (b, size)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[time_dim] = size
    return torch.gather(x, time_dim, idx.view(shape).expand_as(x))


def mixup(x, y, alpha: float, gen):
    """(mixed x, y, y of the partners, lam): loss = lam * CE(y) + (1 - lam) * CE(y_partner).

    lam is a 0-d float64 tensor on x's device (Beta(alpha, alpha), the larger of the pair: the
    original example dominates)."""
    g = torch._standard_gamma(torch.full((2,), float(alpha), device=gen.device), generator=gen).double()
    lam = (g.max() / g.sum()).to(x.device)
    perm = torch.randperm(x.shape[0], generator=gen, device=gen.device).to(x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


DB_PER_NEPER = 10 / math.log(10)  # 10*log10(P) = DB_PER_NEPER * ln(P)


def log_unit(p: AugmentParams, log: str | None) -> float:
    """Feature units per neper of power for a store's `log` kind (dB: 4.34, natural log: 1; 0: not
    log power), once the log-power augmentations' params are checked against it.

    Sum mixing and filter augmentation work on log powers: on other features (images) they must
    be off, and the error names every one that is on.
    """
    if log in ("db", "ln"):
        return DB_PER_NEPER if log == "db" else 1.0
    on = [k for k in ("sum_mix", "filter_db") if getattr(p, k) > 0]
    if on:
        raise KitError(
            f"train.augment.{' and '.join(on)}: need log-power features (logmel, logfreq or fbank); set to 0 for images"
        )
    return 0.0


def filter_augment(x, max_db: float, points: int, unit: float, freq_dim: int, gen):
    """Add to each example (every channel alike) a random EQ curve: `points` gains uniform within
    ±`max_db`, evenly spaced over the frequency axis, linear in between (FilterAugment, Nam et al.
    2022). `unit` is feature units per neper, so the gain is in dB whatever the log base."""
    b, size = x.shape[0], x.shape[freq_dim]
    knots = (_rand((b, 1, points), gen, x) * 2 - 1) * (max_db * unit / DB_PER_NEPER)
    curve = torch.nn.functional.interpolate(knots, size=size, mode="linear", align_corners=True)
    shape = [b] + [1] * (x.dim() - 1)
    shape[freq_dim] = size
    return x + curve.to(x.dtype).view(shape)


def freq_shift(x, max_bins: int, freq_dim: int, gen):
    """Shift each example (every channel alike) along frequency by a whole number of bins within
    ±`max_bins`, repeating the edge band into the vacated ones. On a log-frequency store this is a
    pitch shift (logfreq bins are ~4% apart: 1.5 bins a semitone)."""
    b, size = x.shape[0], x.shape[freq_dim]
    shift = _randint(-max_bins, max_bins + 1, (b, 1), gen, x)
    rows = (torch.arange(size, device=x.device) - shift).clamp_(0, size - 1)  # (b, size): source band
    shape = [b] + [1] * (x.dim() - 1)
    shape[freq_dim] = size
    return x.gather(freq_dim, rows.view(shape).expand_as(x))


@dataclass(frozen=True)
class SumSpec:
    """What sum mixing needs to know about the feature store."""

    table: torch.Tensor  # (K, K): label of clip + partner
    partner_channels: tuple[int, ...] | None  # per channel, the partner's channel added to it; None: its own


def sum_spec(p: AugmentParams, num_classes: int, channels: list[str]) -> SumSpec | None:
    """Check the sum-mixing params against the store's classes and channels (its log kind:
    `log_unit`); None when sum mixing is off."""
    if p.sum_mix <= 0:
        return None
    table = p.sum_labels
    if len(table) != num_classes or any(len(row) != num_classes for row in table):
        raise KitError(
            f"train.augment.sum_labels: needs a {num_classes} x {num_classes} table (one row per class),"
            " or set train.augment.sum_mix: 0"
        )
    bad = [(i, j) for i, row in enumerate(table) for j, v in enumerate(row) if not 0 <= v < num_classes]
    if bad:
        i, j = bad[0]
        raise KitError(f"train.augment.sum_labels[{i}][{j}]: {table[i][j]} is not a class (0..{num_classes - 1})")
    partners = None
    if p.sum_partner == "vocals":
        vocals = [c.replace("mix", "vocals", 1) for c in channels]  # mix:logfreq -> vocals:logfreq
        if not all(v.startswith("vocals") and v in channels for v in vocals):
            raise KitError(
                f"train.augment.sum_partner: vocals needs a vocals channel; the model sees {', '.join(channels)}"
            )
        partners = tuple(channels.index(v) for v in vocals)
    return SumSpec(torch.tensor(table, dtype=torch.long), partners)


def sum_mix(x, y, p: AugmentParams, spec: SumSpec, unit: float, gen):
    """Replace a `p.sum_mix` share of the batch by clip + partner clip, summed as powers.

    `x` holds log powers in every channel (`unit` per neper, from `log_unit`), so the sum is a
    log-add-exp; the partner is scaled by a uniform gain within ±`p.sum_gain_db`. With `partner_channels` set, only the partner's
    vocals are added (to every channel, each front-end's to its own): one accompaniment, two voices, as in real duets. The
    label of a sum is `table[y, y_partner]`. An example never partners itself.
    """
    b, shape = x.shape[0], (-1, *[1] * (x.dim() - 1))
    perm = torch.randperm(b, generator=gen, device=gen.device).to(x.device)
    pick = (_rand(b, gen, x) < p.sum_mix) & (perm != torch.arange(b, device=x.device))
    gain_db = (_rand(b, gen, x) * 2 - 1) * p.sum_gain_db
    partner = x[perm]
    if spec.partner_channels is not None:
        partner = partner[:, list(spec.partner_channels)]
    partner = partner + (gain_db * unit / DB_PER_NEPER).view(shape)
    summed = torch.logaddexp(x / unit, partner / unit) * unit
    return torch.where(pick.view(shape), summed, x), torch.where(pick, spec.table[y, y[perm]], y)


def _rand(shape, gen, x):
    """Uniform [0, 1) numbers drawn on the generator's device, placed on x's."""
    return torch.rand(shape, generator=gen, device=gen.device).to(x.device)


def _randint(low: int, high: int, shape, gen, x):
    """Integers in [low, high) drawn on the generator's device, placed on x's."""
    return torch.randint(low, high, shape, generator=gen, device=gen.device).to(x.device)
