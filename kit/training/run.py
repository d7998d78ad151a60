"""`kit train ARCH`: train one model (holdout or K-fold) and register it as a run folder.

Work in progress lives in `artifacts/work/<key>/`, where the key hashes every effective
param with the feature hash and split id: the same command re-run after a crash finds its
checkpoints there and resumes. A finished run is written to `artifacts/runs/<run_id>/` in one
rename and its work folder removed. `train.stack: G` trains seeds seed..seed+G-1 together (one
work folder, that of the first seed) and writes G runs, each keyed by its own seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from kit import __version__
from kit.config import TrainParams
from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.registry import runs as registry
from kit.training import augment, voice_head
from kit.training.loop import (
    Fold,
    FoldResult,
    autocast_dtype,
    check_stack,
    fit_fold,
    member_key,
    pseudo_start,
    steps_per_epoch,
)
from kit.training.metrics import confusion, scores
from kit.training.splits import Split, make_split

NOT_HASHED = ("features", "runs", "eval_batch_size", "device", "precision")  # don't change what is learned
# params added later: at these values every earlier run's key stays valid
UNHASHED_DEFAULTS = {"stack": 1, "refit": False, "channels": []}


@dataclass(frozen=True)
class Callbacks:
    start: Callable[[int], None] | None = None  # total optimisation steps still to run
    batch: Callable[[], None] | None = None
    epoch: Callable[[int, list[dict]], None] | None = None  # (fold, each member's record)


@dataclass(frozen=True)
class Outcome:
    runs: list[registry.Run]  # one per seed of the stack
    trained: bool  # False: identical runs already existed, nothing was done
    resumed_from: dict[int, int]  # fold -> epochs already done when this process started
    refit_fold: int | None = None  # the key of resumed_from that is the refit
    kept: tuple[str, ...] = ()  # members that existed with these params: trained again, not rewritten


def train(p: TrainParams, *, name: str | None = None, force: bool = False, cb: Callbacks = Callbacks()) -> Outcome:
    if min(p.epochs, p.batch_size, p.eval_batch_size) < 1:
        raise KitError(
            "train.epochs, train.batch_size and train.eval_batch_size must be ≥ 1 "
            f"(got {p.epochs}, {p.batch_size}, {p.eval_batch_size})"
        )
    if p.early_stop < 0:
        raise KitError(f"train.early_stop must be ≥ 0 (patience in epochs, 0 = off), got {p.early_stop}")
    if p.ema_epochs < 0:
        raise KitError(f"train.ema_epochs must be ≥ 0 (0 = off), got {p.ema_epochs}")
    if not (0 <= p.pseudo.start < 1 and 0 < p.pseudo.threshold <= 1):
        raise KitError(
            f"train.pseudo: start must be in [0, 1) and threshold in (0, 1] (got {p.pseudo.start}, {p.pseudo.threshold})"
        )
    if p.pseudo.start > 0 and pseudo_start(p) >= p.epochs:
        raise KitError(f"train.pseudo.start: {p.pseudo.start} of {p.epochs} epochs leaves no epoch to self-train")
    if p.augment.freq_shift < 0:
        raise KitError(f"train.augment.freq_shift must be ≥ 0 (0 = off), got {p.augment.freq_shift}")
    if p.stack < 1:
        raise KitError(f"train.stack must be ≥ 1 (models trained at once), got {p.stack}")
    if not (0 <= p.voice.weight <= 1 and p.voice.c >= 0):
        raise KitError(
            f"train.voice: weight must be in [0, 1] and c ≥ 0 (0 = cross-validated), got {p.voice.weight}, {p.voice.c}"
        )
    check_stack(p, p.stack)
    store = FeatureStore.open(p.features)
    p = _refit_as_applied(p, "test" in store.splits)
    labels = store.labels("train")
    groups = store.meta["splits"]["train"].get("groups")
    unit = augment.log_unit(p.augment, store.meta["frontend"].get("log"))
    channels = _channels(p, store)
    sums = augment.sum_spec(p.augment, store.meta["num_classes"], channels)
    split = make_split(labels, p.split, groups)
    members = [dataclasses.replace(p, seed=p.seed + g) for g in range(p.stack)]
    params = [dataclasses.asdict(m) for m in members]
    stack_seeds = [m.seed for m in members] if p.stack > 1 else None  # a member trains as its stack does
    keys = [_digest(_hashed(q), store.feature_hash, split.id, *([stack_seeds] if stack_seeds else [])) for q in params]
    run_ids = [_run_id(m, key, name, p.stack) for m, key in zip(members, keys)]
    runs_dir = Path(p.runs)
    done = [_existing(runs_dir / run_id, key, force) for run_id, key in zip(run_ids, keys)]
    if all(done):
        return Outcome(done, False, {})
    if min(len(t) for t, _ in split.folds) < 2:
        raise KitError(f"{p.features}: too few train clips for a {split.id} split")
    voice = _voice(p, store)

    device = resolve_device(p.device)
    work = runs_dir.parent / "work" / keys[0]
    started = time.perf_counter()
    with _lock(work):
        heads = _voice_heads(p, voice, store, split, labels) if voice is not None else None  # for every member
        x, y, x_test = _inputs(store, channels, labels, p.pseudo.start > 0, device)
        results: dict[int, list[FoldResult]] = {}
        resumed = _resume_points(work, len(split.folds) + p.refit)
        refit_k = len(split.folds)

        def steps(k: int, clips: int, epochs: int) -> int:  # optimisation steps fold k has still to run
            return steps_per_epoch(clips, p.batch_size) * max(0, epochs - resumed.get(k, 0))

        if cb.start:  # the refit's epochs are not known yet: counted as p.epochs
            cb.start(
                sum(steps(k, len(t), p.epochs) for k, (t, _) in enumerate(split.folds))
                + p.refit * steps(refit_k, len(labels), p.epochs)
            )
        for k, (train_idx, val_idx) in enumerate(split.folds):
            fold = Fold(
                x,
                y,
                train_idx,
                val_idx,
                x_test,
                store.meta["num_classes"],
                sums,
                unit,
                np.arange(len(labels), len(x)),  # empty unless self-training put the test clips in x
            )
            results[k] = _fold(fold, k, p, work, device, cb)
        refits = [None] * p.stack
        if p.refit:  # every train clip, for the epochs the holdout ran (its schedule; early stopping's cut)
            until = results[0][0].epochs_run  # a stack's members ran alike (no early stopping in stacks)
            if cb.start:  # now known: the steps the holdout took (early stopping) and the refit's
                ran = sum(steps(k, len(t), results[k][0].epochs_run) for k, (t, _) in enumerate(split.folds))
                cb.start(ran + steps(refit_k, len(labels), until))
            everything = Fold(x, y, np.arange(len(labels)), np.arange(0), x_test, store.meta["num_classes"], sums, unit)
            refits = _fold(everything, refit_k, p, work, device, cb, until)
        # plus the epochs earlier processes trained (resumed from their checkpoints); fold k, then the refit
        trained = [*(r[0] for r in results.values()), *(refits[:1] if p.refit else [])]
        seconds = time.perf_counter() - started
        seconds += sum(e["seconds"] for k, r in enumerate(trained) for e in r.history[: resumed.get(k, 0)])
        for g, (m, run_id, key) in enumerate(zip(members, run_ids, keys)):
            # another `kit train` may have landed a run under this name meanwhile: never replace it
            # unasked (the error keeps the work folder: a re-run with --name lands from its checkpoints)
            if done[g] is None and _existing(runs_dir / run_id, key, force) is None:
                fill = partial(
                    _fill,
                    run_id=run_id,
                    p=m,
                    params=params[g],
                    key=key,
                    store=store,
                    split=split,
                    results={k: r[g] for k, r in results.items()},
                    refit=refits[g],
                    voice=heads,
                    labels=labels,
                    device=device,
                    seconds=seconds,
                    stack_seeds=stack_seeds,
                )
                registry.write(runs_dir, run_id, fill, replace=force)
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        work.parent.rmdir()  # only when no other run is in progress
    kept = tuple(run.id for run in done if run is not None)
    runs = [registry.read_run(runs_dir / run_id) for run_id in run_ids]
    return Outcome(runs, True, resumed, kept=kept, refit_fold=len(split.folds) if p.refit else None)


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


def _hashed(params: dict) -> dict:
    out = {
        k: v
        for k, v in params.items()
        if k not in NOT_HASHED and not (k in UNHASHED_DEFAULTS and v == UNHASHED_DEFAULTS[k])
    }
    if out.get("voice", {}).get("weight") == 0:  # no voice head: as runs before it existed
        del out["voice"]
    if out.get("refit"):  # the refit runs the holdout's whole schedule (it once stopped at the best epoch)
        out["refit"] = "schedule"
    return out


def _run_id(p: TrainParams, key: str, name: str | None, stack: int) -> str:
    if name:
        return name if stack == 1 else f"{name}-s{p.seed}"
    return f"{p.arch.replace(':', '-').replace('/', '-')}-s{p.seed}-{key[:8]}"


def _existing(path: Path, key: str, force: bool) -> registry.Run | None:
    """The run at `path` when it was trained with these params; None when it is to be trained."""
    if not path.exists() or force:
        return None
    try:
        run = registry.read_run(path)
    except KitError as exc:
        why = str(exc).split(": ", 1)[-1]
        raise KitError(f"run folder {path.name} is broken ({why}): pass --force to replace it, or --name") from None
    if run.meta.get("key") == key:
        return run
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


def _fold(
    fold: Fold, k: int, p: TrainParams, work: Path, device, cb: Callbacks, until: int | None = None
) -> list[FoldResult]:
    """Train fold k (each member of the stack), or load it when an earlier process finished it.
    until: the refit's epoch count (the fold after the split's, on every train clip)."""
    from safetensors.torch import load_file, save_file

    from kit.atomic import atomic_dir

    done = work / f"fold{k}.done"
    names = [member_key("", g) for g in range(p.stack)]  # member 0: as a single run's
    if (done / "result.json").exists():
        results = []
        for sfx in names:
            meta = json.loads((done / f"result{sfx}.json").read_text())
            arrays = np.load(done / f"probs{sfx}.npz")
            results.append(
                FoldResult(
                    meta["best_epoch"],
                    meta["best_score"],
                    arrays["val"],
                    arrays["test"] if "test" in arrays else None,
                    load_file(done / f"weights{sfx}.safetensors"),
                    meta["history"],
                    meta["epochs_run"],
                )
            )
        return results
    results = fit_fold(
        fold,
        p,
        p.arch,
        [(p.seed + g) * 1000 + k for g in range(p.stack)],  # each member's seed as its single run's
        device,
        work / f"fold{k}",
        cb.batch,
        (lambda r: cb.epoch(k, r)) if cb.epoch else None,
        until,
    )
    with atomic_dir(done) as tmp:
        for sfx, result in zip(names, results):
            save_file({n: t.contiguous() for n, t in result.weights.items()}, tmp / f"weights{sfx}.safetensors")
            np.savez(
                tmp / f"probs{sfx}.npz",
                val=result.val_probs,
                **({"test": result.test_probs} if result.test_probs is not None else {}),
            )
            (tmp / f"result{sfx}.json").write_text(
                json.dumps(
                    {
                        "best_epoch": result.best_epoch,
                        "best_score": result.best_score,
                        "history": result.history,
                        "epochs_run": result.epochs_run,
                    }
                )
            )
    shutil.rmtree(work / f"fold{k}", ignore_errors=True)
    return results


def _fill(
    tmp: Path,
    *,
    run_id: str,
    p: TrainParams,
    params: dict,
    key: str,
    store: FeatureStore,
    split: Split,
    results: dict[int, FoldResult],
    refit: FoldResult | None,
    voice: VoiceHeads | None,
    labels: np.ndarray,
    device,
    seconds: float,
    stack_seeds: list[int] | None,
) -> None:
    from safetensors.torch import save_file

    val_index = split.val_index()
    val_probs = _val_probs(split, {k: r.val_probs for k, r in results.items()}, len(labels), store)
    test_probs = {k: r.test_probs for k, r in results.items() if r.test_probs is not None}
    if refit is not None:
        test_probs = {"refit": refit.test_probs} if refit.test_probs is not None else {}
    summary = None
    if voice is not None:
        w = p.voice.weight
        summary = {
            "weight": w,
            "c": {str(k): h.c for k, h in voice.heads.items()},
            "network": scores(val_probs, labels[val_index]),
            "head": scores(voice.val, labels[val_index]),
        }
        val_probs = voice_head.blend(val_probs, voice.val, w)
        test_probs = {k: voice_head.blend(t, voice.test[k], w) for k, t in test_probs.items()}
        voice_head.save({str(k): h for k, h in voice.heads.items()}, tmp / voice_head.FILE)
    for k, r in results.items():
        save_file(
            {n: t.contiguous() for n, t in r.weights.items()},
            tmp / (f"fold{k}.safetensors" if split.kfold else "model.safetensors"),
        )
    np.save(tmp / "val_probs.npy", val_probs.astype(np.float32))
    np.save(tmp / "val_index.npy", val_index.astype(np.int64))
    if refit is not None:
        save_file({n: t.contiguous() for n, t in refit.weights.items()}, tmp / "refit.safetensors")
    if test_probs:
        np.save(tmp / "test_probs.npy", np.mean(list(test_probs.values()), axis=0).astype(np.float32))
    y_val = labels[val_index]
    metrics = scores(val_probs, y_val)
    _dvclive(tmp / "dvclive", results, refit, metrics, split.kfold)
    meta = {
        "id": run_id,
        "key": key,
        "arch": p.arch,
        "seed": p.seed,
        "params": params,
        "split_id": split.id,
        "split": dataclasses.asdict(p.split),
        "feature_hash": store.feature_hash,
        "features": str(store.path),
        "num_classes": store.meta["num_classes"],
        "classes": store.meta["classes"],
        "metrics": metrics,
        "confusion": confusion(y_val, val_probs.argmax(1), store.meta["num_classes"]).tolist(),
        "best_epoch": [r.best_epoch for r in results.values()],
        "epochs_run": [r.epochs_run for r in results.values()],
        "folds": [{"best_epoch": r.best_epoch, "best_score": r.best_score} for r in results.values()],
        **({"stack_seeds": stack_seeds} if stack_seeds else {}),  # trained together, as one model
        **({"refit": {"epochs": refit.epochs_run, "clips": len(labels)}} if refit is not None else {}),
        **({"voice": summary} if summary else {}),
        "wall_seconds": round(seconds, 2),
        "device": _device_name(device, p.precision),
        "git": _git(),
        "kit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / registry.RUN_JSON).write_text(json.dumps(meta, indent=1))


def _val_probs(split: Split, by_fold: dict[int, np.ndarray], n: int, store: FeatureStore) -> np.ndarray:
    """Validation probabilities in val_index order: the holdout's, or K-fold's out-of-fold rows."""
    if not split.kfold:
        return by_fold[0]
    out = np.zeros((n, store.meta["num_classes"]), np.float32)
    for k, (_, v) in enumerate(split.folds):
        out[v] = by_fold[k]
    return out


def _voice(p: TrainParams, store: FeatureStore) -> np.ndarray | None:
    """The train clips' voice embeddings when train.voice is on (checked before any training)."""
    if p.voice.weight == 0:
        return None
    v = store.voice("train")
    if v is None:
        raise KitError(
            f"train.voice.weight is {p.voice.weight} but {store.path} has no voice embeddings: rebuild it with "
            "features.voice.embed: true (audio only), or set train.voice.weight: 0"
        )
    return v


@dataclass(frozen=True)
class VoiceHeads:
    heads: dict  # fold k, and "refit": the VoiceHead fitted on that model's training clips
    val: np.ndarray  # the heads' validation probabilities, in val_index order
    test: dict  # fold k / "refit" -> that head's test probabilities (empty without test clips)


def _voice_heads(p: TrainParams, v: np.ndarray, store: FeatureStore, split: Split, labels: np.ndarray) -> VoiceHeads:
    """train.voice: a head per fold on that fold's training clips, and "refit" on every train clip,
    with their predictions (computed once for every member of a stack)."""
    groups = store.meta["splits"]["train"].get("groups") if p.split.grouped else None
    if groups is not None:  # as the split codes them: clips without a group share the group "None"
        groups = np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
    n = store.meta["num_classes"]

    def fit(rows: np.ndarray, fold: str):
        if len(np.unique(labels[rows])) < 2:
            raise KitError(f"train.voice: the training clips of {fold} hold one class only; set train.voice.weight: 0")
        return voice_head.fit(v[rows], labels[rows], n, p.voice.c, None if groups is None else groups[rows])

    heads = {k: fit(t, f"fold {k}") for k, (t, _) in enumerate(split.folds)}
    if p.refit:
        heads["refit"] = fit(np.arange(len(labels)), "the refit")
    val = _val_probs(split, {k: heads[k].predict(v[val]) for k, (_, val) in enumerate(split.folds)}, len(labels), store)
    v_test = store.voice("test") if "test" in store.splits else None
    test = {k: h.predict(v_test) for k, h in heads.items()} if v_test is not None else {}
    return VoiceHeads(heads, val, test)


def _dvclive(
    folder: Path, results: dict[int, FoldResult], refit: FoldResult | None, metrics: dict, kfold: bool
) -> None:
    """Per-epoch history (DVCLive's metrics.json + plots/metrics/*.tsv), replayed from the folds
    (and the refit's, under refit/); each series' step is the epoch."""
    from dvclive import Live

    prefixes = [f"fold{k}/" if kfold else "" for k in results]
    with Live(dir=str(folder), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        for prefix, r in zip([*prefixes, "refit/"], [*results.values(), *([refit] if refit else [])]):
            for record in r.history:
                live.step = record["epoch"]
                for name, value in record.items():
                    if name not in ("epoch", "seconds"):
                        live.log_metric(prefix + name, value, plot=True)
        for name, value in metrics.items():
            live.summary[name] = value


def _resume_points(work: Path, folds: int) -> dict[int, int]:
    from kit.training import checkpoint

    out = {}
    for k in range(folds):
        if (work / f"fold{k}.done" / "result.json").exists():
            out[k] = json.loads((work / f"fold{k}.done" / "result.json").read_text())["epochs_run"]
        elif (last := checkpoint.epoch(work / f"fold{k}")) is not None:
            out[k] = last + 1
    return out


@contextlib.contextmanager
def _lock(work: Path) -> Iterator[None]:
    work.mkdir(parents=True, exist_ok=True)
    fh = open(work / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise KitError(f"another `kit train` with the same arguments is running ({work}); wait for it") from None
    try:
        yield
    finally:
        fh.close()


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KitError(f"train.device: {name} requested but CUDA is not available")
    return dev


def _device_name(device, precision: str) -> str:
    """e.g. "cpu (2 threads, bf16)": where the run trained, and in what precision."""
    import torch

    amp = "bf16" if autocast_dtype(precision, device) is not None else "fp32"
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, {amp})"
    return f"cpu ({torch.get_num_threads()} threads, {amp})"


def _git() -> dict | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": dirty}


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
