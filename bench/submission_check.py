"""Benchmark: `kit submission check` on a huge CSV (every row a problem) against a contest-sized test set.

    python bench/submission_check.py [--rows 3000000] [--test-ids 2447]

Writes a temp `id,category` file of --rows rows whose ids are not test ids, then times the whole
command (a fresh `kit` process, as a user runs it) and counts the lines it printed: checking is
linear in the rows, the report is a screenful whatever their number.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--test-ids", type=int, default=2447)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"  # the contest layout; the check reads the test ids, never the audio
        for split in ("train", "test"):
            (data / f"{split}_mp3s").mkdir(parents=True)
        for i in range(args.test_ids):
            (data / "test_mp3s" / f"{i}.mp3").touch()
        (data / "train_mp3s" / "0.mp3").touch()
        (data / "train_label.txt").write_text("0\n")
        big = root / "big.csv"
        with big.open("w") as f:
            f.write("id,category\n")
            f.writelines(f"x{i},{i % 4}\n" for i in range(args.rows))
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "kit", "submission", "check", str(big), "--data", str(data)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
        seconds = time.perf_counter() - start
    lines = done.stdout.splitlines()
    print(f"{args.rows:,} rows checked in {seconds:.2f} s ({args.rows / seconds:,.0f} rows/s); exit {done.returncode}")
    print(f"{len(lines)} lines printed; the last: {lines[-1] if lines else done.stderr.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
