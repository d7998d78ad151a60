"""`kit features`: decode every clip once, in parallel, and run a batched front-end.

On the CPU, worker processes (one per core, torch on one thread each) take chunks of clips and
do everything for them: decode, front-ends, voice embeddings. On a GPU this process computes
and a thread pool decodes ahead (soundfile + soxr release the GIL). Either way rows land in
memory-mapped float16 arrays inside a temp folder that is renamed into place at the end.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kit import __version__
from kit.atomic import atomic_dir, need_space, reserve, version
from kit.data import audio
from kit.data.fingerprint import dataset_fingerprint, digest
from kit.data.layout import Clip, Dataset
from kit.device import one_thread, precision_name, resolve_device, torch_threads
from kit.errors import KitError, listing
from kit.features.store import META, FeatureStore, is_current
from kit.features.voice import DIM as VOICE_DIM
from kit.params import FeaturesParams
from kit.prefetch import ordered
from kit.separation.stems import read_meta as read_stems_meta
from kit.separation.stems import stem_path

FEATURE_VERSION = 1  # bump whenever a front-end's output changes for the same params


@dataclass(frozen=True)
class Result:
    store: FeatureStore
    built: bool  # False: the store was already up to date, nothing was computed
    clips: int
    seconds: float
    silenced: list[str]


@dataclass(frozen=True)
class Plan:
    """What a store for this dataset and these params would be, before any decoding."""

    dataset: Dataset
    params: FeaturesParams
    out: Path
    frontend: AudioFrontend | ImageFrontend
    config: dict
    feature_hash: str

    @property
    def clips(self) -> int:
        return sum(len(c) for c in self.dataset.splits.values())

    @property
    def up_to_date(self) -> bool:
        return is_current(self.out, self.feature_hash)


def plan(dataset: Dataset, params: FeaturesParams, out: Path, stems: Path | None = None) -> Plan:
    """Check the dataset (and vocal stems), build the front-end, hash what the features depend on."""
    dataset.require_clean()
    dataset.check_out(Path(out), META, "a feature store")
    fingerprint = dataset_fingerprint(dataset, _workers(params))
    frontend = make_frontend(dataset, params, stems, fingerprint)
    config = {"version": FEATURE_VERSION, "frontend": frontend.describe(), "classes": dataset.classes}
    groups = [c.group for c in dataset.splits.get("train", [])]
    hashed = {"config": config, "data": fingerprint, **({"groups": groups} if any(groups) else {})}
    feature_hash = digest(hashed)[:16]
    config["source"] = {"root": str(dataset.root), "layout": dataset.layout, "fingerprint": digest(fingerprint)}
    return Plan(dataset, params, Path(out), frontend, config, feature_hash)


def extract(
    dataset: Dataset,
    params: FeaturesParams,
    out: Path,
    *,
    stems: Path | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Result:
    """Build the feature store for `dataset` at `out`, or reuse it when it is up to date."""
    started = time.perf_counter()
    p = plan(dataset, params, out, stems)
    if not force and p.up_to_date:
        return Result(FeatureStore.open(p.out), False, p.clips, time.perf_counter() - started, [])
    return build(p, progress)


def store_bytes(p: Plan) -> int:
    """The size of the store `build` writes: float16 rows, voice embeddings, and slack for headers and meta.json."""
    f, clips = p.frontend, sum(len(items) for items in p.dataset.splits.values())
    rows = clips * len(f.channels) * int(np.prod(f.shape)) * 2
    voice = clips * len(f.inputs) * VOICE_DIM * 4 if f.voice else 0
    return rows + voice + clips * 64 + (1 << 20)


def build(p: Plan, progress: Callable[[int], None] | None = None) -> Result:
    """Decode every clip, run the front-end, write the store atomically."""
    started = time.perf_counter()
    dataset, params, frontend = p.dataset, p.params, p.frontend
    silenced: list[str] = []
    failed: list[str] = []
    need_space(p.out, store_bytes(p), "the feature store")
    with atomic_dir(p.out) as tmp:
        splits_meta = {}
        for split, items in dataset.splits.items():
            if not items:
                continue
            _allocate(tmp / f"{split}.npy", np.float16, (len(items), len(frontend.channels), *frontend.shape))
            if frontend.voice:
                _allocate(tmp / f"{split}.voice.npy", np.float32, (len(items), len(frontend.inputs), VOICE_DIM))
            for done, errors in _fill(frontend, split, items, tmp, _workers(params)):
                for i, msg in errors:
                    name = f"{dataset.rel(items[i].path)} ({msg})"
                    (silenced if params.on_error == "silence" else failed).append(name)
                if progress:
                    progress(done)
            splits_meta[split] = {
                "file": f"{split}.npy",
                "count": len(items),
                "ids": [c.id for c in items],
                "labels": None if split == "test" else [c.label for c in items],
                "groups": [c.group for c in items] if any(c.group for c in items) else None,
            }
        stems = getattr(frontend, "stems", None)
        if stems and version(stems["root"]) != stems["version"]:
            raise KitError(
                f"the stems in {stems['root']} were replaced (by `kit separate`?) while kit features read them: "
                "nothing was written; run kit features again"
            )
        if failed:
            raise KitError(
                f"{len(failed)} clip(s) could not be decoded: {listing(failed)}. Fix or remove them, "
                "or rerun with --on-error silence to use silence and list them in meta.json"
            )
        meta = {
            "kit_version": __version__,
            "feature_hash": p.feature_hash,
            **p.config,
            "shape": [len(frontend.channels), *frontend.shape],
            "axes": ["channel", *frontend.axes],
            "channels": list(frontend.channels),
            **({"voice": {"inputs": list(frontend.inputs), "dim": VOICE_DIM}} if frontend.voice else {}),
            "dtype": "float16",
            "num_classes": dataset.num_classes,
            "splits": splits_meta,
            "silenced": silenced,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return Result(FeatureStore.open(p.out), True, p.clips, time.perf_counter() - started, silenced)


def _allocate(path: Path, dtype, shape: tuple) -> None:
    """An .npy file of `shape` whose blocks are allocated on disk (a full disk fails here, not as SIGBUS)."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    reserve(path, array.offset + array.nbytes)


def _fill(frontend, split: str, items: list[Clip], tmp: Path, workers: int) -> Iterator[tuple[int, list]]:
    """Write a split's rows (and voice embeddings) into the store's memory-mapped arrays in `tmp`;
    yields (clips done, [(clip index, decoding error)]). Audio on the CPU: chunks of clips in worker
    processes (torch on one thread each; every step of a clip runs in one process). A GPU, or images:
    this process computes, threads decode ahead."""
    chunks = [(split, start, items[start : start + CHUNK], tmp) for start in range(0, len(items), CHUNK)]
    if isinstance(frontend, AudioFrontend) and frontend.device == "cpu" and workers > 1:
        with ProcessPoolExecutor(workers, initializer=_worker_start, initargs=(frontend,)) as pool:
            yield from pool.map(_worker_chunk, chunks)
        return
    with ThreadPoolExecutor(workers) as pool, torch_threads(1 if frontend.device == "cpu" else None):
        for chunk in chunks:
            yield frontend.write_chunk(*chunk, pool=pool, workers=workers)


CHUNK = 64  # clips per task of a worker process
_FRONTEND = None  # a worker process's front-end (its torch state is built once per process)


def _worker_start(frontend) -> None:
    global _FRONTEND
    one_thread()
    _FRONTEND = frontend


def _worker_chunk(chunk: tuple) -> tuple[int, list]:
    return _FRONTEND.write_chunk(*chunk)


def _workers(params: FeaturesParams) -> int:
    return params.workers or os.cpu_count() or 1


# --- front-end adapters: clips -> batches of feature rows ------------------------------------


class AudioFrontend:
    """Decodes clips (and their vocal stems) and runs the spectral front-end(s) on each channel.

    With several front-ends (logmel+logfreq) every front-end sees every input channel and their
    outputs are concatenated as channels: `mix:logmel, vocals:logmel, mix:logfreq, vocals:logfreq`."""

    def __init__(
        self,
        specs: list,
        duration: float,
        batch_size: int,
        inputs: tuple[str, ...],
        stems: dict | None,
        voice=None,
        device: str = "cpu",
    ):
        self.specs = specs
        self.device_setting = device  # features.device: resolved (importing torch) only to compute
        self.sr = specs[0].sr
        self.duration = duration
        self.batch_size = batch_size
        self.shape = specs[0].shape
        self.axes = specs[0].axes
        self.inputs = inputs  # "mix" and / or "vocals": what is decoded
        self.channels = inputs if len(specs) == 1 else tuple(f"{c}:{s.name}" for s in specs for c in inputs)
        self.stems = stems  # {"root": Path, "hash": stems hash, "version": the one read} when vocals are a channel
        self.voice = voice  # VoiceEncoder: each input's voice embedding beside the spectrograms

    def describe(self) -> dict:
        from importlib.metadata import version

        if len(self.specs) == 1:
            desc = {"duration": self.duration, **asdict(self.specs[0]), "channels": list(self.channels)}
        else:
            desc = {
                "duration": self.duration,
                "name": "+".join(s.name for s in self.specs),
                "log": self.specs[0].log,
                "parts": [asdict(s) for s in self.specs],
                "channels": list(self.channels),
            }
        if self.stems:
            desc["stems_hash"] = self.stems["hash"]
        if self.voice:
            desc["voice"] = self.voice.describe()
        if any(s.filters[0] == "slaney" for s in self.specs):
            desc["librosa"] = version("librosa")  # its mel filters
        return desc

    @functools.cached_property
    def device(self) -> str:
        """Where the front-ends and the voice encoder run."""
        return str(resolve_device(self.device_setting, "features.device"))

    @functools.cached_property
    def spectral(self) -> list:
        from kit.features.frontends import SpectralFrontend

        return [SpectralFrontend(s, self.device) for s in self.specs]

    def _load(self, item: tuple[str, Clip]):
        split, clip = item
        paths = [clip.path if ch == "mix" else stem_path(self.stems["root"], split, clip.id) for ch in self.inputs]
        try:
            return np.stack([audio.load(path, self.sr, self.duration) for path in paths]), None
        except (audio.DecodeError, FileNotFoundError) as exc:
            return np.zeros((len(paths), self.specs[0].n_samples), np.float32), str(exc)

    def _spectra(self, waves: list[np.ndarray]) -> np.ndarray:
        x = np.stack(waves)  # (B, inputs, samples)
        flat = x.reshape(-1, x.shape[-1])
        outs = [f(flat) for f in self.spectral]
        return np.concatenate([out.reshape(x.shape[0], x.shape[1], *out.shape[1:]) for out in outs], axis=1)

    def _rows(self, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """A batch's spectrograms (B, channels, *shape) and voice embeddings (B, inputs, 256) or None."""
        return self._spectra(waves), self.voice(np.stack(waves)) if self.voice else None

    def write_chunk(self, split: str, start: int, items: list[Clip], tmp: Path, pool=None, workers: int = 1):
        """Rows start.. of the split's arrays in `tmp` for `items`: (clips, [(row, decoding error)]).
        With a thread `pool`, clips decode ahead in it; without, one after another here."""
        rows = np.load(tmp / f"{split}.npy", mmap_mode="r+")
        voice = np.load(tmp / f"{split}.voice.npy", mmap_mode="r+") if self.voice else None
        work = [(split, c) for c in items]
        loaded = ordered(pool, self._load, work, self.batch_size * (workers + 2)) if pool else map(self._load, work)
        errors, at = [], start
        for first in range(0, len(items), self.batch_size):
            batch = [next(loaded) for _ in items[first : first + self.batch_size]]
            errors += [(at + i, err) for i, (_, err) in enumerate(batch) if err]
            spectra, embedded = self._rows([y for y, _ in batch])
            rows[at : at + len(batch)] = spectra
            if voice is not None:
                voice[at : at + len(batch)] = embedded
            at += len(batch)
        rows.flush()
        if voice is not None:
            voice.flush()
        return len(items), errors


class ImageFrontend:
    device = "cpu"
    axes = ("freq", "time")
    channels = ("image",)
    voice = None  # no audio to embed

    def __init__(self, height: int, width: int):
        self.shape = (height, width)

    def describe(self) -> dict:
        return {"name": "image", "height": self.shape[0], "width": self.shape[1]}

    def _load(self, clip: Clip):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(clip.path) as im:
                grey = im.convert("L").resize(self.shape[::-1], Image.BILINEAR)
            return np.asarray(grey, dtype=np.float32) / 255.0, None
        except (UnidentifiedImageError, OSError) as exc:
            return np.zeros(self.shape, np.float32), str(exc).splitlines()[0]

    def write_chunk(self, split: str, start: int, items: list[Clip], tmp: Path, pool=None, workers: int = 1):
        rows = np.load(tmp / f"{split}.npy", mmap_mode="r+")
        loaded = ordered(pool, self._load, items, 4 * workers) if pool else map(self._load, items)
        errors = []
        for i, (img, err) in enumerate(loaded):
            rows[start + i, 0] = img
            if err:
                errors.append((start + i, err))
        rows.flush()
        return len(items), errors


def make_frontend(dataset: Dataset, params: FeaturesParams, stems: Path | None = None, fingerprint: dict | None = None):
    """The front-end a dataset gets: images -> image; audio -> params.frontend (one, or two as channels of one store)
    on params.input."""
    from kit.features import frontends

    if dataset.modality == "image":
        return ImageFrontend(params.image.height, params.image.width)
    build = {
        "logmel": lambda: frontends.logmel(params.logmel, params.duration),
        "logfreq": lambda: frontends.logfreq(params.logfreq, params.duration),
        "fbank": lambda: frontends.fbank(params.fbank, params.duration),
    }
    specs = [build[name]() for name in params.frontend.split("+")]
    if len({(s.sr, s.shape, s.log) for s in specs}) > 1:
        got = ", ".join(f"features.{s.name}: {s.sr} Hz, {s.shape[0]}×{s.shape[1]}, {s.log}" for s in specs)
        raise KitError(
            f"features.frontend {params.frontend}: combined front-ends need one sample rate and shape ({got})"
        )
    inputs = {"mix": ("mix",), "vocals": ("vocals",), "mix+vocals": ("mix", "vocals")}[params.input]
    vocal_stems = None
    if "vocals" in inputs:
        vocal_stems = _check_stems(Path(stems or "data/stems"), params, specs[0].sr, fingerprint or {})
    voice = None
    if params.voice.embed:
        from kit.features.voice import VoiceEncoder, weights_path

        precision = params.voice.precision  # auto alone depends on the device (and so on torch)
        if precision == "auto":
            precision = precision_name(precision, resolve_device(params.device, "features.device"))
        path, overlap = weights_path(params.voice.weights), params.voice.overlap
        voice = VoiceEncoder(path, specs[0].sr, params.duration, precision, params.device, overlap=overlap)
    return AudioFrontend(specs, params.duration, params.batch_size, inputs, vocal_stems, voice, params.device)


def _check_stems(root: Path, params: FeaturesParams, sr: int, fingerprint: dict) -> dict:
    """The stems folder exists and was made from exactly these clips at this rate and duration; with
    the version of it read (`kit.atomic.version`), which must still be there when the build ends."""
    landed = version(root)
    meta = read_stems_meta(root)
    need = f"features.input is {params.input}: it needs vocal stems from `kit separate`"
    if meta is None:
        raise KitError(f"{need}, and {root} has none (run `kit separate`, or set features.input to mix)")
    if meta["backend"]["name"] == "none":
        raise KitError(f"{need}, and separate.backend is none: set features.input to mix, or choose a backend")
    if meta.get("source", {}).get("fingerprint") != digest(fingerprint):
        raise KitError(f"{need}; the stems in {root} were made from other clips: run `kit separate` again")
    if meta.get("sr") != sr or meta.get("duration") != params.duration:
        raise KitError(
            f"{need} at {sr} Hz, {params.duration} s; {root} has {meta.get('sr')} Hz, {meta.get('duration')} s: "
            "run `kit separate` again"
        )
    return {"root": root, "hash": meta["stems_hash"], "version": landed}
