"""Benchmark: the preparation before the first epoch, `kit separate` + `kit features`, as shipped.

    python bench/prep.py [--clips 14333] [--data DATASET] [--device cpu|cuda|auto] [--work bench-out/prep]
                         [--sample 192] [--no-end-to-end]

Two parts, in one run so the figures share the machine's state:

1. Steps, on `--sample` clips, one thread each (best of 3), so their costs add up: decoding an mp3, the dsp
   separation (batches of 16), writing a FLAC stem, decoding it, each spectral front-end on the
   two channels (mix + vocals), the voice embeddings of both channels in fp32 and in bf16, and
   the seeds' librosa loop (melspectrogram + power_to_db per clip, decoded audio) against kit's
   log-mel front-end on the same clips (ratio per channel), and the log-mel's FFT alone (the
   bound on that ratio for any front-end that computes librosa's frames). Then the log-mel
   front-end as `kit features` runs it on the CPU, one worker process per core (wall time per
   channel): the ratio on the machine, against the loop in one process as the seeds ran it.
2. End to end: the real commands, `kit separate` then `kit features` in a subprocess each on
   the whole dataset with the shipped params (plus --device), timed, with the peak memory of
   each command's process tree (the sum of its processes' proportional set sizes, sampled every
   0.2 s: pages forked workers share count once).

Without --data a demo set of --clips clips (11,886 : 2,447 train : test, as the contest) is made
once under --work and reused. Run at 1k, 4k and 14k clips to see whether the cost is linear.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

CONTEST = (11886, 2447)
REPEAT = 3


def demo(work: Path, clips: int) -> Path:
    """A demo dataset of `clips` clips split as the contest, made once."""
    from kit.data.demo import make_demo

    out = work / f"demo-{clips}"
    if not (out / "train_label.txt").exists():
        n_test = max(4, round(clips * CONTEST[1] / sum(CONTEST)))
        make_demo(out, n_train=clips - n_test, n_test=n_test, seed=0)
    return out


def steps(data: Path, sample: int, device: str) -> tuple[list[tuple[str, float]], float]:
    """[(step, seconds per clip)] on one thread, and the log-mel front-end's speed-up over the librosa loop."""
    import librosa
    import soundfile as sf
    import torch

    from kit.data import audio
    from kit.data.layout import load_dataset
    from kit.device import resolve_device
    from kit.features import frontends
    from kit.features.voice import VoiceEncoder, weights_path
    from kit.params import FeaturesParams, SeparateParams
    from kit.separation.dsp import separate_batch
    from kit.separation.stems import write_stem

    torch.set_num_threads(1)
    dev = str(resolve_device(device, "--device"))
    clips = load_dataset(data).splits["train"][:sample]
    fp, sp = FeaturesParams(), SeparateParams()
    sr, n = fp.logmel.sr, len(clips)
    out: list[tuple[str, float]] = []

    def timed(name: str, fn):
        best = float("inf")
        for _ in range(REPEAT):  # the best of REPEAT (the first also warms imports, caches, oneDNN kernels)
            t = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t)
        out.append((name, best / n))
        return result

    mixes = timed("decode mp3 (soundfile)", lambda: [audio.load(c.path, sr, fp.duration) for c in clips])
    batch = sp.batch_size

    def separate():
        return np.concatenate(
            [separate_batch(np.stack(mixes[i : i + batch]), sr, sp.dsp, device=dev)[0] for i in range(0, n, batch)]
        )

    vocals = timed(f"separate (dsp, {dev})", separate)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"kit-prep-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    timed("write FLAC stem", lambda: [write_stem(tmp / f"{i}.flac", v, sr) for i, v in enumerate(vocals)])
    timed("decode FLAC stem", lambda: [sf.read(tmp / f"{i}.flac", dtype="float32") for i in range(n)])
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    both = np.stack([np.stack([m, v]) for m, v in zip(mixes, vocals)])  # (n, 2, samples)
    specs = {
        "logmel": frontends.logmel(fp.logmel, fp.duration),
        "logfreq": frontends.logfreq(fp.logfreq, fp.duration),
    }
    flat = both.reshape(-1, both.shape[-1])
    for name, spec in specs.items():
        fe = frontends.SpectralFrontend(spec, dev)
        timed(f"{name}, mix + vocals ({dev})", lambda fe=fe: [fe(flat[i : i + 16]) for i in range(0, len(flat), 16)])
    fb = frontends.SpectralFrontend(frontends.fbank(fp.fbank, fp.duration), dev)
    at16k = np.stack([audio.resample(y, sr, fp.fbank.sr) for y in flat])
    timed(f"fbank, mix + vocals ({dev})", lambda: [fb(at16k[i : i + 16]) for i in range(0, len(at16k), 16)])
    for precision in ("fp32", "bf16"):
        enc = VoiceEncoder(weights_path(""), sr, fp.duration, precision, dev, overlap=fp.voice.overlap)
        timed(
            f"voice embeddings, mix + vocals, {precision} ({dev})",
            lambda enc=enc: [enc(both[i : i + fp.batch_size]) for i in range(0, n, fp.batch_size)],
        )
    loop = timed(
        "seeds' librosa loop, one channel",
        lambda: [librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr)) for y in mixes],
    )
    del loop
    lm = specs["logmel"]
    frames = torch.randn(2, lm.n_frames, lm.n_fft, device=dev)  # a pass of two clips' frames

    def fft_alone():
        for _ in range(0, n, 2):
            torch.fft.rfft(frames)
        if frames.is_cuda:
            torch.cuda.synchronize()  # kernels run asynchronously: the time is when they are done

    timed(f"log-mel's FFT alone, one channel ({dev})", fft_alone)
    if dev == "cpu":
        out.append(("log-mel, one channel, on every core (wall)", across_cores(lm, np.stack(mixes))))
    per_channel = dict(out)[f"logmel, mix + vocals ({dev})"] / 2
    return out, dict(out)["seeds' librosa loop, one channel"] / per_channel


_WORK: tuple = ()  # a worker's front-end and clips, inherited through fork


def _bind(work: tuple) -> None:
    global _WORK
    import torch

    torch.set_num_threads(1)
    _WORK = work


def _logmel_rows(rows: range) -> None:
    frontend, waves = _WORK
    for i in range(rows.start, rows.stop, 16):  # 16 rows a call, as kit features' 8 clips x 2 channels
        frontend(waves[i : min(i + 16, rows.stop)])


def across_cores(spec, waves: np.ndarray, reps: int = 16) -> float:
    """Wall seconds per channel of kit's log-mel front-end alone run as `kit features` runs it on the
    CPU: one worker process per core, torch on one thread each, chunks of 64 clips. The clips are
    decoded before (forked into the workers, as the loop gets them decoded) and gone over `reps`
    times so the pool's start is not timed; the best of REPEAT."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from kit.features.extract import CHUNK
    from kit.features.frontends import SpectralFrontend

    workers, n = os.cpu_count() or 1, len(waves)
    chunks = [range(s, min(s + CHUNK, n)) for _ in range(reps) for s in range(0, n, CHUNK)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, ctx, initializer=_bind, initargs=((SpectralFrontend(spec), waves),)) as pool:
        list(pool.map(_logmel_rows, chunks[: 2 * workers]))  # every worker warm (buffers, FFT plans)
        best = float("inf")
        for _ in range(REPEAT):
            t = time.perf_counter()
            list(pool.map(_logmel_rows, chunks))
            best = min(best, time.perf_counter() - t)
    return best / (n * reps)


def run_peak(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run a command; (seconds, peak MiB of its process tree (PSS), last line of output)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, done = 0, threading.Event()

    def sample():
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(_pss(p) for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-2000:]}")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return seconds, peak / 2**20, lines[-1] if lines else ""


def _pss(process) -> int:
    """Proportional set size (shared pages split between the processes sharing them), else RSS."""
    try:
        return process.memory_full_info().pss
    except (AttributeError, OSError):
        return process.memory_info().rss


def end_to_end(data: Path, work: Path, device: str) -> list[tuple[str, float, float]]:
    kit = [sys.executable, "-m", "kit"]
    where = work / f"run-{data.name}"
    where.mkdir(parents=True, exist_ok=True)
    stems, store = where / "stems", where / "features"
    rows = []
    for name, args in (
        ("kit separate", ["separate", "--data", str(data), "--out", str(stems), "--device", device]),
        (
            "kit features",
            ["features", "--data", str(data), "--stems", str(stems), "--out", str(store), "--device", device],
        ),
    ):
        seconds, peak, _ = run_peak([*kit, *args, "--force"], where)
        rows.append((name, seconds, peak))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=sum(CONTEST), help="demo clips (default: the contest's 14,333)")
    ap.add_argument("--data", type=Path, help="a dataset instead of the demo set")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--work", type=Path, default=Path("bench-out/prep"))
    ap.add_argument("--sample", type=int, default=192, help="clips the per-step timings use")
    ap.add_argument("--no-end-to-end", action="store_true", help="only the per-step timings")
    ap.add_argument("--report", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    console = Console()
    data = args.data or demo(args.work, args.clips)
    from kit.data.layout import load_dataset

    n = sum(len(c) for c in load_dataset(data).splits.values())
    per_step, ratio = steps(data, args.sample, args.device)
    table = Table(title=f"steps, one thread, {args.sample} clips of {data}")
    for col in ("step", "ms per clip", "clips/s"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for name, s in per_step:
        table.add_row(name, f"{1000 * s:.2f}", f"{1 / s:.0f}")
    console.print(table)
    console.print(f"kit's log-mel front-end: {ratio:.1f}× the seeds' librosa loop (per channel, decoded audio)")
    fft = next(s for name, s in per_step if name.startswith("log-mel's FFT alone"))
    loop = dict(per_step)["seeds' librosa loop, one channel"]
    bound = loop / fft
    console.print(f"its FFT alone would be {bound:.1f}×: the bound for any front-end on librosa's frames with this FFT")
    wide = dict(per_step).get("log-mel, one channel, on every core (wall)")
    if wide:
        console.print(
            f"run as kit features runs it, one worker per core ({os.cpu_count()}): {loop / wide:.1f}× the loop "
            "(which is one process, as the seeds ran it)"
        )
    report = {
        "data": str(data),
        "clips": n,
        "cores": os.cpu_count(),
        "steps": dict(per_step),
        "logmel_ratio": ratio,
        "fft_bound": bound,
        **({"logmel_ratio_all_cores": loop / wide} if wide else {}),
    }
    if not args.no_end_to_end:
        rows = end_to_end(data, args.work, args.device)
        table = Table(title=f"end to end, {n} clips, {os.cpu_count()} cores, device {args.device}")
        for col in ("command", "seconds", "clips/s", "peak MiB"):
            table.add_column(col, justify="left" if col == "command" else "right")
        for name, seconds, peak in rows:
            table.add_row(name, f"{seconds:.1f}", f"{n / seconds:.1f}", f"{peak:.0f}")
        total = sum(r[1] for r in rows)
        table.add_row("both", f"{total:.1f}", f"{n / total:.1f}", f"{max(r[2] for r in rows):.0f}")
        console.print(table)
        report["end_to_end"] = {name: {"seconds": s, "peak_mib": p} for name, s, p in rows}
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
