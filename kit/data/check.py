"""`kit data check`: validate a dataset and summarise it, decoding every clip once.

Problems (the dataset is refused until they are fixed): layout problems found by
`load_dataset` (missing files, label count != clip count, non-integer or out-of-range labels,
duplicate ids) plus clips that are empty or cannot be decoded. Odd-but-usable clips (stereo,
another sample rate, shorter or longer than the fixed duration) are counted as notes: the
front-end normalises them (mono, resample, pad / trim).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kit.data import audio
from kit.data.layout import Clip, Dataset


@dataclass
class SplitSummary:
    clips: int
    classes: list[int] | None  # clips per class; None for an unlabelled split
    seconds: list[float] = field(default_factory=list)
    rates: Counter = field(default_factory=Counter)  # sample rate (Hz) or image size "WxH"
    channels: Counter = field(default_factory=Counter)  # channels or image mode


@dataclass
class Report:
    dataset: Dataset
    splits: dict[str, SplitSummary]
    problems: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check(
    dataset: Dataset,
    *,
    sr: int,
    duration: float,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Report:
    problems = list(dataset.problems)
    splits: dict[str, SplitSummary] = {}
    probe = _probe_image if dataset.modality == "image" else _probe_audio
    counts = Counter()
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for split, items in dataset.splits.items():
            labelled = split == "train" or (split == "test" and dataset.test_labels is not None)
            hist = None
            if labelled:
                labels = [c.label for c in items] if split == "train" else list(dataset.test_labels.values())
                hist = (
                    np.bincount(labels, minlength=dataset.num_classes).tolist() if labels else [0] * dataset.num_classes
                )
            summary = SplitSummary(len(items), hist)
            for clip, (info, err) in zip(items, pool.map(probe, items)):
                if progress:
                    progress(1)
                if err:
                    problems.append(f"{dataset.rel(clip.path)}: {err}")
                    continue
                rate, chans, seconds = info
                summary.rates[rate] += 1
                summary.channels[chans] += 1
                if seconds is not None:
                    summary.seconds.append(seconds)
                    counts["short"] += seconds < duration - 1e-3
                    counts["long"] += seconds > duration + 1e-3
                if dataset.modality == "audio":
                    counts["stereo"] += chans > 1
                    counts["resampled"] += rate != sr
            splits[split] = summary
    notes = []
    if counts["stereo"]:
        notes.append(f"{counts['stereo']} multi-channel clip(s): mixed down to mono")
    if counts["resampled"]:
        notes.append(f"{counts['resampled']} clip(s) not at {sr} Hz: resampled")
    if counts["short"]:
        notes.append(f"{counts['short']} clip(s) shorter than {duration:g} s: zero-padded")
    if counts["long"]:
        notes.append(f"{counts['long']} clip(s) longer than {duration:g} s: trimmed")
    if dataset.modality == "image" and sum(len(s.rates) for s in splits.values()) > 1:
        notes.append("images of several sizes: resized to features.image height x width")
    return Report(dataset, splits, problems, notes)


def _probe_audio(clip: Clip):
    try:
        _, info = audio.read(clip.path)
    except audio.EmptyClip as exc:
        return None, str(exc)
    except audio.DecodeError as exc:
        return None, f"undecodable ({exc})"
    except FileNotFoundError:
        return None, "missing"
    return (info.sr, info.channels, info.seconds), None


def _probe_image(clip: Clip):
    from PIL import Image, UnidentifiedImageError

    try:
        if clip.path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(clip.path) as im:
            im.load()
            return (f"{im.width}x{im.height}", im.mode, None), None
    except (UnidentifiedImageError, OSError) as exc:
        return None, f"undecodable ({str(exc).splitlines()[0]})"
