"""A full disk: one line naming the folder, exit 1, and no temp files left to keep the disk full.

The full disk is injected where the write meets it (the allocation of the store's memory-mapped
rows, a checkpoint's safetensors write, a file's fsync, the free-space figure); every other step
runs for real. Checked by hand on a 2 MB tmpfs too: SIGBUS before, these messages now.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections import namedtuple

from audio import contest
from stores import tiny_store
from typer.testing import CliRunner

from kit.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "300"}
FULL = OSError(errno.ENOSPC, "No space left on device")
TRAIN = ["train", "cnn4", "--epochs", "2", "--sum-mix", "0", "--filter-db", "0", "--voice-weight", "0"]


def _leftovers(root) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


def _one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_features_checks_free_space_before_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "raw")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    result = runner.invoke(app, ["features", "--data", "raw", "--input", "mix", "--no-voice"], env=ENV)
    assert _one_error(result).startswith("error: data/features: the feature store needs 1.")
    assert "MB but its device has 0.0 MB free: free some space, or choose another folder" in result.output
    assert not (tmp_path / "data").exists()


def test_features_meeting_a_full_disk_mid_write_is_an_error_not_a_sigbus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "raw")

    def full(fd, offset, length):
        raise FULL

    monkeypatch.setattr(os, "posix_fallocate", full)
    result = runner.invoke(app, ["features", "--data", "raw", "--input", "mix", "--no-voice"], env=ENV)
    assert _one_error(result) == (
        "error: no space left on the device of data/ while writing features: nothing half-written was kept; "
        "free some space there and rerun"
    )
    assert not (tmp_path / "data" / "features").exists() and _leftovers(tmp_path) == []


def test_training_meeting_a_full_disk_names_the_folder_and_keeps_nothing_half_written(tmp_path, monkeypatch):
    import safetensors.torch

    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features")

    def full(*args, **kwargs):  # what safetensors' Rust writer raises
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    error = _one_error(runner.invoke(app, TRAIN, env=ENV))
    assert error.startswith("error: no space left on the device of ") and "free some space there and rerun" in error
    assert _leftovers(tmp_path) == [] and not (tmp_path / "artifacts" / "runs").exists()


def test_an_ensemble_meeting_a_full_disk_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features")
    assert runner.invoke(app, [*TRAIN, "--seed", "0"]).exit_code == 0

    def full(fd):
        raise FULL

    monkeypatch.setattr(os, "fsync", full)  # atomic_write: the bytes reach the disk here
    assert _one_error(runner.invoke(app, ["ensemble", "--name", "blend"], env=ENV)) == (
        "error: no space left on the device of submissions/ while writing blend.json: nothing half-written was "
        "kept; free some space there and rerun"
    )
    assert _leftovers(tmp_path) == [] and list((tmp_path / "submissions").iterdir()) == []
