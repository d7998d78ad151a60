"""Benchmark: training samples/s, a plain fp32 eager DataLoader loop vs kit's training path.

    python bench/train.py [--arch resnet34] [--samples 256] [--batch-size 32] [--device auto]
                          [--compile] [--procs N] [--pack G] [--inputs logmel,fbank]
                          [--precision auto|fp32|bf16]

Same process, same model, same synthetic inputs, of the shapes the earlier entrants used (1x128x130 log-mel,
1x299x40 filterbank); each path's second epoch is timed. The plain loop: float32 TensorDataset +
DataLoader(shuffle) + AdamW + cross-entropy. kit: `kit.training.loop.fit_fold` (float16 feature
tensor held on the device, the default augmentation drawn on the device, channels_last, bf16
autocast where `--precision` (train.precision, default auto) puts it: CUDA and CPUs with native
bf16), with a tiny validation fold so the figure is training throughput. `--compile`
adds kit with `train.compile: true` (torch.compile; CUDA graphs on CUDA). `--procs N` also runs N
kit trainings (compiled with --compile) at once on the same device, as `dvc queue start -j N` or N
`kit train` commands would: all warm up, wait for each other, then train two epochs each, and the
samples they trained over that common window give the summed rate (the window also holds their
validation and checkpoint writes, so it errs low). `--pack G` also runs one kit training of G
models packed into one (`train.pack`, compiled with --compile): G x samples per epoch. Each
figure is printed as soon as it is measured. Entrant A's recipe (20 ResNet34 x 20 epochs x 11,886
clips of 299x40) is extrapolated from kit's best measured fbank rate, plus, for each of the
20 / (models at once) trainings it takes: its start-up (epoch 1 minus a warm epoch: compilation,
cuDNN autotuning); 20 checkpoint copies to host memory; 19 times the part of a checkpoint write
that a real epoch (11,886 clips per model at the measured rate) would not hide (the write runs in
the background during the next epoch); and the tail, timed: the last write and the final
predictions, which overlap. Copies and writes are timed inside kit's checkpoint writer; the bench's
own epochs are too short to hide a write.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SHAPES = {"logmel": (128, 130), "fbank": (299, 40)}  # 1 x freq x time, as the earlier entrants used


def plain_loop(arch: str, x, y, batch_size: int, device) -> float:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from kit.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, num_classes=4).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
    )
    model.train()
    torch.backends.cudnn.benchmark = False  # torch's default (kit's path turns it on)
    for _epoch in range(2):  # the second epoch is timed: kernels and allocator are warm
        _sync(device)
        start = time.perf_counter()
        n = 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(xb)
        _sync(device)
    return n / (time.perf_counter() - start)


def kit_path(
    arch: str,
    x,
    y,
    batch_size: int,
    device,
    work: Path,
    compile: bool = False,
    epochs: int = 2,
    on_epoch=None,
    pack: int = 1,
    precision: str = "auto",
) -> tuple[float, float, float, float, float]:
    """(samples/s of the last epoch, seconds epoch 1 took beyond it: compilation, cuDNN autotuning,
    seconds a checkpoint's copy to host memory took, seconds its background write took, seconds
    from the last epoch's end to the results: the last write and the final predictions)."""
    from unittest import mock

    import torch

    from kit.params import TrainParams
    from kit.training import checkpoint
    from kit.training.loop import Fold, fit_fold

    class TimedWriter(checkpoint.Writer):
        copies: list[float] = []
        writes: list[float] = []

        def save(self, folder, tensors, meta):
            self.wait()
            start = time.perf_counter()
            super().save(folder, tensors, meta)
            self.copies.append(time.perf_counter() - start)

        def _run(self, folder, tensors, meta):
            start = time.perf_counter()
            super()._run(folder, tensors, meta)
            self.writes.append(time.perf_counter() - start)

    p = dataclasses.replace(
        TrainParams(),
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        scheduler="none",
        compile=compile,
        pack=pack,
        precision=precision,
    )
    xt = torch.from_numpy(x.astype(np.float16)).to(device)
    yt = torch.from_numpy(y).to(device)
    train_idx, val_idx = np.arange(len(x) - 8), np.arange(len(x) - 8, len(x))
    fold = Fold(xt, yt, train_idx, val_idx, None, num_classes=4)
    ends: list[float] = []

    def timed(records: list[dict]) -> None:
        ends.append(time.perf_counter())
        if on_epoch:
            on_epoch(records[0])

    with mock.patch.object(checkpoint, "Writer", TimedWriter):
        result = fit_fold(fold, p, arch, list(range(pack)), device, work, on_epoch=timed)[0]
    tail = time.perf_counter() - ends[-1]
    first, last = result.history[0]["seconds"], result.history[-1]["seconds"]  # later epochs: all warm
    copy, write = TimedWriter.copies[-1], TimedWriter.writes[-1]
    return pack * len(train_idx) / last, max(0.0, first - last), copy, write, tail


TIMED_EPOCHS = 2  # --procs workers: epochs timed after the first
_BARRIER = None  # set in each --procs worker


def _init_worker(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _worker(args) -> tuple[float, float, int, float]:
    """One of --procs concurrent trainings (a fresh process each): after its first epoch it waits
    for the others, then times the next TIMED_EPOCHS. (start, end, samples in between, start-up s)"""
    arch, shape, samples, batch_size, device_name, work, compile, precision = args
    import torch

    device = torch.device(device_name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 1, *shape)).astype(np.float32)
    y = rng.integers(0, 4, samples)
    clock: list[float] = []

    def on_epoch(record: dict) -> None:
        if record["epoch"] == 0:
            _BARRIER.wait()  # every training is compiled and warm: all time the same window
        clock.append(time.monotonic())  # system-wide, comparable across processes

    epochs = 1 + TIMED_EPOCHS
    _, startup, *_ = kit_path(
        arch, x, y, batch_size, device, Path(work), compile, epochs=epochs, on_epoch=on_epoch, precision=precision
    )
    return clock[0], clock[-1], TIMED_EPOCHS * (samples - 8), startup  # kit_path validates on 8


def concurrent_rate(
    procs: int, arch: str, shape, samples: int, batch_size: int, device, tmp: str, compile: bool, precision: str
):
    """(summed samples/s, slowest start-up s) of `procs` trainings running at once: samples trained
    by all of them over the common window from the barrier to the last one's end."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    jobs = [(arch, shape, samples, batch_size, str(device), f"{tmp}/p{i}", compile, precision) for i in range(procs)]
    with ctx.Pool(procs, initializer=_init_worker, initargs=(ctx.Barrier(procs, timeout=900),)) as pool:
        results = pool.map(_worker, jobs)
    window = max(end for _, end, _, _ in results) - min(start for start, _, _, _ in results)
    return sum(n for _, _, n, _ in results) / window, max(w for _, _, _, w in results)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet34")
    ap.add_argument("--samples", type=int, default=256, help="training samples per measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="also measure kit with torch.compile")
    ap.add_argument("--procs", type=int, default=1, help="also measure N concurrent kit trainings")
    ap.add_argument("--pack", type=int, default=1, help="also measure one kit training of G packed models")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="kit's train.precision")
    ap.add_argument("--inputs", default=",".join(SHAPES), help=f"comma-separated, of: {', '.join(SHAPES)}")
    args = ap.parse_args()
    unknown = set(args.inputs.split(",")) - set(SHAPES)
    if unknown:
        ap.error(f"--inputs: unknown {', '.join(sorted(unknown))} (choose from {', '.join(SHAPES)})")

    import torch

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    from kit.device import precision_name

    amp = precision_name(args.precision, device)
    rng = np.random.default_rng(0)
    table = Table(
        title=f"{args.arch} training throughput on {device} ({torch.get_num_threads()} threads), "
        f"batch {args.batch_size}, {args.samples} samples, kit in {amp}"
    )
    cols = ["input", "plain fp32 loop, samples/s", "kit, samples/s"]
    cols += ["kit + compile, samples/s"] if args.compile else []
    together = f"{args.procs} x kit{' + compile' if args.compile else ''} at once, samples/s"
    cols += [together] if args.procs > 1 else []
    packed = f"kit, {args.pack} packed{' + compile' if args.compile else ''}, samples/s"
    cols += [packed] if args.pack > 1 else []
    for col in (*cols, "best speed-up"):
        table.add_column(col, justify="left" if col == "input" else "right")
    best_fbank = (0.0, 0.0, 0.0, 0.0, 0.0, 1)  # samples/s, start-up, copy, write, tail (s), models at once
    console = Console()
    with tempfile.TemporaryDirectory(prefix="kit-bench-train-") as tmp:
        for name in args.inputs.split(","):
            f, t = SHAPES[name]
            label = f"{name} 1x{f}x{t}"
            x = rng.normal(size=(args.samples, 1, f, t)).astype(np.float32)
            y = rng.integers(0, 4, args.samples)
            plain = plain_loop(args.arch, x, y, args.batch_size, device)
            kit = partial(kit_path, args.arch, x, y, args.batch_size, device, precision=args.precision)
            runs = [(*kit(Path(tmp) / f"{f}x{t}"), 1)]
            if args.compile:
                runs.append((*kit(Path(tmp) / f"c{f}x{t}", True), 1))
            if args.procs > 1:
                work = f"{tmp}/procs{f}x{t}"
                rate, startup = concurrent_rate(
                    args.procs,
                    args.arch,
                    (f, t),
                    args.samples,
                    args.batch_size,
                    device,
                    work,
                    args.compile,
                    args.precision,
                )
                runs.append((rate, startup, 0.0, 0.0, 0.0, args.procs))  # their window holds most checkpoint writes
            if args.pack > 1:
                work = Path(tmp) / f"pack{f}x{t}"
                rate = kit(work, args.compile, pack=args.pack)
                runs.append((*rate, args.pack))
            rates = [r for r, *_ in runs]
            console.print(f"{label}: plain {plain:.1f}, kit " + ", ".join(f"{r:.1f}" for r in rates) + " samples/s")
            table.add_row(label, f"{plain:.1f}", *(f"{r:.1f}" for r in rates), f"{max(rates) / plain:.2f}×")
            if name == "fbank":
                best_fbank = max(runs)
    console.print(table)
    rate, startup, copy, write, tail, together = best_fbank
    if rate:
        trainings = 20 / together
        epoch_s = together * 11886 / rate  # a real epoch of the packed (or single) training
        unhidden = max(0.0, write - epoch_s)  # the part of a write the next epoch does not cover
        train_min = 20 * 20 * 11886 / rate / 60
        rest_min = trainings * (startup + 20 * copy + 19 * unhidden + tail) / 60
        console.print(
            f"entrant A's recipe (20 x {args.arch} x 20 epochs x 11,886 clips of 299x40) at kit's best fbank rate "
            f"({rate:.0f} samples/s, {together} models at once, {epoch_s:.1f} s per epoch): {train_min:.1f} min "
            f"training + {rest_min:.1f} min start-up and checkpoints (20 / {together} x ({startup:.0f} s start-up"
            f" + 20 x {copy:.1f} s copy + 19 x {unhidden:.1f} s of a {write:.1f} s write not hidden by an epoch"
            f" + {tail:.1f} s last write and predictions)) = {train_min + rest_min:.1f} min on {device}"
        )


if __name__ == "__main__":
    main()
