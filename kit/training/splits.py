"""Validation splits with ids: stratified holdout, stratified K-fold, and grouped variants.

A split's id names its kind, size, seed, grouping and a digest of its validation indices, so
two runs are comparable (same validation clips) exactly when their split ids are equal.

Groups (songs, singers) come from the feature store (data.groups, or a manifest's group column) or,
at training time, from any column of a CSV with an `id` column (train.split.groups `FILE:COLUMN`).
A group value may name several members joined by `+` or `|` (a duet's singers): such a clip is
validated only in the fold that holds all its members and trained on only in folds that hold none
of them, so no member is ever heard on both sides; a fold leaves out the clips that straddle it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.params import SplitParams
from kit.textfile import read_utf8

MEMBERS = re.compile(r"[+|]")  # joins the members of one clip's group: "leon+amy", "amy_3|leon_2"
TRIES = 64  # random member orders tried for a member split; the most balanced wins


@dataclass(frozen=True)
class Split:
    id: str
    folds: list[tuple[np.ndarray, np.ndarray]]  # (train indices, validation indices) per fold
    groups: np.ndarray | None = None  # each train clip's group (str), when grouped
    left_out: tuple[int, ...] = ()  # per fold: clips on neither side (their members straddle the fold)

    @property
    def kfold(self) -> bool:
        return len(self.folds) > 1

    def val_index(self) -> np.ndarray:
        """Indices of the clips `val_probs.npy` rows belong to (K-fold: every validated clip, OOF)."""
        if self.kfold:
            return np.sort(np.concatenate([v for _, v in self.folds]))
        return self.folds[0][1]


def split_groups(p: SplitParams, ids: list[str], stored: list | None) -> list | None:
    """The train clips' groups a split keeps whole: train.split.groups (FILE:COLUMN, rows matched by
    id; with a split column, its train rows) when set, else the store's; None when not grouped."""
    if not p.grouped:
        return None
    if not p.groups:
        return stored
    path, sep, column = p.groups.rpartition(":")
    if not sep or not path or not column:
        raise KitError(f"train.split.groups: expected FILE:COLUMN (e.g. manifest.csv:singers), got {p.groups!r}")
    try:
        rows = list(csv.DictReader(io.StringIO(read_utf8(Path(path), "train.split.groups: "), newline="")))
    except FileNotFoundError:
        raise KitError(f"train.split.groups: {path}: no such file") from None
    if not rows or "id" not in rows[0] or column not in rows[0]:
        have = ", ".join(rows[0]) if rows else "nothing"
        raise KitError(f"train.split.groups: {path} needs columns id and {column} (it has {have})")
    by_id = {row["id"]: row[column] or "" for row in rows if row.get("split", "train") == "train"}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise KitError(
            f"train.split.groups: {path} has no row for {len(missing)} train clip(s) (first: id {missing[0]})"
        )
    return [by_id[i] for i in ids]


def store_groups(p: SplitParams, store: FeatureStore) -> list | None:
    """split_groups for a feature store's train clips (its own groups: data.groups, a manifest's)."""
    return split_groups(p, store.ids("train"), store.meta["splits"]["train"].get("groups"))


def make_split(labels: np.ndarray, p: SplitParams, groups: list | None = None) -> Split:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

    labels = np.asarray(labels)
    if p.grouped and not groups:
        raise KitError(
            "train.split.grouped: the feature store has no groups (set train.split.groups to FILE:COLUMN, or "
            "data.groups to an id,group CSV, or give a manifest with a group column, then rerun `kit features`)"
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
    group_array = None if not p.grouped else np.asarray(groups, dtype=str)  # a clip without one: "None" or ""
    left_out: list[int] = []
    if group_array is not None and any(MEMBERS.search(g) for g in group_array):
        folds, left_out = _member_folds(labels, group_array, n_splits, p.seed)
    elif group_array is not None:
        codes = group_codes(group_array)
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=p.seed)
        folds = list(splitter.split(dummy, labels, codes))
    elif p.kind == "kfold":
        folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=p.seed).split(dummy, labels))
    else:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=p.fraction, random_state=p.seed)
        folds = list(splitter.split(dummy, labels))
    if p.kind == "holdout":
        folds, left_out = folds[:1], left_out[:1]
    folds = [(np.sort(t), np.sort(v)) for t, v in folds]
    hashed = [v for _, v in folds] + ([t for t, _ in folds] if any(left_out) else [])
    digest = hashlib.sha256(b"".join(v.astype(np.int64).tobytes() for v in hashed)).hexdigest()[:8]
    split_id = f"{name}-s{p.seed}{'-grouped' if p.grouped else ''}-{digest}"
    return Split(split_id, folds, group_array, tuple(left_out) if any(left_out) else ())


def group_codes(groups: np.ndarray) -> np.ndarray:
    """An integer per clip for grouped cross-validation inside a split's folds (the voice head's
    choice of C, the ensemble's CV): its group, or with several members its first one."""
    return np.unique([MEMBERS.split(g)[0] for g in groups], return_inverse=True)[1]


def members(groups: np.ndarray) -> list[list[str]]:
    """Each clip's members: the parts of its group value; a clip without a group is its own member."""
    return [[m for m in MEMBERS.split(g) if m] or [f"\0{i}"] for i, g in enumerate(groups)]


def _member_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    """Folds that keep every member on one side: members dealt to folds (largest first, into the
    fold with the fewest clips; TRIES random orders, the one whose validation folds are the most
    even in size and class mix wins). Clips whose members land in several folds are left out of
    the folds they straddle."""
    per_clip = members(groups)
    names = sorted({m for ms in per_clip for m in ms})
    if sum(not n.startswith("\0") for n in names) < n_splits:
        raise KitError(
            f"train.split.groups: the groups name {len(names)} members, fewer than the {n_splits} folds asked for"
        )
    col = {n: j for j, n in enumerate(names)}
    rows = np.repeat(np.arange(len(per_clip)), [len(ms) for ms in per_clip])
    cols = np.array([col[m] for ms in per_clip for m in ms])
    size = np.bincount(cols, minlength=len(names))
    n_members = np.bincount(rows, minlength=len(per_clip))
    share = np.bincount(labels) / len(labels)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(TRIES):
        order = np.argsort(-(size + rng.random(len(names))), kind="stable")  # largest first, ties shuffled
        fold_of = np.empty(len(names), np.int64)
        load = np.zeros(n_splits)
        for j in order:
            fold_of[j] = k = int(np.argmin(load + rng.random(n_splits) * 1e-6))
            load[k] += size[j]
        hits = np.zeros((len(per_clip), n_splits), np.int64)
        np.add.at(hits, (rows, fold_of[cols]), 1)
        val = [np.flatnonzero(hits[:, k] == n_members) for k in range(n_splits)]
        if min(len(v) for v in val) == 0:
            continue
        target = len(labels) / n_splits
        mix = [np.abs(np.bincount(labels[v], minlength=len(share)) / len(v) - share).sum() for v in val]
        cost = sum(abs(len(v) - target) / target for v in val) + sum(mix)
        if best is None or cost < best[0]:
            best = (cost, val, hits)
    if best is None:
        raise KitError(f"train.split.groups: no way found to deal the members into {n_splits} non-empty folds")
    _, val, hits = best
    folds = [(np.flatnonzero(hits[:, k] == 0), v) for k, v in enumerate(val)]
    left_out = [len(labels) - len(t) - len(v) for t, v in folds]
    return folds, left_out


def val_order(split: Split, by_fold: dict[int, np.ndarray], num_classes: int) -> np.ndarray:
    """Validation probabilities in val_index order: the holdout's, or K-fold's out-of-fold rows."""
    if not split.kfold:
        return by_fold[0]
    index = split.val_index()
    out = np.zeros((len(index), num_classes), np.float32)
    for k, (_, v) in enumerate(split.folds):
        out[np.searchsorted(index, v)] = by_fold[k]
    return out
