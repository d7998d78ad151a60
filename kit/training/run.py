"""`kit train ARCH`: train one model (holdout or K-fold) and register it as a run folder.

Work in progress lives in `artifacts/work/<key>/`, where the key hashes every effective
param with the feature hash and split id: the same command re-run after a crash finds its
checkpoints there and resumes. A finished run is written to `artifacts/runs/<run_id>/` in one
rename and its work folder removed. `train.pack: G` trains seeds seed..seed+G-1 together (one
work folder, that of the first seed) and writes G runs, each keyed by its own seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from kit.device import resolve_device
from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.params import TrainParams
from kit.params.identity import run_key
from kit.params.load import check_name
from kit.registry import runs as registry
from kit.training import augment, record, voice_fit, work
from kit.training.fold import Fold, FoldResult
from kit.training.splits import Split, make_split, store_groups
from kit.training.step import steps_per_epoch

Replace = Literal["never", "stale", "always"]  # what becomes of a run already under the id


@dataclass(frozen=True)
class Callbacks:
    start: Callable[[int], None] | None = None  # total optimisation steps still to run
    batch: Callable[[], None] | None = None
    epoch: Callable[[int, list[dict]], None] | None = None  # (fold, each member's record)


@dataclass(frozen=True)
class Outcome:
    runs: list[registry.Run]  # one per seed of the pack
    trained: bool  # False: identical runs already existed, nothing was done
    resumed_from: dict[int, int]  # fold -> epochs already done when this process started
    refit_fold: int | None = None  # the key of resumed_from that is the refit
    kept: tuple[str, ...] = ()  # members that existed with these params: trained again, not rewritten


@dataclass(frozen=True)
class Plan:
    """What a `kit train` is to do, settled before any training: its store, split, and the runs
    (one per packed member) with their keys and ids."""

    p: TrainParams  # as applied (train.refit off where it does not apply)
    store: FeatureStore
    labels: np.ndarray
    channels: list[str]
    split: Split
    members: list[TrainParams]  # one per seed of the pack
    pack_seeds: list[int] | None  # the seeds trained together (a member trains as its pack does)
    keys: list[str]
    run_ids: list[str]
    done: list[registry.Run | None]  # each member's existing run with these params

    @property
    def runs_dir(self) -> Path:
        return Path(self.p.runs)


def train(
    p: TrainParams, *, name: str | None = None, replace: Replace = "never", cb: Callbacks = Callbacks()
) -> Outcome:
    """Train (or resume) the runs `p` describes and land them in the registry; nothing when they
    exist. replace: what happens to a run already under the id: never (an error unless it has these
    params), stale (replaced when its params differ: a pipeline stage's run), always (--force)."""
    plan = make_plan(p, name, replace)
    if all(plan.done):
        return Outcome(plan.done, False, {})
    if min(len(t) for t, _ in plan.split.folds) < 2:
        raise KitError(f"{p.features}: too few train clips for a {plan.split.id} split")
    voice = voice_fit.embeddings(plan.p, plan.store)
    device = resolve_device(p.device)
    folder = plan.runs_dir.parent / "work" / plan.keys[0]
    started = time.perf_counter()
    with work.lock(folder):
        heads = voice_fit.fit_heads(plan.p, voice, plan.store, plan.split, plan.labels) if voice is not None else None
        results, refits, resumed = _train_folds(plan, folder, device, cb)
        # plus the epochs earlier processes trained (resumed from their checkpoints); fold k, then the refit
        trained = [*(r[0] for r in results.values()), *(refits[:1] if plan.p.refit else [])]
        seconds = time.perf_counter() - started
        seconds += sum(e["seconds"] for k, r in enumerate(trained) for e in r.history[: resumed.get(k, 0)])
        _land(plan, results, refits, heads, device, seconds, replace)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when no other run is in progress
    kept = tuple(run.id for run in plan.done if run is not None)
    runs = [registry.read_run(plan.runs_dir / run_id) for run_id in plan.run_ids]
    refit_fold = len(plan.split.folds) if plan.p.refit else None
    return Outcome(runs, True, resumed, kept=kept, refit_fold=refit_fold)


def make_plan(p: TrainParams, name: str | None, replace: Replace = "never") -> Plan:
    store = FeatureStore.open(p.features)
    p = _refit_as_applied(p, "test" in store.splits)
    labels = store.labels("train")
    split = make_split(labels, p.split, store_groups(p.split, store))
    members = [dataclasses.replace(p, seed=p.seed + g) for g in range(p.pack)]
    pack_seeds = [m.seed for m in members] if p.pack > 1 else None
    keys = [run_key(m, store.feature_hash, split.id, pack_seeds) for m in members]
    run_ids = [_run_id(m, key, name, p.pack) for m, key in zip(members, keys)]
    done = [_existing(Path(p.runs) / run_id, key, replace) for run_id, key in zip(run_ids, keys)]
    return Plan(p, store, labels, _channels(p, store), split, members, pack_seeds, keys, run_ids, done)


def _train_folds(plan: Plan, folder: Path, device, cb: Callbacks):
    """Each fold of the split, then the refit: ({fold: member results}, refit results, resume points)."""
    p, store, labels, split = plan.p, plan.store, plan.labels, plan.split
    unit = augment.log_unit(p.augment, store.meta["frontend"].get("log"))
    sums = augment.sum_spec(p.augment, store.meta["num_classes"], plan.channels)
    x, y, x_test = _inputs(store, plan.channels, labels, p.pseudo.start > 0, device)
    resumed = work.resume_points(folder, len(split.folds) + p.refit)
    refit_k = len(split.folds)

    def steps(k: int, clips: int, epochs: int) -> int:  # optimisation steps fold k has still to run
        return steps_per_epoch(clips, p.batch_size) * max(0, epochs - resumed.get(k, 0))

    if cb.start:  # the refit's epochs are not known yet: counted as p.epochs
        folds = sum(steps(k, len(t), p.epochs) for k, (t, _) in enumerate(split.folds))
        cb.start(folds + p.refit * steps(refit_k, len(labels), p.epochs))
    results: dict[int, list[FoldResult]] = {}
    num_classes = store.meta["num_classes"]
    test_rows = np.arange(len(labels), len(x))  # empty unless self-training put the test clips in x
    for k, (train_idx, val_idx) in enumerate(split.folds):
        fold = Fold(x, y, train_idx, val_idx, x_test, num_classes, sums, unit, test_rows)
        results[k] = work.train_fold(fold, k, p, folder, device, cb)
    refits = [None] * p.pack
    if p.refit:  # every train clip, for the epochs the holdout ran (its schedule; early stopping's cut)
        until = results[0][0].epochs_run  # a pack's members ran alike (no early stopping in packs)
        if cb.start:  # now known: the steps the holdout took (early stopping) and the refit's
            ran = sum(steps(k, len(t), results[k][0].epochs_run) for k, (t, _) in enumerate(split.folds))
            cb.start(ran + steps(refit_k, len(labels), until))
        everything = Fold(x, y, np.arange(len(labels)), np.arange(0), x_test, num_classes, sums, unit)
        refits = work.train_fold(everything, refit_k, p, folder, device, cb, until)
    return results, refits, resumed


def _land(plan: Plan, results: dict, refits: list, heads, device, seconds: float, replace: Replace) -> None:
    """Write each member's run folder, unless another `kit train` landed a run under its name
    meanwhile: never replaced unasked (the error keeps the work folder: a re-run with --name lands
    from its checkpoints)."""
    for g, (m, run_id, key) in enumerate(zip(plan.members, plan.run_ids, plan.keys)):
        if plan.done[g] is None and _existing(plan.runs_dir / run_id, key, replace) is None:
            fill = partial(
                record.fill,
                run_id=run_id,
                p=m,
                params=dataclasses.asdict(m),
                key=key,
                store=plan.store,
                split=plan.split,
                results={k: r[g] for k, r in results.items()},
                refit=refits[g],
                voice=heads,
                labels=plan.labels,
                device=device,
                seconds=seconds,
                pack_seeds=plan.pack_seeds,
            )
            registry.write(plan.runs_dir, run_id, fill, replace=replace != "never")


def _refit_as_applied(p: TrainParams, has_test: bool) -> TrainParams:
    """train.refit where it applies: holdout runs of a store with test clips (a K-fold run's models
    already cover every clip; without test clips the refit would predict nothing). Elsewhere it is
    off, so the run's params and key say what was done."""
    if not p.refit:
        return p
    if p.split.kind != "holdout" or not has_test:
        return dataclasses.replace(p, refit=False)
    if p.pseudo.start > 0 or p.scheduler == "plateau":
        raise KitError(
            "train.refit trains without validation clips: not with self-training (train.pseudo.start > 0)"
            " or the plateau scheduler (pass --no-refit)"
        )
    return p


def _run_id(p: TrainParams, key: str, name: str | None, pack: int) -> str:
    if name:
        check_name(name, "--name")  # a folder of the runs folder, never a path out of it
        return name if pack == 1 else f"{name}-s{p.seed}"
    return f"{p.arch.replace(':', '-').replace('/', '-')}-s{p.seed}-{key[:8]}"


def _existing(path: Path, key: str, replace: Replace) -> registry.Run | None:
    """The run at `path` when it was trained with these params; None when it is to be trained."""
    if not path.exists() or replace == "always":
        return None
    try:
        run = registry.read_run(path)
    except KitError as exc:
        why = str(exc).split(": ", 1)[-1]
        raise KitError(f"run folder {path.name} is broken ({why}): pass --force to replace it, or --name") from None
    if run.meta.get("key") == key:
        return run
    if replace == "stale":
        return None
    raise KitError(f"run {path.name} already exists with other params: pass --force to replace it, or --name")


def _channels(p: TrainParams, store: FeatureStore) -> list[str]:
    """The store's channels the model sees (train.channels, checked against the store; [] = all)."""
    try:
        return store.channels(p.channels)
    except KitError as exc:
        raise KitError(f"train.channels: {exc}") from None


def _inputs(store: FeatureStore, channels: list[str], labels: np.ndarray, pseudo: bool, device):
    """(x, y, x_test) tensors on the device: x (N, C, freq, time) train clips (the chosen channels),
    y (N,) labels. For self-training x also holds the test clips after the train ones (x_test is a
    view of them) and y gives those rows -1: they are trained on only under pseudo-labels."""
    import torch

    x = store.model_input("train", channels)
    x_test = store.model_input("test", channels) if "test" in store.splits else None
    if not pseudo or x_test is None:
        x_test = torch.from_numpy(x_test).to(device) if x_test is not None else None
        return torch.from_numpy(x).to(device), torch.from_numpy(labels).to(device), x_test
    both = torch.from_numpy(np.concatenate([x, x_test])).to(device)
    y = np.concatenate([labels, np.full(len(x_test), -1, labels.dtype)])
    return both, torch.from_numpy(y).to(device), both[len(x) :]
