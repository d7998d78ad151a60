"""Atomic writes: build under a temporary name beside the target, then rename.

A reader sees the old version or the new one, never a half-written file or folder. What lands gets
the modes any other tool's output gets under the user's umask (files 0666 & ~umask, folders 0777 &
~umask), whatever the libraries that wrote into it chose (mkdtemp's 0700, a writer's 0600).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temp folder; on success it replaces `target` whole, on error it is removed.
    replace=False: a non-empty `target` that exists by then stays, and FileExistsError is raised
    (one rename: no other process can land it in between)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        usual_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not replace:
        try:
            os.rename(tmp, target)  # fails on a non-empty folder
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(target) from None
        return
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)  # a kill before the next rename leaves `target` only there: see set_aside
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def set_aside(target: Path) -> list[Path]:
    """Earlier versions of `target` that `atomic_dir` moved aside and a kill left there (between its
    two renames, `target` itself is missing): complete folders, newest first."""
    found = Path(target).parent.glob(f".{Path(target).name}.old-*")
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `path` whole (synced to disk) or leave it as it was; the file gets the usual mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _proc_umask() -> int | None:
    """The umask as Linux reports it in /proc/self/status (kernel 4.7+), or None."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return None


# Where /proc cannot tell, the only way to read the umask is to set it and put it back, which
# briefly changes it for every thread: done once, here at import (before kit starts threads).
_IMPORT_UMASK: int | None = None
if _proc_umask() is None:
    _IMPORT_UMASK = os.umask(0o022)
    os.umask(_IMPORT_UMASK)


def umask() -> int:
    """The process's umask, read without changing it: the modes every file kit lands gets come
    from here (see usual_modes). Linux: read live from /proc; elsewhere the umask at import."""
    mask = _proc_umask()
    return _IMPORT_UMASK if mask is None else mask


def usual_modes(root: Path) -> None:
    """Give `root` and everything under it the modes the umask gives new files and folders."""
    mask = umask()
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)
