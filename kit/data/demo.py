"""The built-in demo dataset: synthetic 3-second songs in the contest layout.

Classes: 0 = no voice, 1 = one male voice, 2 = one female voice, 3 = several voices.
Every clip has accompaniment (chords, bass, drums, sometimes an instrumental melody);
level, bandwidth and loudness are random and independent of the class, so a model has
to hear the voices. The music itself is made in `kit.data.synth`.

    out/train_mp3s/{i}.mp3   out/train_label.txt   (line i = label of clip i)
    out/test_mp3s/{i}.mp3    out/test_label.txt    out/sample_submission.csv

Each clip is seeded from (seed, split, index), so the files do not depend on `workers`;
the same arguments give byte-identical files. The folder appears whole or not at all.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from kit.atomic import atomic_dir
from kit.data import synth
from kit.errors import KitError

SPLITS = ("train", "test")
N_CLASSES = 4
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# fork starts workers at once and needs no `if __name__ == "__main__"` guard in the caller;
# the workers only run numpy and libsndfile, so a threaded parent (torch) is no danger
_START = "fork" if sys.platform == "linux" else "spawn"


@dataclass(frozen=True)
class DemoSummary:
    out: Path
    n_train: int
    n_test: int
    class_counts: dict[str, list[int]]  # split -> clips per class 0..3
    seconds: float


def make_demo(
    out: Path,
    *,
    n_train: int = 240,
    n_test: int = 80,
    seed: int = 0,
    sr: int = 22050,
    duration: float = 3.0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Write the demo dataset to `out` (replacing it whole) and return a summary."""
    t_start = time.perf_counter()
    out = Path(out)
    workers = check_args(out, n_train, n_test, seed, sr, duration, workers)
    labels = {"train": _labels(seed, 0, n_train), "test": _labels(seed, 1, n_test)}
    jobs = [(split, i, int(lab)) for split in SPLITS for i, lab in enumerate(labels[split])]
    with atomic_dir(out) as tmp:
        for split in SPLITS:
            (tmp / f"{split}_mp3s").mkdir()
        _run(jobs, tmp, seed, sr, duration, workers, progress)
        for split in SPLITS:
            (tmp / f"{split}_label.txt").write_text("".join(f"{x}\n" for x in labels[split]))
        (tmp / "sample_submission.csv").write_text("id,category\n" + "".join(f"{i},0\n" for i in range(n_test)))
    counts = {s: np.bincount(labels[s], minlength=N_CLASSES).tolist() for s in SPLITS}
    return DemoSummary(out, n_train, n_test, counts, time.perf_counter() - t_start)


def check_args(out, n_train, n_test, seed, sr=22050, duration=3.0, workers=None) -> int:
    """Validate make_demo's arguments (KitError naming the option); returns the worker count."""

    def bad(msg):
        raise KitError(msg)

    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(n_train) or n_train < N_CLASSES:
        bad(f"--n-train must be ≥ {N_CLASSES} (one clip per class at least), got {n_train!r}")
    if not is_int(n_test) or n_test < 1:
        bad(f"--n-test must be ≥ 1, got {n_test!r}")
    if not is_int(seed) or seed < 0:
        bad(f"--seed must be an integer ≥ 0, got {seed!r}")
    if not is_int(sr) or sr not in MP3_RATES:
        bad(f"--sr must be an mp3 sample rate ({', '.join(map(str, MP3_RATES))}), got {sr!r}")
    if not isinstance(duration, (int, float)) or not 1.0 <= duration <= 30.0:
        bad(f"--duration must be between 1 and 30 seconds, got {duration!r}")
    if workers is not None and (not is_int(workers) or workers < 1):
        bad(f"--workers must be ≥ 1, got {workers!r}")
    if out.exists() and not out.is_dir():
        bad(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "train_label.txt").exists():
        bad(f"--out {out} is a non-empty folder that is not a demo dataset; choose another or empty it")
    return workers or os.cpu_count() or 1


def _labels(seed: int, split: int, n: int) -> np.ndarray:
    """Class of each clip, drawn with contest-like proportions; every class present if n ≥ 4."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split, 2**31)))
    y = rng.choice(N_CLASSES, size=n, p=synth.P_CLASS)
    if n >= N_CLASSES:
        for c in range(N_CLASSES):
            if not (y == c).any():  # take a clip from the commonest class
                common = np.bincount(y, minlength=N_CLASSES).argmax()
                y[rng.choice(np.flatnonzero(y == common))] = c
    return y


def render_clip(seed: int, split: str, index: int, label: int, sr: int, duration: float) -> np.ndarray:
    """The audio of one clip, a function of its arguments only."""
    ss = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index))
    return synth.render(np.random.default_rng(ss), label, sr, duration)


def _write_clip(path: Path, y: np.ndarray, sr: int) -> None:
    """Encode to mp3; if decoding would overshoot (mp3 rings on loud peaks), turn it down."""
    for _ in range(4):
        buf = io.BytesIO()
        sf.write(buf, y, sr, format="MP3")
        peak = float(np.abs(sf.read(io.BytesIO(buf.getvalue()), dtype="float32")[0]).max())
        if peak < 0.98:
            break
        y = y * np.float32(0.95 / peak)
    path.write_bytes(buf.getvalue())


def _make_clips(root: Path, chunk, seed, sr, duration) -> int:
    for split, i, label in chunk:
        y = render_clip(seed, split, i, label, sr, duration)
        _write_clip(root / f"{split}_mp3s" / f"{i}.mp3", y, sr)
    return len(chunk)


def _run(jobs, root, seed, sr, duration, workers, progress) -> None:
    size = max(1, min(8, len(jobs) // (4 * workers)))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    if workers == 1 or len(chunks) == 1:
        for c in chunks:
            done = _make_clips(root, c, seed, sr, duration)
            if progress:
                progress(done)
        return
    ctx = multiprocessing.get_context(_START)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=ctx)
    try:
        pending = {pool.submit(_make_clips, root, c, seed, sr, duration) for c in chunks}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                done = f.result()
                if progress:
                    progress(done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # no writer may outlive the temp folder
        raise
    pool.shutdown(wait=True)
