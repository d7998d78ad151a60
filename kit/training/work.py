"""A training's work folder, artifacts/work/<key>/: each fold's checkpoints while it trains, its
results once done (a re-run loads them instead of training again), and the lock that keeps two
processes of the same run apart."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kit.errors import KitError
from kit.params import TrainParams
from kit.training import checkpoint
from kit.training.fold import Fold, FoldResult
from kit.training.loop import fit_fold
from kit.training.model import member_key


def train_fold(
    fold: Fold, k: int, p: TrainParams, work: Path, device, cb: Any, until: int | None = None
) -> list[FoldResult]:
    """Train fold k (each member of the pack), or load it when an earlier process finished it.
    until: the refit's epoch count (the fold after the split's, on every train clip)."""
    from safetensors.torch import load_file, save_file

    from kit.atomic import atomic_dir

    done = work / f"fold{k}.done"
    names = [member_key("", g) for g in range(p.pack)]  # member 0: as a single run's
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
        [(p.seed + g) * 1000 + k for g in range(p.pack)],  # each member's seed as its single run's
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


def resume_points(work: Path, folds: int) -> dict[int, int]:
    out = {}
    for k in range(folds):
        if (work / f"fold{k}.done" / "result.json").exists():
            out[k] = json.loads((work / f"fold{k}.done" / "result.json").read_text())["epochs_run"]
        elif (last := checkpoint.epoch(work / f"fold{k}")) is not None:
            out[k] = last + 1
    return out


@contextlib.contextmanager
def lock(work: Path) -> Iterator[None]:
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
