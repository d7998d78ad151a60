"""kill -9 leaves temp copies and set-aside versions behind: the next write of the same target clears them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kit.atomic import atomic_dir, atomic_write, clear_leftovers

# a writer that dies mid-write: `mode` says where it is when the kill lands
WRITER = r"""
import os, sys, time
from pathlib import Path
from kit.atomic import atomic_dir, atomic_write
target, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "between-renames":  # atomic_dir's replace: target -> .old, then tmp -> target
    real = os.replace
    def slow(src, dst):
        real(src, dst)
        if ".old-" in str(dst):
            print("ready", flush=True); time.sleep(60)
    os.replace = slow
if mode == "file":
    import kit.atomic
    kit.atomic.os.fsync = lambda fd: (print("ready", flush=True), time.sleep(60))
    atomic_write(target, b"new")
with atomic_dir(target) as tmp:
    (tmp / "part").write_text("new")
    if mode == "mid-write":
        print("ready", flush=True); time.sleep(60)
"""


def _killed(target, mode: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), mode], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def _beside(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("mode", ["mid-write", "between-renames", "file"])
def test_what_a_killed_writer_left_is_cleared_by_the_next_write(tmp_path, mode):
    target = tmp_path / "out"
    if mode == "file":
        atomic_write(target, b"old")
    else:
        with atomic_dir(target) as tmp:
            (tmp / "part").write_text("old")
    _killed(target, mode)
    left = [n for n in _beside(tmp_path) if n != "out"]
    assert left and all(n.startswith(".out.tmp-") or n.startswith(".out.old-") for n in left), left
    if mode == "between-renames":
        assert not target.exists()  # killed between the renames: only the set-aside copy holds the data
        assert clear_leftovers(target) and (target / "part").read_text() == "old"  # put back, then cleared
    elif mode == "file":
        atomic_write(target, b"newer")
        assert target.read_bytes() == b"newer"
    else:
        with atomic_dir(target) as tmp:
            (tmp / "part").write_text("newer")
        assert (target / "part").read_text() == "newer"
    assert _beside(tmp_path) == ["out"]


def test_a_live_writers_temp_copy_and_other_names_are_left_alone(tmp_path):
    target = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), "mid-write"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        (tmp_path / ".out.tmp-elsewhere-1-abc").mkdir()  # another machine's, on a shared disk
        (tmp_path / ".other.tmp-x").mkdir()
        with atomic_dir(target) as tmp:
            (tmp / "part").write_text("mine")
        left = _beside(tmp_path)
        assert len([n for n in left if n.startswith(f".out.tmp-{os.uname().nodename}-{child.pid}-")]) == 1
        assert ".out.tmp-elsewhere-1-abc" in left and ".other.tmp-x" in left
    finally:
        child.kill()
        child.wait()


def test_kit_data_demo_killed_then_rerun_leaves_nothing_behind(tmp_path):
    cmd = [sys.executable, "-m", "kit", "data", "demo", "--n-train", "400", "--n-test", "40"]
    child = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list((tmp_path / "data").glob(".raw.tmp-*/train_mp3s/*.mp3")) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert [p.name.split("-")[0] for p in (tmp_path / "data").iterdir()] == [".raw.tmp"]  # killed mid-write
    again = subprocess.run([*cmd[:5], "--n-train", "8", "--n-test", "4"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]
