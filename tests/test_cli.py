"""The `kit` entry point: fast help, heavy imports deferred, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys; from kit.cli.app import app; print(sorted(m for m in ('torch', 'librosa', 'kaggle', 'timm', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kit", "--help"], capture_output=True, text=True)
    assert time.perf_counter() - start < 2.0
    assert result.returncode == 0 and "features" in result.stdout and "data" in result.stdout


def test_user_error_is_one_line_on_stderr_exit_1(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "kit", "data", "check", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such file or directory (run `kit data demo` or `kit data download`)"
    ]


def test_download_without_a_slug(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kit", "data", "download"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "no competition slug: set data.competition in params.yaml, or pass --competition SLUG" in result.stderr


def test_help_shows_where_defaults_come_from():
    result = subprocess.run(
        [sys.executable, "-m", "kit", "features", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "(params: data.root)" in result.stdout and "(params: features.out)" in result.stdout
