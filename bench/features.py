"""Benchmark: `kit features` vs the plain per-file librosa loop, same clips, same process.

    python bench/features.py [--data DATASET] [--clips N] [--repeat R] [--frontends logmel,logfreq]

Baseline: for each file `librosa.load(path, sr=22050)` + `melspectrogram` + `power_to_db`.
kit: the whole `kit features` path (hash inputs, threaded decoding, batched front-end,
float16 store written atomically), once per front-end asked for (logmel is the one the baseline
computes; the others show what their front-end costs). All are warmed up first; the best of R
runs is reported.
Without --data a demo dataset is generated in a temp folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="dataset (default: a fresh demo set)")
    ap.add_argument("--clips", type=int, default=600, help="clips timed (default 600)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method, best kept")
    ap.add_argument("--frontends", default="logmel", help="kit front-ends timed, comma-separated (default logmel)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kit-bench-") as tmp:
        run(args, Path(tmp))


def run(args, tmp: Path) -> None:
    import librosa

    from kit.data.layout import load_dataset
    from kit.features.extract import extract
    from kit.params import FeaturesParams, VoiceParams

    data = args.data
    if data is None:
        from kit.data.demo import make_demo

        data = make_demo(tmp / "demo", n_train=args.clips, n_test=8, seed=0).out
    ds = load_dataset(data)
    clips = ds.splits["train"][: args.clips]
    ds = dataclasses.replace(ds, splits={"train": clips})
    frontends = args.frontends.split(",")
    # what the baseline computes; then the first front-end with voice embeddings, for their cost
    mix = dataclasses.replace(FeaturesParams(), input="mix", voice=VoiceParams(embed=False))
    params = {fe: dataclasses.replace(mix, frontend=fe) for fe in frontends}
    params[f"{frontends[0]} + voice"] = dataclasses.replace(params[frontends[0]], voice=VoiceParams())
    sr = mix.logmel.sr

    def baseline():
        out = []
        for c in clips:
            y, _ = librosa.load(c.path, sr=sr)
            out.append(librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr)))
        return out

    def kit(fe: str):
        return lambda: extract(ds, params[fe], tmp / f"store-{fe}", force=True)

    for c in clips[:5]:  # warm-up: numba JIT, librosa caches, imports
        librosa.power_to_db(librosa.feature.melspectrogram(y=librosa.load(c.path, sr=sr)[0], sr=sr))
    for fe in params:
        extract(dataclasses.replace(ds, splits={"train": clips[:16]}), params[fe], tmp / f"warm-{fe}", force=True)

    methods = {"librosa loop": baseline, **{f"kit features ({fe})": kit(fe) for fe in params}}
    timings = {name: [] for name in methods}
    results = {}
    for _ in range(args.repeat):
        for name, fn in methods.items():
            t = time.perf_counter()
            results[name] = fn()
            timings[name].append(time.perf_counter() - t)
    reference = results["librosa loop"]

    base = min(timings["librosa loop"])
    table = Table(title=f"feature extraction, {len(clips)} clips of {data} ({os.cpu_count()} cores)")
    for col in ("method", "best s", "clips/s", "speed-up"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for name, ts in timings.items():
        table.add_row(name, f"{min(ts):.2f}", f"{len(clips) / min(ts):.0f}", f"{base / min(ts):.1f}×")
    console = Console()
    console.print(table)
    if "logmel" in frontends:
        store = results["kit features (logmel)"].store.array("train")
        diff = max(
            float(np.abs(store[i, 0].astype(np.float32)[:, : r.shape[1]] - r).max()) for i, r in enumerate(reference)
        )
        console.print(f"max |kit logmel − librosa| = {diff:.3f} dB (kit stores float16)")


if __name__ == "__main__":
    main()
