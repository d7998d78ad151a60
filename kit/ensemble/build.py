"""`kit ensemble`: registry runs -> one submission file with an honest score estimate."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.ensemble.members import Members, select
from kit.ensemble.methods import EnsembleResult, combine
from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.metrics import HIGHER_IS_BETTER
from kit.params import EnsembleParams, SplitParams, TrainParams
from kit.registry import runs as registry
from kit.training.splits import group_codes, store_groups


@dataclass(frozen=True)
class Built:
    members: Members
    result: EnsembleResult
    csv: Path
    manifest: dict  # as written beside the CSV (csv_sha256 included)

    def document(self) -> dict:
        """The manifest with the paths of the two files written: `kit ensemble --json`."""
        return {**self.manifest, "csv": str(self.csv), "manifest": str(self.csv.with_suffix(".json"))}


def build(p: EnsembleParams, train: TrainParams, *, run_ids: list[str] | None = None) -> Built:
    members = select(registry.load(Path(train.runs)), top=p.top, run_ids=run_ids, metric=p.metric)
    ref = members.runs[0]
    store = _store(ref, train)
    y = store.labels("train")[members.val_index]
    groups = store_groups(SplitParams(**ref.meta["split"]), store)
    if groups is not None:  # a song- or singer-grouped split: the ensemble's CV keeps them whole too
        groups = group_codes(np.asarray(groups, dtype=str))[members.val_index]
    result = combine(
        p.method,
        members.val_probs,
        y,
        members.test_probs,
        geometric=p.geometric,
        n_init=p.n_init,
        bagging=p.bagging,
        cv_folds=_cv_folds(p.cv_folds, y, groups),
        seed=0,
        groups=groups,
        metric=p.metric,
    )
    ids = [r.id for r in members.runs]
    name = p.name or f"{p.method}-{len(ids)}runs-{hashlib.sha256(','.join(ids).encode()).hexdigest()[:8]}"
    weights = result.weights.tolist() if result.weights is not None else [None] * len(ids)
    manifest = {
        "name": name,
        "method": p.method,
        "params": {k: getattr(p, k) for k in ("metric", "geometric", "n_init", "bagging", "cv_folds")},
        "members": [
            {"run": r.id, "arch": r.meta["arch"], "inputs": r.inputs, "weight": w, **s}
            for r, w, s in zip(members.runs, weights, result.members_scores)
        ],
        "estimate": result.estimate,
        "in_sample": result.in_sample,
        "best_member": sorted(result.members_scores, key=lambda s: s[p.metric], reverse=HIGHER_IS_BETTER[p.metric])[0],
        "split_id": ref.meta["split_id"],
        "feature_hash": ref.meta["feature_hash"],
        "inputs": {r.id: _sha(r.path / "test_probs.npy") for r in members.runs},
        "skipped": dict(members.skipped),
        "details": _plain(result.details),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    from kit.submission.files import write_submission

    csv = write_submission(
        Path(p.out) / f"{name}.csv", store.ids("test"), result.test_probs.argmax(1), manifest=manifest
    )
    return Built(members, result, csv, json.loads(csv.with_suffix(".json").read_text()))


def _cv_folds(asked: int, y: np.ndarray, groups: np.ndarray | None) -> int:
    """ensemble.cv_folds, lowered to the rarest class's validation rows (and the groups) so that a
    small validation set still gets an out-of-fold estimate (the manifest's details say how many)."""
    counts = np.bincount(y)
    most = min(asked, int(counts[counts > 0].min()), *([len(np.unique(groups))] if groups is not None else []))
    return max(2, most)  # below 2, combine() says why no estimate can be made


def _store(ref: registry.Run, train: TrainParams) -> FeatureStore:
    """The feature store the runs were trained on (by path recorded in the run, else params)."""
    damaged = ""
    for path in dict.fromkeys([ref.meta["features"], train.features]):
        try:
            store = FeatureStore.open(path)
        except KitError as exc:
            if not damaged and Path(path, "meta.json").exists():
                damaged = f" ({exc})"
            continue
        if store.feature_hash == ref.meta["feature_hash"]:
            return store
    where = " or ".join(dict.fromkeys([ref.meta["features"], train.features]))
    raise KitError(
        f"the feature store of run {ref.id} (hash {ref.meta['feature_hash']}) is not at {where} any more{damaged}: "
        "rebuild it with the params that run used, or remove the run (`kit registry rm`)"
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
