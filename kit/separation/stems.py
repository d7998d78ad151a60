"""`kit separate`: a vocal stem per clip, cached and written atomically like the feature store.

    data/stems/meta.json                  backend, its params, sr, duration, stems hash, ids
    data/stems/{train,test}/<id>.vocals.flac          (16-bit, the front-end's rate)
    data/stems/{train,test}/<id>.accompaniment.flac   (with separate.accompaniment)

A re-run with the same clips and params finds the stems hash in meta.json and does nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit import __version__
from kit.atomic import atomic_dir
from kit.data.fingerprint import dataset_fingerprint, digest
from kit.data.layout import Dataset
from kit.errors import KitError
from kit.params import SeparateParams

META = "meta.json"
STEMS_VERSION = 1
STEMS = ("vocals", "accompaniment")


@dataclass(frozen=True)
class Job:
    """One clip to separate: read `src`, write each requested stem to `outs[stem]`."""

    src: Path
    outs: dict[str, Path]


@dataclass(frozen=True)
class Plan:
    dataset: Dataset
    params: SeparateParams
    sr: int
    duration: float
    out: Path
    backend: object
    config: dict
    stems_hash: str

    @property
    def clips(self) -> int:
        return sum(len(c) for c in self.dataset.splits.values())

    @property
    def up_to_date(self) -> bool:
        meta = read_meta(self.out)
        return meta is not None and meta.get("stems_hash") == self.stems_hash and _complete(self.out, meta)


def stem_path(root: Path, split: str, clip_id: str, stem: str = "vocals") -> Path:
    return Path(root) / split / f"{clip_id}.{stem}.flac"


def read_meta(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / META).read_text())
    except (OSError, ValueError):
        return None


def plan(dataset: Dataset, params: SeparateParams, sr: int, duration: float, out: Path) -> Plan:
    """Check the dataset and the backend (weights, environment), hash what the stems depend on."""
    from kit.separation.backends import make_backend

    dataset.require_clean()
    if dataset.modality != "audio":
        raise KitError(f"separate: {dataset.root} holds images, not audio: set separate.backend to none")
    if params.backend == "none":
        raise KitError("separate.backend is none: there is nothing to separate (features.input must be mix)")
    dataset.check_out(Path(out), META, "a stems folder")
    backend = make_backend(params, sr, duration)
    fingerprint = dataset_fingerprint(dataset, workers(params))
    config = {
        "version": STEMS_VERSION,
        "backend": backend.describe(),
        "sr": sr,
        "duration": duration,
        "stems": list(_stems(params)),
    }
    stems_hash = digest({"config": config, "data": fingerprint})[:16]
    config["source"] = {"root": str(dataset.root), "fingerprint": digest(fingerprint)}
    return Plan(dataset, params, sr, duration, Path(out), backend, config, stems_hash)


def build(p: Plan, progress: Callable[[int], None] | None = None) -> float:
    """Separate every clip into a temp folder, then rename it into place. Returns seconds."""
    started = time.perf_counter()
    with atomic_dir(p.out) as tmp:
        jobs = []
        for split, items in p.dataset.splits.items():
            (tmp / split).mkdir()
            jobs += [Job(c.path, {s: stem_path(tmp, split, c.id, s) for s in _stems(p.params)}) for c in items]
        p.backend.run(jobs, workers(p.params), progress)
        missing = [str(j.src) for j in jobs if not all(o.exists() for o in j.outs.values())]
        if missing:
            raise KitError(f"{p.params.backend} wrote no stem for {len(missing)} clip(s), e.g. {missing[0]}")
        meta = {
            "kit_version": __version__,
            "stems_hash": p.stems_hash,
            **p.config,
            "splits": {split: [c.id for c in items] for split, items in p.dataset.splits.items()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return time.perf_counter() - started


def write_none(out: Path) -> None:
    """backend none: a stems folder that says so (the pipeline's separate stage always has an output)."""
    meta = read_meta(out)
    if meta is not None and meta["backend"]["name"] == "none":
        return
    with atomic_dir(out) as tmp:
        meta = {
            "kit_version": __version__,
            "stems_hash": "none",
            "backend": {"name": "none"},
            "stems": [],
            "splits": {},
        }
        (tmp / META).write_text(json.dumps(meta, indent=1))


def write_stem(path: Path, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    sf.write(path, np.clip(y, -1.0, 1.0), sr, subtype="PCM_16", format="FLAC")


def workers(params: SeparateParams) -> int:
    return params.workers or os.cpu_count() or 1


def _stems(params: SeparateParams) -> tuple[str, ...]:
    return STEMS if params.accompaniment else STEMS[:1]


def _complete(root: Path, meta: dict) -> bool:
    return all(
        stem_path(root, split, i, s).exists()
        for split, ids in meta["splits"].items()
        for i in ids
        for s in meta["stems"]
    )
