"""The feature store: one float16 (N, C, *shape) array per split + meta.json.

Layout of a store folder::

    train.npy   float16, memory-mappable (np.load(mmap_mode="r"))
    test.npy
    train.voice.npy  float32 (N, inputs, 256): each input's voice embedding (features.voice.embed)
    test.voice.npy
    meta.json   ids, labels, groups, classes, front-end params, feature hash, silenced clips

Training reads this, never the audio. The store is written to a temp folder and renamed,
so it exists whole or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kit.atomic import atomic_dir, version
from kit.errors import InputError, KitError

META = "meta.json"


@dataclass(frozen=True)
class FeatureStore:
    """One version of a store, whole: its meta.json and its arrays (memory-mapped when opened, so a
    `kit features` replacing the folder meanwhile changes nothing a reader holds)."""

    path: Path
    meta: dict
    arrays: dict = field(default_factory=dict, repr=False, compare=False)  # file name -> memory map

    @classmethod
    def open(cls, path: str | Path) -> FeatureStore:
        path = Path(path)
        for _ in range(10):
            landed = version(path)
            store = cls._read(path)
            if version(path) == landed:
                return store
        raise KitError(f"{path} is being rewritten over and over by another command: rerun when it is done")

    @classmethod
    def _read(cls, path: Path) -> FeatureStore:
        meta_path = path / META
        if not meta_path.exists():
            raise KitError(f"{path}: no feature store here (run `kit features --out {path}`)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise KitError(f"{meta_path} line {exc.lineno}: corrupt JSON ({exc.msg})") from None
        _check_meta(meta, meta_path)
        arrays = {}
        for split, info in meta["splits"].items():
            shapes = {f"{split}.npy": (info["count"], *meta["shape"])}
            if "voice" in meta:
                shapes[f"{split}.voice.npy"] = (info["count"], len(meta["voice"]["inputs"]), meta["voice"]["dim"])
            for name, shape in shapes.items():
                _check_array(path / name, shape)
                arrays[name] = np.load(path / name, mmap_mode="r")
        return cls(path, meta, arrays)

    @property
    def feature_hash(self) -> str:
        return self.meta["feature_hash"]

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    def array(self, split: str) -> np.ndarray:
        """(N, C, *shape) float16, memory-mapped read-only."""
        return self.arrays[f"{split}.npy"]

    def voice(self, split: str, flat: bool = True) -> np.ndarray | None:
        """The split's voice embeddings, (N, inputs * 256) float32 side by side (flat=False: (N, inputs, 256));
        None when the store has none."""
        if "voice" not in self.meta:
            return None
        v = np.array(self.arrays[f"{split}.voice.npy"])
        return v.reshape(len(v), -1) if flat else v

    def model_input(self, split: str, channels: list[str] | None = None) -> np.ndarray:
        """The split in memory as models take it, (N, C, freq, time): time-first stores are transposed.
        `channels` (names from meta.json) picks some, in that order; None or [] = all."""
        x = self.array(split)
        if channels:
            have = self.channels()
            x = x[:, [have.index(c) for c in self.channels(channels)]]  # fancy indexing: in memory
        else:
            x = np.array(x)
        return np.ascontiguousarray(x.swapaxes(2, 3)) if self.meta["axes"][1] == "time" else x

    def channels(self, names: list[str] | None = None) -> list[str]:
        """The store's channel names, or `names` checked against them (each once); None or [] = all."""
        have = self.meta.get("channels", [])
        if not names:
            return have
        if not have:
            raise KitError(f"{self.path / META} names no channels (rebuild it with `kit features`)")
        unknown = [c for c in names if c not in have]
        if unknown:
            raise KitError(f"{unknown[0]} is not a channel of {self.path} (it has {', '.join(have)})")
        if len(set(names)) < len(names):
            raise KitError(f"a channel is named twice in {', '.join(names)}")
        return list(names)

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


# the keys kit reads from a store's meta.json, and their JSON types: of the store, of each split
META_KEYS = {"feature_hash": str, "shape": list, "axes": list, "num_classes": int, "classes": list, "frontend": dict}
SPLIT_KEYS = {"count": int, "ids": list, "labels": (list, type(None))}


def _check_meta(meta, meta_path: Path) -> None:
    """Every key kit reads, of its type: a damaged or hand-edited meta.json is refused naming the key."""

    def need(where: dict, key: str, kind, name: str) -> None:
        if key not in where:
            problem = "missing"
        elif isinstance(where[key], kind) and not isinstance(where[key], bool):
            return
        else:
            problem = f"a {type(where[key]).__name__}, not {getattr(kind, '__name__', 'a list or null')}"
        raise InputError(f"{meta_path}: key {name} is {problem}; rebuild with `kit features --force`")

    need({"meta.json": meta}, "meta.json", dict, "(the whole file)")
    for key, kind in {**META_KEYS, "splits": dict}.items():
        need(meta, key, kind, key)
    for split, info in meta["splits"].items():
        need(meta["splits"], split, dict, f"splits.{split}")
        for key, kind in SPLIT_KEYS.items():
            need(info, key, kind, f"splits.{split}.{key}")
    if "voice" in meta:
        need(meta, "voice", dict, "voice")
        need(meta["voice"], "inputs", list, "voice.inputs")
        need(meta["voice"], "dim", int, "voice.dim")


def _check_array(path: Path, shape: tuple) -> None:
    """The .npy file exists, has the shape meta.json says, and is as long as its header says."""
    if not path.exists():
        raise KitError(f"{path}: missing; rebuild with `kit features --force`")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            found, _, dtype = read(fh)
            expected_size = fh.tell() + int(np.prod(found)) * dtype.itemsize
    except (ValueError, OSError) as exc:
        raise KitError(f"{path} is damaged ({exc}); rebuild with `kit features --force`") from None
    if tuple(found) != tuple(shape) or path.stat().st_size != expected_size:
        raise KitError(
            f"{path} is damaged (shape {found}, {path.stat().st_size} bytes; meta.json says {shape}); "
            "rebuild with `kit features --force`"
        )


def subset(store: FeatureStore, out: Path, rows: dict[str, np.ndarray], source: str = "train") -> FeatureStore:
    """A new store at `out` whose splits are rows of `store`'s split `source`, e.g. {"train": a,
    "test": b}: a re-split of one set of clips without extracting again (singer-disjoint folds).
    Only the train split keeps labels and groups, as in a contest; the feature hash is the parent's
    with the rows, so runs on two subsets never compare."""
    import hashlib

    info = store.meta["splits"][source]
    digest = hashlib.sha256(store.feature_hash.encode())
    for name, r in rows.items():
        digest.update(name.encode() + np.asarray(r, np.int64).tobytes())
    meta = {**store.meta, "feature_hash": digest.hexdigest()[:16], "subset_of": store.feature_hash, "splits": {}}
    with atomic_dir(Path(out)) as tmp:
        for name, r in rows.items():
            r = np.asarray(r, np.int64)
            np.save(tmp / f"{name}.npy", store.array(source)[r])
            if "voice" in store.meta:
                np.save(tmp / f"{name}.voice.npy", store.voice(source, flat=False)[r])
            keep = name == "train"
            meta["splits"][name] = {
                **info,
                "file": f"{name}.npy",
                "count": len(r),
                "ids": [info["ids"][i] for i in r],
                "labels": [info["labels"][i] for i in r] if keep and info.get("labels") else None,
                "groups": [info["groups"][i] for i in r] if keep and info.get("groups") else None,
            }
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return FeatureStore.open(out)
