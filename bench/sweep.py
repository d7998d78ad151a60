"""Benchmark: N trainings one after another (`kit train`, each with every core) against the same N
as one `kit sweep` on Ray (each with `--cpus-per-run` cores, as many at once as fit), same runs,
same process, on the demo features. Prints one table and the ratio.

    python bench/sweep.py [--runs 4 --arch cnn4 --epochs 4 --cpus-per-run 1]
    python bench/sweep.py --device cuda --gpus-per-run 0.25 --runs 8     # several trials per GPU

The sweep's time includes starting and stopping its local Ray, as a user waits for it. Both sides
train exactly the same runs (same keys): the runs of each side land in their own folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path


def demo_store(root: Path, n_train: int) -> Path:
    """The built-in demo set, dsp vocals, log-mel of mix + vocals (no voice embeddings: not timed here)."""
    from typer.testing import CliRunner

    from kit.cli.app import app

    runner = CliRunner()
    os.chdir(root)
    (root / "params.yaml").write_text("features:\n  voice:\n    embed: false\n")
    for args in (["data", "demo", "--n-train", str(n_train), "--n-test", "40"], ["separate"], ["features"]):
        result = runner.invoke(app, args)
        if result.exit_code != 0:
            sys.exit(result.output)
    return root / "data" / "features"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="trainings (seeds 0..N-1)")
    ap.add_argument("--arch", default="cnn4")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=240, help="demo train clips")
    ap.add_argument("--cpus-per-run", type=float, default=1.0)
    ap.add_argument("--gpus-per-run", type=float, default=0.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from kit.params import SweepParams, TrainParams, VoiceHeadParams
    from kit.sweep.driver import Trial, plan, run
    from kit.training.run import train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = demo_store(root, args.n_train)
        base = dataclasses.replace(
            TrainParams(), arch=args.arch, epochs=args.epochs, features=str(store), device=args.device,
            voice=VoiceHeadParams(weight=0.0),
        )  # fmt: skip
        trials = [dataclasses.replace(base, seed=s) for s in range(args.runs)]

        start = time.perf_counter()
        for p in trials:
            train(dataclasses.replace(p, runs=str(root / "serial" / "runs")))
        serial = time.perf_counter() - start

        import ray

        sp = SweepParams(cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
        runs = root / "swept" / "runs"
        states = plan([Trial(f"s{p.seed}", dataclasses.replace(p, runs=str(runs))) for p in trials])
        start = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")  # as kit sweep starts it
        up = time.perf_counter()
        run(states, sp, runs, lambda: None)
        done = time.perf_counter()
        ray.shutdown()
        swept, trainings, ray_s = time.perf_counter() - start, done - up, (up - start) + (time.perf_counter() - done)
        failed = [f"{s.trial.label}: {s.error}" for s in states if s.state != "done"]
        if failed:
            sys.exit("sweep failed: " + "; ".join(failed))

    cores = os.cpu_count()
    table = Table(title=f"{args.runs} x {args.arch}, {args.epochs} epochs, {args.n_train} demo clips, {cores} cores")
    for col in ("how", "at once", "seconds", "runs / min", "speed-up"):
        table.add_column(col, justify="left" if col == "how" else "right")
    at_once = int(cores // args.cpus_per_run) if not args.gpus_per_run else int(1 // args.gpus_per_run)
    table.add_row("kit train, one after another", "1", f"{serial:.1f}", f"{60 * args.runs / serial:.2f}", "1.00x")
    sweep = f"kit sweep (--cpus-per-run {args.cpus_per_run:g})"
    for how, seconds in ((sweep, swept), ("  its trainings alone (Ray up)", trainings)):
        row = (
            str(min(at_once, args.runs)),
            f"{seconds:.1f}",
            f"{60 * args.runs / seconds:.2f}",
            f"{serial / seconds:.2f}x",
        )
        table.add_row(how, *row)
    Console().print(table)
    print(f"Ray start + stop: {ray_s:.1f} s")


if __name__ == "__main__":
    main()
