"""Folders as values that travel between Ray nodes without a shared filesystem: {relative path: bytes}."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from kit.errors import KitError


def pack(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its path relative to it."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def unpack(files: dict[str, bytes], dest: Path) -> None:
    """Write `files` under `dest`; a path that would leave it (absolute, '..') is refused."""
    dest = Path(dest)
    for name, data in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise KitError(f"refusing to unpack {name!r}: not a path inside {dest}")
        target = dest.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
