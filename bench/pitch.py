"""Do pitch-track statistics of the vocal stem help the voice head on singers it never heard?

    python bench/pitch.py --data ../shared/data/song4-dev --stems data/stems --work bench-out/singers
        [--config default] [--seeds 0] [--voice-store OTHER_STORE [--no-pitch]]

The question (issue: one voice heard as several, male heard as female): a voice's fundamental
frequency says male or female directly, and two voices at once make the tracked F0 jump between
them. librosa's YIN tracks F0 on each train clip's vocal stem (65-1050 Hz, 93 ms frames, frames
where the stem is within 30 dB of its loudest); 10 statistics summarise the track: the voiced
share, F0 quantiles (10/25/50/75/90 %, in octaves above 110 Hz), their spread, and how often and
how far the track jumps between frames.

For each of bench/singers.py's singer-disjoint folds and each run of --config there, the voice
head is fitted again exactly as kit fits it (`voice_head.fit`, on the run's own training rows), on
(a) the voice embeddings alone (kit's head: a check that this reproduces the run), (b) embeddings
plus the pitch statistics, (c) the pitch statistics alone. Each is blended with the run's saved
network probabilities (voice_parts.npz) at the weight `voice_head.choose_weight` picks on the run's
validation rows, and scored on the held-out singers. No network is retrained: only the head changes.
--voice-store adds a head on another store's embeddings of the same clips (e.g. one built with
features.voice.precision=bf16), to see what a change of the embeddings does to the blend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

FMIN, FMAX, FRAME, HOP = 65.0, 1050.0, 2048, 512
STATS = ("voiced", "q10", "q25", "q50", "q75", "q90", "spread", "jump", "jumps>1.5st", "std")


def pitch_stats(path: Path) -> np.ndarray:
    """The 10 statistics of the F0 track of one vocal stem (see the module docstring)."""
    import librosa

    y, sr = librosa.load(path, sr=None)
    f0 = librosa.yin(y, fmin=FMIN, fmax=FMAX, sr=sr, frame_length=FRAME, hop_length=HOP)
    rms = librosa.feature.rms(y=y, frame_length=FRAME, hop_length=HOP)[0][: len(f0)]
    db = 20 * np.log10(rms + 1e-9)
    voiced = (db > db.max() - 30) & (db > -60) & (f0 > FMIN * 1.05) & (f0 < FMAX * 0.95)
    if voiced.sum() < 3:
        return np.zeros(len(STATS), np.float32)
    octaves = np.log2(f0[voiced] / 110.0)
    q = np.percentile(octaves, [10, 25, 50, 75, 90])
    steps = np.abs(np.diff(octaves)) * 12  # semitones between consecutive voiced frames
    return np.array([voiced.mean(), *q, q[3] - q[1], np.median(steps), (steps > 1.5).mean(), octaves.std()], np.float32)


def all_stats(stems: Path, ids: list[str], workers: int) -> np.ndarray:
    paths = [stems / "train" / f"{i}.vocals.flac" for i in ids]
    with ProcessPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(pitch_stats, paths, chunksize=32)))


def blended(run: Path, head_val: np.ndarray, head_test: np.ndarray, y_val: np.ndarray, y_test: np.ndarray) -> dict:
    """The run's network blended with this head at the weight chosen on the run's validation rows."""
    from kit.metrics import scores
    from kit.training.voice_head import choose_weight

    parts = np.load(run / "voice_parts.npz")
    w, _ = choose_weight(parts["network_val"], head_val, y_val)
    probs = (1 - w) * parts["network_test"] + w * head_test
    s = scores(probs, y_test)
    return {"accuracy": s["accuracy"], "log_loss": s["log_loss"], "weight": w, "head": scores(head_test, y_test)}


def fold_rows(fold_store: Path, run: Path, features: dict, labels_test: np.ndarray) -> dict:
    """(a) embeddings, (b) + pitch, (c) pitch alone: each head refitted on the run's training rows."""
    from kit.features.store import FeatureStore
    from kit.training.voice_head import fit

    store = FeatureStore.open(fold_store)
    y = store.labels("train")
    val = np.load(run / "val_index.npy")
    train = np.setdiff1d(np.arange(len(y)), val)
    refit = json.loads((run / "run.json").read_text())["params"]["refit"]
    k, c = store.meta["num_classes"], 0.0  # kit's default c: the best cross-validated log-loss
    out = {}
    for name, (x_train, x_test) in features.items():
        head = fit(x_train[train], y[train], k, c)
        test_head = fit(x_train, y, k, c) if refit else head  # as kit: the refit's head saw every train clip
        out[name] = blended(run, head.predict(x_train[val]), test_head.predict(x_test), y[val], labels_test)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/song4-dev"))
    ap.add_argument("--stems", type=Path, default=Path("data/stems"), help="song4-dev's vocal stems (kit separate)")
    ap.add_argument("--store", type=Path, default=Path("data/features"), help="song4-dev's feature store")
    ap.add_argument("--work", type=Path, default=Path("bench-out/singers"), help="bench/singers.py's --work")
    ap.add_argument("--config", default="default", help="the bench/singers.py configuration whose runs to use")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--voice-store",
        type=Path,
        help="another store of the same clips (e.g. features.voice.precision=bf16): its embeddings as a head too",
    )
    ap.add_argument("--no-pitch", action="store_true", help="skip the pitch rows (with --voice-store)")
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    import singers

    from kit.features.store import FeatureStore

    console = Console()
    store = FeatureStore.open(args.store)
    split, _ = singers.outer_folds(args.data, store, 3, 0)
    labels, ids = store.labels("train"), store.ids("train")
    pitch = None
    if not args.no_pitch:
        console.print(f"F0 tracks of {len(ids)} vocal stems …")
        pitch = all_stats(args.stems, ids, args.workers)
    other = None
    if args.voice_store:
        alt = FeatureStore.open(args.voice_store)
        if alt.ids("train") != ids:
            raise SystemExit(f"{args.voice_store} holds other train clips than {args.store}")
        other = alt.voice("train")
    overrides = [o for part in args.config.split("+") for o in singers.CONFIGS[part]]
    rows: dict[str, list[dict]] = {}
    for k, (t, v) in enumerate(split.folds):
        fold_store = (args.work / f"store-fold{k}").resolve()
        emb_train, emb_test = (FeatureStore.open(fold_store).voice(s) for s in ("train", "test"))
        features = {"embeddings (kit)": (emb_train, emb_test)}
        if pitch is not None:
            features["embeddings + pitch"] = (np.hstack([emb_train, pitch[t]]), np.hstack([emb_test, pitch[v]]))
            features["pitch alone"] = (pitch[t], pitch[v])
        if other is not None:
            features[f"embeddings of {args.voice_store}"] = (other[t], other[v])
        for seed in (int(s) for s in args.seeds.split(",")):
            run = singers.train_one(fold_store, (args.work / "runs").resolve(), overrides, seed, "")
            for name, r in fold_rows(fold_store, run.path, features, labels[v]).items():
                rows.setdefault(name, []).append({"fold": k, "seed": seed, **r})
    report(console, rows, args.config)
    if args.report:
        args.report.write_text(json.dumps(rows, indent=1))
    return 0


def report(console: Console, rows: dict[str, list[dict]], config: str) -> None:
    table = Table(title=f"held-out singers, runs of {config}: the voice head's inputs")
    for col in ("head inputs", "blend per fold", "blend accuracy", "blend log-loss", "head alone", "weights"):
        table.add_column(col)
    for name, got in rows.items():
        acc = [g["accuracy"] for g in got]
        table.add_row(
            name,
            " ".join(f"{a:.3f}" for a in acc),
            _mean(acc),
            _mean([g["log_loss"] for g in got]),
            _mean([g["head"]["accuracy"] for g in got]),
            " ".join(f"{g['weight']:g}" for g in got),
        )
    console.print(table)


def _mean(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


if __name__ == "__main__":
    sys.exit(main())
