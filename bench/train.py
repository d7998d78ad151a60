"""Benchmark: training samples/s, a plain fp32 eager DataLoader loop vs kit's training path.

    python bench/train.py [--arch resnet34] [--samples 256] [--batch-size 32] [--device auto]
                          [--compile] [--procs N]

Same process, same model, same synthetic inputs; each path's second epoch is timed of both shapes the seeds used (1x128x130
log-mel, 1x299x40 filterbank). The plain loop: float32 TensorDataset + DataLoader(shuffle) +
AdamW + cross-entropy. kit: `kit.training.loop.fit_fold` for one epoch (float16 feature tensor
held on the device, SpecAugment on the batch, channels_last, bf16 autocast on CUDA), with a
tiny validation fold so the figure is training throughput. `--compile` adds kit with
`train.compile: true` (torch.compile). `--procs N` also runs N kit trainings (not compiled) at
once on the same device, as `dvc queue start -j N` or N `kit train` commands would, and reports
their summed rate. Each figure is printed as soon as it is measured.
The seed-A recipe (20 ResNet34 x 20 epochs x 11,886 clips of 299x40) is extrapolated from kit's
best measured fbank rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SHAPES = {"logmel 1x128x130": (128, 130), "fbank 1x299x40": (299, 40)}


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


def kit_path(arch: str, x, y, batch_size: int, device, work: Path, compile: bool = False) -> float:
    import torch

    from kit.config import TrainParams
    from kit.training.loop import Fold, fit_fold

    p = dataclasses.replace(
        TrainParams(), arch=arch, epochs=2, batch_size=batch_size, scheduler="none", compile=compile
    )
    xt = torch.from_numpy(x.astype(np.float16)).to(device)
    yt = torch.from_numpy(y).to(device)
    train_idx, val_idx = np.arange(len(x) - 8), np.arange(len(x) - 8, len(x))
    fold = Fold(xt, yt, train_idx, val_idx, None, num_classes=4)
    result = fit_fold(fold, p, arch, 0, device, work)
    return len(train_idx) / result.history[-1]["seconds"]  # epoch 2: kernels, graphs, allocator warm


def _worker(args) -> float:
    """One of --procs concurrent trainings (a fresh process each)."""
    arch, shape, samples, batch_size, device_name, work = args
    import torch

    device = torch.device(device_name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 1, *shape)).astype(np.float32)
    y = rng.integers(0, 4, samples)
    return kit_path(arch, x, y, batch_size, device, Path(work))


def concurrent_rate(procs: int, arch: str, shape, samples: int, batch_size: int, device, tmp: str) -> float:
    """Summed samples/s of `procs` trainings running at once (each measures its own epoch)."""
    import multiprocessing as mp

    jobs = [(arch, shape, samples, batch_size, str(device), f"{tmp}/p{i}") for i in range(procs)]
    with mp.get_context("spawn").Pool(procs) as pool:
        return sum(pool.map(_worker, jobs))


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
    args = ap.parse_args()

    import torch

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    rng = np.random.default_rng(0)
    table = Table(
        title=f"{args.arch} training throughput on {device} ({torch.get_num_threads()} threads), "
        f"batch {args.batch_size}, {args.samples} samples"
    )
    cols = ["input", "plain fp32 loop, samples/s", "kit, samples/s"]
    cols += ["kit + compile, samples/s"] if args.compile else []
    cols += [f"{args.procs} x kit at once, samples/s"] if args.procs > 1 else []
    for col in (*cols, "best speed-up"):
        table.add_column(col, justify="left" if col == "input" else "right")
    best_fbank = 0.0
    console = Console()
    with tempfile.TemporaryDirectory(prefix="kit-bench-train-") as tmp:
        for name, (f, t) in SHAPES.items():
            x = rng.normal(size=(args.samples, 1, f, t)).astype(np.float32)
            y = rng.integers(0, 4, args.samples)
            plain = plain_loop(args.arch, x, y, args.batch_size, device)
            rates = [kit_path(args.arch, x, y, args.batch_size, device, Path(tmp) / f"{f}x{t}")]
            if args.compile:
                rates.append(kit_path(args.arch, x, y, args.batch_size, device, Path(tmp) / f"c{f}x{t}", True))
            if args.procs > 1:
                rates.append(
                    concurrent_rate(
                        args.procs,
                        args.arch,
                        (f, t),
                        args.samples,
                        args.batch_size,
                        device,
                        f"{tmp}/procs{f}x{t}",
                    )
                )
            console.print(f"{name}: plain {plain:.1f}, kit " + ", ".join(f"{r:.1f}" for r in rates) + " samples/s")
            table.add_row(name, f"{plain:.1f}", *(f"{r:.1f}" for r in rates), f"{max(rates) / plain:.2f}×")
            if name.startswith("fbank"):
                best_fbank = max(rates)
    console.print(table)
    console.print(
        f"seed-A recipe (20 x {args.arch} x 20 epochs x 11,886 clips of 299x40) at kit's rate: "
        f"{20 * 20 * 11886 / best_fbank / 60:.1f} min on {device}"
    )


if __name__ == "__main__":
    main()
