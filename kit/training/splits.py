"""Validation splits with ids: stratified holdout, stratified K-fold, and grouped variants.

A split's id names its kind, size, seed, grouping and a digest of its validation indices, so
two runs are comparable (same validation clips) exactly when their split ids are equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from kit.errors import KitError
from kit.params import SplitParams


@dataclass(frozen=True)
class Split:
    id: str
    folds: list[tuple[np.ndarray, np.ndarray]]  # (train indices, validation indices) per fold

    @property
    def kfold(self) -> bool:
        return len(self.folds) > 1

    def val_index(self) -> np.ndarray:
        """Indices of the clips `val_probs.npy` rows belong to (K-fold: every clip, OOF)."""
        if self.kfold:
            return np.arange(sum(len(v) for _, v in self.folds))
        return self.folds[0][1]


def make_split(labels: np.ndarray, p: SplitParams, groups: list | None = None) -> Split:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

    labels = np.asarray(labels)
    if p.grouped and not groups:
        raise KitError(
            "train.split.grouped: the feature store has no groups (set data.groups to an id,group CSV, "
            "or give a manifest with a group column, then rerun `kit features`)"
        )
    counts = np.bincount(labels)
    if p.kind == "kfold":
        n_splits, name = p.folds, f"kfold{p.folds}"
    else:
        n_splits, name = max(2, round(1 / p.fraction)), f"holdout{p.fraction:g}"
        if p.grouped and abs(n_splits * p.fraction - 1) > 0.02:
            raise KitError(
                f"train.split.fraction: a grouped holdout is one fold of a group K-fold, so it takes 1/K "
                f"(0.5, 0.333, 0.25, 0.2, ...); got {p.fraction:g}, nearest 1/{n_splits}"
            )
    if counts[counts > 0].min() < (n_splits if p.kind == "kfold" else 2):
        raise KitError(f"a class has only {counts[counts > 0].min()} clip(s): too few for a {name} split")
    dummy = np.zeros(len(labels))
    if p.grouped:
        codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=p.seed)
        folds = list(splitter.split(dummy, labels, codes))
    elif p.kind == "kfold":
        folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=p.seed).split(dummy, labels))
    else:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=p.fraction, random_state=p.seed)
        folds = list(splitter.split(dummy, labels))
    if p.kind == "holdout":
        folds = folds[:1]
    folds = [(np.sort(t), np.sort(v)) for t, v in folds]
    digest = hashlib.sha256(b"".join(v.astype(np.int64).tobytes() for _, v in folds)).hexdigest()[:8]
    return Split(f"{name}-s{p.seed}{'-grouped' if p.grouped else ''}-{digest}", folds)


def val_order(split: Split, by_fold: dict[int, np.ndarray], n: int, num_classes: int) -> np.ndarray:
    """Validation probabilities in val_index order: the holdout's, or K-fold's out-of-fold rows."""
    if not split.kfold:
        return by_fold[0]
    out = np.zeros((n, num_classes), np.float32)
    for k, (_, v) in enumerate(split.folds):
        out[v] = by_fold[k]
    return out
