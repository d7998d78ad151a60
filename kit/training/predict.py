"""Re-predict with a run's weights, optionally with test-time augmentation (circular time shifts).

`kit predict RUN --tta N` averages the softmax over N copies of every clip rolled by 0, 1/N, ...
(N-1)/N of its length and registers the result as a new run `<run>-tta<N>` (same split and
feature hash, so ensembles can combine it), its metrics recomputed on the validation rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from kit.device import autocast_dtype
from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.metrics import confusion, scores
from kit.models import create_model
from kit.params import TrainParams
from kit.params.identity import recorded
from kit.registry import runs as registry
from kit.training import voice_head
from kit.training.model import TIME_DIM, Standardised, predict


def tta_run(run: registry.Run, store: FeatureStore, shifts: int, device: torch.device) -> Path:
    """Register `<run>-tta<shifts>` with time-shift-averaged validation and test probabilities."""
    if shifts < 1:
        raise KitError(f"--tta must be ≥ 1, got {shifts}")
    meta = run.meta
    if store.feature_hash != meta["feature_hash"]:
        raise KitError(
            f"feature store {store.path} has hash {store.feature_hash}, run {run.id} used {meta['feature_hash']}"
        )
    by_fold = sorted(run.path.glob("fold*.safetensors"), key=lambda p: int(p.stem.removeprefix("fold")))  # 9 before 10
    weights = by_fold or [run.path / "model.safetensors"]
    channels = meta["params"].get("channels")  # the store's channels the run was trained on
    x = torch.from_numpy(store.model_input("train", channels)).to(device)  # (N, C, freq, time)
    has_test = "test" in store.splits
    x_test = torch.from_numpy(store.model_input("test", channels)).to(device) if has_test else None
    val_index = np.load(run.path / "val_index.npy")
    folds = _fold_rows(run, store, len(weights))
    val_probs = np.zeros((len(val_index), meta["num_classes"]), np.float32)
    refit = run.path / "refit.safetensors"  # trained on every train clip: it alone predicts the test clips
    test_models = ([refit] if refit.exists() else weights) if has_test else []
    models = {path: _load(path, meta, x.shape[1], device) for path in {*weights, *test_models}}  # each once
    for path, (rows, slots) in zip(weights, folds):
        val_probs[slots] = _tta(models[path], x, rows, shifts, device, meta)
    test_probs = sum(_tta(models[p], x_test, np.arange(len(x_test)), shifts, device, meta) for p in test_models)
    test_probs = test_probs / len(test_models) if test_models else None
    y = store.labels("train")[val_index]
    voice = None
    if (run.path / voice_head.FILE).exists():  # the run's voice head blends in as it did in training
        voice = {**meta["voice"], "network": scores(val_probs, y)}
        val_probs, test_probs = _with_voice(run, store, folds, val_probs, test_probs, refit.exists())
    new = {
        **meta,
        "id": f"{run.id}-tta{shifts}",
        "tta": {"source": run.id, "time_shifts": shifts},
        "metrics": scores(val_probs, y),
        "confusion": confusion(y, val_probs.argmax(1), meta["num_classes"]).tolist(),
        **({"voice": voice} if voice else {}),
    }

    def fill(tmp: Path) -> None:
        for p in [*models, *([run.path / voice_head.FILE] if voice else [])]:
            shutil.copy2(p, tmp / p.name)
        np.save(tmp / "val_probs.npy", val_probs)
        np.save(tmp / "val_index.npy", val_index)
        if test_probs is not None:
            np.save(tmp / "test_probs.npy", test_probs)
        (tmp / registry.RUN_JSON).write_text(json.dumps(new, indent=1))

    return registry.write(run.path.parent, new["id"], fill)


def _with_voice(run: registry.Run, store: FeatureStore, folds: list, val_probs, test_probs, refit: bool):
    """Blend the run's saved voice heads into re-predicted probabilities: each fold's head on its
    validation rows; the refit's head (else the folds' mean) on the test clips."""
    heads = voice_head.load(run.path / voice_head.FILE)
    weight = run.meta["voice"]["weight"]
    v = store.voice("train")
    for k, (rows, slots) in enumerate(folds):
        val_probs[slots] = voice_head.blend(val_probs[slots], heads[str(k)].predict(v[rows]), weight)
    if test_probs is not None:
        v_test = store.voice("test")
        test_heads = [heads["refit"]] if refit else [heads[str(k)] for k in range(len(folds))]
        head = np.mean([h.predict(v_test) for h in test_heads], axis=0)
        test_probs = voice_head.blend(test_probs, head, weight)
    return val_probs, test_probs


def _fold_rows(run: registry.Run, store: FeatureStore, n_models: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows to predict, rows of val_probs they fill) for each weights file.

    K-fold: each fold's model predicts its own validation fold, rebuilt from the split params."""
    if n_models == 1:
        idx = np.load(run.path / "val_index.npy")
        return [(idx, np.arange(len(idx)))]
    from kit.params import SplitParams
    from kit.training.splits import make_split, store_groups

    split_params = SplitParams(**run.meta["split"])
    groups = store_groups(split_params, store)
    split = make_split(store.labels("train"), split_params, groups)
    if split.id != run.meta["split_id"]:
        raise KitError(
            f"run {run.id}: its K-fold split cannot be rebuilt (got {split.id}, expected {run.meta['split_id']})"
        )
    index = split.val_index()
    return [(v, np.searchsorted(index, v)) for _, v in split.folds]


def _load(path: Path, meta: dict, in_chans: int, device: torch.device):
    params = meta["params"]
    net = create_model(
        meta["arch"],
        num_classes=meta["num_classes"],
        in_chans=in_chans,
        drop_rate=params["drop_rate"],
        stem=recorded(TrainParams, "stem", params["stem"]),  # earlier versions' "seed" is "stride1"
    )
    state = load_file(path)
    model = Standardised(net, state["mean"], state["std"])
    model.load_state_dict(state)
    return model.to(device, memory_format=torch.channels_last)


def _tta(model, x, idx: np.ndarray, shifts: int, device, meta: dict) -> np.ndarray:
    size = x.shape[TIME_DIM]
    batch = meta["params"].get("eval_batch_size", 256)
    amp = autocast_dtype(meta["params"].get("precision", "auto"), device)
    out = np.zeros((len(idx), meta["num_classes"]), np.float32)
    for k in range(shifts):
        rolled = torch.roll(x, shifts=round(k * size / shifts), dims=TIME_DIM)
        out += predict(model, rolled, idx, device, batch, amp) / shifts
    return out
