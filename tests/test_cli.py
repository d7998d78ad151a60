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


def test_library_warnings_are_not_printed_unless_asked_for(tmp_path):
    """A clean machine's audio back-end or a deprecation warns from inside a library: not kit's words."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(  # a library that warns each time it writes a clip
        "import warnings, soundfile\n"
        "_write = soundfile.write\n"
        "def write(*a, **k):\n"
        "    warnings.warn('PySoundFile failed. Trying audioread instead.', UserWarning)\n"
        "    warnings.warn('__audioread_load is deprecated', FutureWarning)\n"
        "    return _write(*a, **k)\n"
        "soundfile.write = write\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env |= {"PYTHONPATH": str(hook), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "kit", "data", "demo", "--n-train", "8", "--n-test", "4"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert quiet.returncode == 0 and "written in" in quiet.stdout
    assert "Warning" not in quiet.stdout + quiet.stderr and "audioread" not in quiet.stdout + quiet.stderr
    asked = subprocess.run(
        [*cmd, "--out", "again"], capture_output=True, text=True, cwd=tmp_path, env=env | {"PYTHONWARNINGS": "default"}
    )
    assert asked.returncode == 0 and "UserWarning: PySoundFile failed" in asked.stderr  # the hook did fire


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
