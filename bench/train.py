"""Benchmark: training samples/s, a plain fp32 eager DataLoader loop vs kit's training path.

    python bench/train.py [--arch resnet34] [--samples 256] [--batch-size 32] [--device auto]

Same process, same model, same synthetic inputs of both shapes the seeds used (1x128x130
log-mel, 1x299x40 filterbank). The plain loop: float32 TensorDataset + DataLoader(shuffle) +
AdamW + cross-entropy. kit: `kit.training.loop.fit_fold` for one epoch (float16 feature tensor
held on the device, SpecAugment on the batch, bf16 autocast + channels_last on CUDA), with a
tiny validation fold so the figure is training throughput. The seed-A recipe (20 ResNet34 x
20 epochs x 11,886 clips of 299x40) is extrapolated from kit's measured fbank rate.
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


def kit_path(arch: str, x, y, batch_size: int, device, work: Path) -> float:
    import torch

    from kit.config import TrainParams
    from kit.training.loop import Fold, fit_fold

    p = dataclasses.replace(TrainParams(), arch=arch, epochs=1, batch_size=batch_size, scheduler="none")
    xt = torch.from_numpy(x.astype(np.float16)).to(device)
    yt = torch.from_numpy(y).to(device)
    train_idx, val_idx = np.arange(len(x) - 8), np.arange(len(x) - 8, len(x))
    fold = Fold(xt, yt, train_idx, val_idx, None, time_dim=3, freq_dim=2, num_classes=4)
    result = fit_fold(fold, p, arch, 0, device, work)
    return (len(train_idx) // batch_size * batch_size) / result.history[0]["seconds"]


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
    for col in ("input", "plain fp32 loop, samples/s", "kit, samples/s", "speed-up"):
        table.add_column(col, justify="left" if col == "input" else "right")
    estimates = []
    with tempfile.TemporaryDirectory(prefix="kit-bench-train-") as tmp:
        for name, (f, t) in SHAPES.items():
            x = rng.normal(size=(args.samples, 1, f, t)).astype(np.float32)
            y = rng.integers(0, 4, args.samples)
            kit_path(
                args.arch,
                x[: args.batch_size * 2],
                y[: args.batch_size * 2],
                args.batch_size,
                device,
                Path(tmp) / f"warm-{f}x{t}",
            )  # warm-up: kernels, allocator
            plain = plain_loop(args.arch, x, y, args.batch_size, device)
            ours = kit_path(args.arch, x, y, args.batch_size, device, Path(tmp) / f"{f}x{t}")
            table.add_row(name, f"{plain:.1f}", f"{ours:.1f}", f"{ours / plain:.2f}×")
            if name.startswith("fbank"):
                estimates.append(20 * 20 * 11886 / ours)
    console = Console()
    console.print(table)
    console.print(
        f"seed-A recipe (20 x {args.arch} x 20 epochs x 11,886 clips of 299x40) at kit's rate: "
        f"{estimates[0] / 60:.1f} min on {device}"
    )


if __name__ == "__main__":
    main()
