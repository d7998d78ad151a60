"""The feature store: one float16 (N, C, *shape) array per split + meta.json.

Layout of a store folder::

    train.npy   float16, memory-mappable (np.load(mmap_mode="r"))
    test.npy
    meta.json   ids, labels, groups, classes, front-end params, feature hash, silenced clips

Training reads this, never the audio. The store is written to a temp folder and renamed,
so it exists whole or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.errors import KitError

META = "meta.json"


@dataclass(frozen=True)
class FeatureStore:
    path: Path
    meta: dict

    @classmethod
    def open(cls, path: str | Path) -> FeatureStore:
        path = Path(path)
        meta_path = path / META
        if not meta_path.exists():
            raise KitError(f"{path}: no feature store here (run `kit features --out {path}`)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise KitError(f"{meta_path} line {exc.lineno}: corrupt JSON ({exc.msg})") from None
        for split in meta.get("splits", {}):
            if not (path / f"{split}.npy").exists():
                raise KitError(f"{path / f'{split}.npy'}: missing; rebuild with `kit features --force`")
        return cls(path, meta)

    @property
    def feature_hash(self) -> str:
        return self.meta["feature_hash"]

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    def array(self, split: str) -> np.ndarray:
        """(N, C, *shape) float16, memory-mapped read-only."""
        return np.load(self.path / f"{split}.npy", mmap_mode="r")

    def ids(self, split: str) -> list[str]:
        return self.meta["splits"][split]["ids"]

    def labels(self, split: str) -> np.ndarray | None:
        labels = self.meta["splits"][split]["labels"]
        return None if labels is None else np.asarray(labels, dtype=np.int64)


def is_current(path: Path, feature_hash: str) -> bool:
    """True when `path` holds a complete store made with exactly this feature hash."""
    try:
        return FeatureStore.open(path).feature_hash == feature_hash
    except (KitError, KeyError):
        return False
