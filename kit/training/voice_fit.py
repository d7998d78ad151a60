"""The voice head of a run (train.voice): one logistic regression per model on its training clips'
voice embeddings, with their predictions (computed once for every member of a pack)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.params import TrainParams
from kit.training import voice_head
from kit.training.splits import Split, val_order


def embeddings(p: TrainParams, store: FeatureStore) -> np.ndarray | None:
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


def fit_heads(p: TrainParams, v: np.ndarray, store: FeatureStore, split: Split, labels: np.ndarray) -> VoiceHeads:
    """train.voice: a head per fold on that fold's training clips, and "refit" on every train clip,
    with their predictions (computed once for every member of a pack)."""
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
    val = val_order(
        split,
        {k: heads[k].predict(v[val]) for k, (_, val) in enumerate(split.folds)},
        len(labels),
        store.meta["num_classes"],
    )
    v_test = store.voice("test") if "test" in store.splits else None
    test = {k: h.predict(v_test) for k, h in heads.items()} if v_test is not None else {}
    return VoiceHeads(heads, val, test)
