"""Choosing ensemble members from the registry: only runs that can be compared.

Runs are comparable when they share the split id (the same validation clips) and the feature
hash (the same inputs). The best run by the metric sets the reference; every other candidate
is kept or skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.errors import KitError
from kit.registry.runs import Listing, Run, rank


@dataclass(frozen=True)
class Members:
    runs: list[Run]
    skipped: list[tuple[str, str]]  # (run id, why)
    val_probs: list[np.ndarray]
    test_probs: list[np.ndarray]
    val_index: np.ndarray


def select(
    listing: Listing, *, top: int | None = None, run_ids: list[str] | None = None, metric: str = "accuracy"
) -> Members:
    """The top-`top` comparable runs (or exactly `run_ids`), with their probabilities loaded."""
    if top is not None and top < 1:
        raise KitError(f"ensemble.top={top}: must be at least 1")
    by_id = {r.id: r for r in listing.runs}
    skipped = [(name, f"broken folder: {why}") for name, why in listing.broken]
    if run_ids:
        missing = [i for i in run_ids if i not in by_id]
        if missing:
            raise KitError(f"no run {missing[0]!r} in the registry (see `kit registry`)")
        candidates = [by_id[i] for i in run_ids]
    else:
        candidates = rank(listing.runs, metric)
    no_test = [r for r in candidates if not (r.path / "test_probs.npy").exists()]
    skipped += [(r.id, "no test predictions (the feature store had no test split)") for r in no_test]
    candidates = [r for r in candidates if r not in no_test]
    if not candidates:
        raise KitError("no runs with test predictions in the registry: train some with `kit train`")
    ref = candidates[0]  # the best run sets the split and features every member must share
    chosen: list[Run] = []
    for run in candidates:
        why = _incomparable(run, ref)
        if why:
            skipped.append((run.id, why))
        elif top is not None and not run_ids and len(chosen) >= top:
            skipped.append((run.id, f"not in the top {top}"))
        else:
            chosen.append(run)
    if run_ids and skipped and any(r in run_ids for r, _ in skipped):
        rid, why = next((r, w) for r, w in skipped if r in run_ids)
        raise KitError(f"run {rid} cannot join {ref.id}: {why}")
    val_index = np.load(ref.path / "val_index.npy")
    return Members(
        chosen,
        skipped,
        [np.load(r.path / "val_probs.npy") for r in chosen],
        [np.load(r.path / "test_probs.npy") for r in chosen],
        val_index,
    )


def _incomparable(run: Run, ref: Run) -> str | None:
    if run.meta["split_id"] != ref.meta["split_id"]:
        return f"split {run.meta['split_id']} ≠ {ref.meta['split_id']}"
    if run.meta["feature_hash"] != ref.meta["feature_hash"]:
        return f"feature hash {run.meta['feature_hash']} ≠ {ref.meta['feature_hash']}"
    return None
