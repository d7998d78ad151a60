"""Copy a local dataset folder into the project (the pipeline's data stage, data.source: path)."""

from __future__ import annotations

import shutil
from pathlib import Path

from kit.atomic import atomic_dir
from kit.errors import KitError


def copy_dataset(src: Path, dst: Path) -> int:
    """Copy `src` (a dataset folder) to `dst` atomically; returns the number of files."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise KitError(f"data.path: {src} is not a folder")
    if dst.resolve().is_relative_to(src.resolve()) or src.resolve().is_relative_to(dst.resolve()):
        raise KitError(f"data.path {src} and data.root {dst} overlap: choose a root outside the source")
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, symlinks=False)
    return sum(1 for f in dst.rglob("*") if f.is_file())
