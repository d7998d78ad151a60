"""Run folders `artifacts/runs/<run_id>/` and the registry index rebuilt from them.

A run folder is written under a temp name and renamed, so every folder without a leading dot
is complete. `index.json` beside the runs folder is a cache: it is rebuilt whenever a folder
appeared, went or had its run.json replaced, and `reindex` rebuilds it on demand. A folder
whose run.json is missing or unreadable is reported as broken, never fatal.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.atomic import atomic_dir, atomic_write
from kit.errors import KitError
from kit.metrics import HIGHER_IS_BETTER

RUN_JSON = "run.json"
INDEX = "index.json"
INDEX_VERSION = 2  # bump when read_run checks more: an index an older kit wrote is then rebuilt, its runs re-checked
REQUIRED = ("run.json", "val_probs.npy", "val_index.npy")
ARRAYS = ("val_index.npy", "val_probs.npy", "test_probs.npy")  # test_probs: when the store had a test split


@dataclass(frozen=True)
class Run:
    id: str
    path: Path
    meta: dict

    @property
    def metrics(self) -> dict:
        return self.meta["metrics"]

    def score(self, metric: str) -> float:
        return self.metrics[metric]

    @property
    def inputs(self) -> str:
        """The store channels its model sees, for tables: `all`, `mix+vocals:logfreq` or the list."""
        channels = self.meta.get("params", {}).get("channels") or []
        parts = [c.split(":") for c in channels]
        if not parts:
            return "all"
        if all(len(q) == 2 for q in parts) and len({q[1] for q in parts}) == 1:
            return "+".join(q[0] for q in parts) + ":" + parts[0][1]
        return ",".join(channels)

    def summary(self) -> dict:
        """What a listing says of the run: the fields of `kit registry`'s table (and its --json)."""
        m = self.meta
        keys = (
            "arch",
            "seed",
            "split_id",
            "feature_hash",
            "metrics",
            "epochs_run",
            "wall_seconds",
            "device",
            "created",
        )
        return {
            "id": self.id,
            **{k: m.get(k) for k in keys},
            "inputs": self.inputs,
            "voice": self.voice_weight,
            "path": str(self.path),
        }

    @property
    def voice_weight(self) -> str:
        """The voice head's share of the run's probabilities, for tables: `0.35 (auto)`, `0.5`, or `-` (none)."""
        v = self.meta.get("voice")
        if not v:
            return "-"
        return f"{v['weight']:g}" + (" (auto)" if "auto" in v else "")


@dataclass(frozen=True)
class Listing:
    runs: list[Run]
    broken: list[tuple[str, str]]  # (folder name, why)


def read_run(path: Path) -> Run:
    """A complete run folder, or KitError saying what is wrong with it."""
    for name in REQUIRED:
        if not (path / name).exists():
            raise KitError(f"{path.name}: {name} missing")
    try:
        meta = json.loads((path / RUN_JSON).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KitError(f"{path.name}: run.json is corrupt ({exc})") from None
    if not isinstance(meta, dict) or "metrics" not in meta or "arch" not in meta:
        raise KitError(f"{path.name}: run.json lacks arch / metrics")
    metrics = meta["metrics"] if isinstance(meta["metrics"], dict) else {}
    lacking = [m for m in HIGHER_IS_BETTER if not isinstance(metrics.get(m), (int, float))]
    if lacking:
        raise KitError(f"{path.name}: run.json's metrics lack {', '.join(lacking)}")
    _check_arrays(path, meta.get("num_classes"))
    return Run(path.name, path, meta)


def _check_arrays(path: Path, num_classes) -> None:
    """The saved predictions' shapes and dtypes, from their headers (nothing is read into memory):
    KitError naming the file when one is damaged or does not fit the others."""
    shapes = {}
    for name in ARRAYS:
        if (path / name).exists():
            try:
                a = np.load(path / name, mmap_mode="r")
            except (OSError, ValueError, EOFError) as exc:
                raise KitError(f"{path.name}: {name} is unreadable ({str(exc).splitlines()[0]})") from None
            shapes[name] = (a.shape, a.dtype)
    index_shape, index_dtype = shapes["val_index.npy"]
    if len(index_shape) != 1 or index_dtype.kind not in "iu":
        raise KitError(
            f"{path.name}: val_index.npy is {index_dtype}{list(index_shape)}, expected one integer per validation clip"
        )
    k = num_classes if isinstance(num_classes, int) else None
    for name, rows in (("val_probs.npy", index_shape[0]), ("test_probs.npy", None)):
        if name not in shapes:
            continue
        shape, dtype = shapes[name]
        if not (len(shape) == 2 and dtype.kind == "f" and rows in (None, shape[0]) and k in (None, shape[1])):
            want = f"({rows if rows is not None else 'clips'}, {k or 'classes'})"
            raise KitError(f"{path.name}: {name} is {dtype}{list(shape)}, expected floats of shape {want}")


def scan(runs_dir: Path) -> Listing:
    runs, broken = [], []
    if runs_dir.is_dir():
        for path in sorted(runs_dir.iterdir()):
            if not path.is_dir() or path.name.startswith("."):
                continue
            try:
                runs.append(read_run(path))
            except KitError as exc:
                broken.append((path.name, str(exc).split(": ", 1)[-1]))
    return Listing(runs, broken)


def index_path(runs_dir: Path) -> Path:
    return runs_dir.parent / INDEX


def _stamps(runs_dir: Path) -> dict[str, list[int | None]]:
    """Each run folder's run.json and prediction files (mtime in ns, size; None where one is missing):
    a folder whose files were replaced under the same name (`dvc checkout`, `dvc exp apply`, a
    damaged copy) gets a new stamp."""
    stamps: dict[str, list[int | None]] = {}
    if runs_dir.is_dir():
        for path in runs_dir.iterdir():
            if path.is_dir() and not path.name.startswith("."):
                stamps[path.name] = [x for name in (RUN_JSON, *ARRAYS) for x in _stat(path / name)]
    return stamps


def _stat(file: Path) -> tuple[int | None, int | None]:
    try:
        st = file.stat()
    except OSError:
        return None, None
    return st.st_mtime_ns, st.st_size


def reindex(runs_dir: Path) -> Listing:
    """Rebuild index.json from the folders."""
    stamps = _stamps(runs_dir)
    listing = scan(runs_dir)
    doc = {
        "version": INDEX_VERSION,
        "runs": {r.id: r.meta for r in listing.runs},
        "broken": dict(listing.broken),
        "stamps": stamps,
    }
    atomic_write(index_path(runs_dir), json.dumps(doc, indent=1).encode())
    return listing


def load(runs_dir: Path) -> Listing:
    """The runs, from the index when this kit wrote it and it matches the folders and their run.json
    files, else rebuilt."""
    try:
        doc = json.loads(index_path(runs_dir).read_text())
        if doc.get("version") == INDEX_VERSION and doc["stamps"] == _stamps(runs_dir):
            runs = [Run(i, runs_dir / i, meta) for i, meta in doc["runs"].items()]
            return Listing(runs, list(doc["broken"].items()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return reindex(runs_dir)


def rank(
    runs: list[Run],
    metric: str = "accuracy",
    *,
    arch: str | None = None,
    split: str | None = None,
    feature_hash: str | None = None,
) -> list[Run]:
    """Runs matching the filters, best first by validation `metric` (ties: the lower log-loss, as the
    hillclimb ensemble breaks them, then the id)."""
    keep = [
        r
        for r in runs
        if (arch is None or r.meta["arch"] == arch)
        and (split is None or r.meta["split_id"].startswith(split))
        and (feature_hash is None or r.meta["feature_hash"].startswith(feature_hash))
    ]
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    return sorted(keep, key=lambda r: (sign * r.score(metric), r.score("log_loss"), r.id))


def ranked(
    runs_dir: Path,
    metric: str = "accuracy",
    *,
    arch: str | None = None,
    split: str | None = None,
    feature_hash: str | None = None,
) -> Listing:
    """The runs in `runs_dir` matching the filters, best first by validation `metric`, and the broken folders."""
    found = load(Path(runs_dir))
    return Listing(rank(found.runs, metric, arch=arch, split=split, feature_hash=feature_hash), found.broken)


def best(runs_dir: Path, metric: str = "accuracy", *, arch: str | None = None) -> Run:
    """The best run by validation `metric` (of `arch`); KitError when there is none."""
    runs = ranked(runs_dir, metric, arch=arch).runs
    if not runs:
        only = f" of arch {arch}" if arch else ""
        raise KitError(f"no runs{only} in {runs_dir} (train one with `kit train`)")
    return runs[0]


def find(runs_dir: Path, run_id: str) -> Run:
    listing = load(runs_dir)
    matches = [r for r in listing.runs if r.id == run_id] or [r for r in listing.runs if r.id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise KitError(f"no run {run_id!r} in {runs_dir} (see `kit registry`)")
    raise KitError(f"{run_id!r} matches {len(matches)} runs: {', '.join(r.id for r in matches[:5])}")


def remove(runs_dir: Path, run_id: str) -> str:
    """Delete a run folder (complete or broken); returns its id."""
    if run_id in ("", ".", "..") or Path(run_id).name != run_id:
        raise KitError(f"{run_id!r} is not a run id: name one folder of {runs_dir} (see `kit registry`)")
    path = runs_dir / run_id
    if not path.is_dir() or run_id.startswith("."):
        run_id = find(runs_dir, run_id).id
        path = runs_dir / run_id
    shutil.rmtree(path)
    reindex(runs_dir)
    return run_id


def write(runs_dir: Path, run_id: str, fill, replace: bool = True) -> Path:
    """Create run folder `run_id` atomically: `fill(tmp_folder)` writes its files. replace=False:
    a run folder that appeared meanwhile (another process) is kept and KitError raised."""
    try:
        with atomic_dir(runs_dir / run_id, replace) as tmp:
            fill(tmp)
    except FileExistsError:
        raise KitError(
            f"run {run_id} was landed by another process meanwhile: pass --force to replace it, or --name"
        ) from None
    reindex(runs_dir)
    return runs_dir / run_id
