"""Tiny, learnable feature stores in kit's format, for training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def tiny_store(
    path: Path,
    n: int = 60,
    n_test: int = 12,
    classes: int = 3,
    shape=(32, 40),
    seed: int = 0,
    groups: bool = False,
    time_first: bool = False,
    log: str | None = None,
    voice: bool = False,
) -> Path:
    """Class k lights up frequency band k (plus noise): a model can learn it in a few epochs.

    time_first stores (time, freq) examples, as the fbank front-end does; `log` ("db" / "ln")
    marks them as log powers, as the audio front-ends do. `voice` adds 8-d voice embeddings,
    their own noisy copy of the class (`add_voice`)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % classes
    rng.shuffle(labels)

    def make(lab):
        x = rng.normal(0, 1, (len(lab), 1, *shape)).astype(np.float32)
        band = shape[0] // classes
        for i, k in enumerate(lab):
            x[i, 0, k * band : (k + 1) * band] += 2.0
        return x.astype(np.float16)

    def stored(x):
        return np.ascontiguousarray(x.transpose(0, 1, 3, 2)) if time_first else x

    np.save(path / "train.npy", stored(make(labels)))
    np.save(path / "test.npy", stored(make(rng.integers(0, classes, n_test))))
    meta = {
        "feature_hash": f"tiny{seed:04d}abcdef12",
        "frontend": {"name": "tiny", "log": log},
        "classes": [str(k) for k in range(classes)],
        "num_classes": classes,
        "shape": [1, *(shape[::-1] if time_first else shape)],
        "axes": ["channel", "time", "freq"] if time_first else ["channel", "freq", "time"],
        "splits": {
            "train": {
                "file": "train.npy",
                "count": n,
                "ids": [str(i) for i in range(n)],
                "labels": labels.tolist(),
                "groups": [f"g{i // 4}" for i in range(n)] if groups else None,
            },
            "test": {"file": "test.npy", "count": n_test, "ids": [str(i) for i in range(n_test)], "labels": None},
        },
    }
    (path / "meta.json").write_text(json.dumps(meta))
    return add_voice(path, seed) if voice else path


def add_voice(path: Path, seed: int = 0, dim: int = 8, signal: float = 3.0) -> Path:
    """Voice embeddings (N, 1, dim) beside a store's spectrograms: class k shifts dimension k by `signal`."""
    rng = np.random.default_rng(seed + 100)
    meta = json.loads((path / "meta.json").read_text())
    for split, info in meta["splits"].items():
        v = rng.normal(0, 1, (info["count"], 1, dim)).astype(np.float32)
        if info["labels"] is not None:
            v[np.arange(info["count"]), 0, info["labels"]] += signal
        np.save(path / f"{split}.voice.npy", v)
    meta["voice"] = {"inputs": ["mix"], "dim": dim}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def add_noise_channel(path: Path, seed: int = 1) -> Path:
    """Give a tiny store a second channel of pure noise: channels `signal` (learnable) and `noise`."""
    rng = np.random.default_rng(seed)
    meta = json.loads((path / "meta.json").read_text())
    for split in ("train", "test"):
        x = np.load(path / f"{split}.npy")
        np.save(path / f"{split}.npy", np.concatenate([x, rng.normal(0, 1, x.shape).astype(np.float16)], axis=1))
    meta["shape"][0], meta["channels"] = 2, ["signal", "noise"]
    (path / "meta.json").write_text(json.dumps(meta))
    return path
