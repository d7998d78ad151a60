"""The voice head of a run (train.voice): one logistic regression per model on its training clips'
voice embeddings, with their predictions (computed once for every member of a pack)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.metrics import scores
from kit.params import TrainParams
from kit.training import voice_head
from kit.training.splits import Split, group_codes, val_order

PARTS = "voice_parts.npz"  # a run's network and head probabilities before the blend (val; test when any)


def embeddings(p: TrainParams, store: FeatureStore) -> np.ndarray | None:
    """The train clips' voice embeddings when train.voice is on (checked before any training);
    None when it is off, or auto and the store has none (images, features.voice.embed false)."""
    if p.voice.weight == 0:
        return None
    v = store.voice("train")
    if v is None and p.voice.weight == "auto":
        return None
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


def fit_heads(p: TrainParams, v: np.ndarray, store: FeatureStore, split: Split, labels: np.ndarray) -> VoiceHeads:
    """train.voice: a head per fold on that fold's training clips, and "refit" on every train clip,
    with their predictions (computed once for every member of a pack)."""
    groups = None if split.groups is None else group_codes(split.groups)
    n = store.meta["num_classes"]

    def fit(rows: np.ndarray, fold: str):
        if len(np.unique(labels[rows])) < 2:
            raise KitError(f"train.voice: the training clips of {fold} hold one class only; set train.voice.weight: 0")
        return voice_head.fit(v[rows], labels[rows], n, p.voice.c, None if groups is None else groups[rows])

    heads = {k: fit(t, f"fold {k}") for k, (t, _) in enumerate(split.folds)}
    if p.refit:
        heads["refit"] = fit(np.arange(len(labels)), "the refit")
    val = val_order(
        split,
        {k: heads[k].predict(v[val]) for k, (_, val) in enumerate(split.folds)},
        store.meta["num_classes"],
    )
    v_test = store.voice("test") if "test" in store.splits else None
    test = {k: h.predict(v_test) for k, h in heads.items()} if v_test is not None else {}
    return VoiceHeads(heads, val, test)


def blend_in(
    p: TrainParams, voice: VoiceHeads, val_probs: np.ndarray, test_probs: dict, y_val: np.ndarray, folder: Path
) -> tuple[np.ndarray, dict, dict]:
    """The run's validation and test probabilities with its heads blended in at train.voice.weight
    (auto: chosen on the validation rows, see voice_head.choose_weight), the run.json summary
    (the weight used; auto: each candidate's validation log-loss), and both parts and the heads
    saved in `folder`."""
    auto = p.voice.weight == "auto"
    w, losses = voice_head.choose_weight(val_probs, voice.val, y_val) if auto else (float(p.voice.weight), None)
    summary = {
        "weight": w,
        **({"auto": losses} if auto else {}),
        "c": {str(k): h.c for k, h in voice.heads.items()},
        "network": scores(val_probs, y_val),
        "head": scores(voice.val, y_val),
    }
    parts = {"network_val": val_probs, "head_val": voice.val}
    if test_probs:
        parts["network_test"] = np.mean(list(test_probs.values()), axis=0)
        parts["head_test"] = np.mean([voice.test[k] for k in test_probs], axis=0)
    np.savez(folder / PARTS, **parts)
    voice_head.save({str(k): h for k, h in voice.heads.items()}, folder / voice_head.FILE)
    blended = {k: voice_head.blend(t, voice.test[k], w) for k, t in test_probs.items()}
    return voice_head.blend(val_probs, voice.val, w), blended, summary
