"""A finished run's folder: weights, predictions in validation order, DVCLive history, run.json."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import numpy as np

from kit import __version__
from kit.device import precision_name
from kit.features.store import FeatureStore
from kit.metrics import confusion, scores
from kit.params import TrainParams
from kit.registry import runs as registry
from kit.training.fold import FoldResult
from kit.training.splits import Split, val_order
from kit.training.voice_fit import VoiceHeads, blend_in


def fill(
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
    pack_seeds: list[int] | None,
) -> None:
    from safetensors.torch import save_file

    val_index = split.val_index()
    val_probs = val_order(split, {k: r.val_probs for k, r in results.items()}, store.meta["num_classes"])
    test_probs = {k: r.test_probs for k, r in results.items() if r.test_probs is not None}
    if refit is not None:
        test_probs = {"refit": refit.test_probs} if refit.test_probs is not None else {}
    summary = None
    if voice is not None:
        val_probs, test_probs, summary = blend_in(p, voice, val_probs, test_probs, labels[val_index], tmp)
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
    dvclive(tmp / "dvclive", results, refit, metrics, split.kfold)
    meta = {
        "id": run_id,
        "key": key,
        "arch": p.arch,
        "seed": p.seed,
        "params": params,
        "split_id": split.id,
        "split": dataclasses.asdict(p.split),
        **({"left_out": list(split.left_out)} if split.left_out else {}),  # per fold: clips on neither side
        "feature_hash": store.feature_hash,
        "features": str(store.path),
        "num_classes": store.meta["num_classes"],
        "classes": store.meta["classes"],
        "metrics": metrics,
        "confusion": confusion(y_val, val_probs.argmax(1), store.meta["num_classes"]).tolist(),
        "best_epoch": [r.best_epoch for r in results.values()],
        "epochs_run": [r.epochs_run for r in results.values()],
        "folds": [{"best_epoch": r.best_epoch, "best_score": r.best_score} for r in results.values()],
        **({"pack_seeds": pack_seeds} if pack_seeds else {}),  # trained together, as one model
        **({"refit": {"epochs": refit.epochs_run, "clips": len(labels)}} if refit is not None else {}),
        **({"voice": summary} if summary else {}),
        "wall_seconds": round(seconds, 2),
        "device": device_name(device, p.precision),
        "git": git(),
        "kit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / registry.RUN_JSON).write_text(json.dumps(meta, indent=1))


def dvclive(folder: Path, results: dict[int, FoldResult], refit: FoldResult | None, metrics: dict, kfold: bool) -> None:
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


def device_name(device, precision: str) -> str:
    """e.g. "cpu (2 threads, bf16)": where the run trained, and in what precision."""
    import torch

    amp = precision_name(precision, device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, {amp})"
    return f"cpu ({torch.get_num_threads()} threads, {amp})"


def git() -> dict | None:
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
