"""Atomic writes: build under a temporary name beside the target, then rename.

A reader sees the old version or the new one, never a half-written file or folder. What lands gets
the modes any other tool's output gets under the user's umask (files 0666 & ~umask, folders 0777 &
~umask), whatever the libraries that wrote into it chose (mkdtemp's 0700, a writer's 0600).

Temporary names carry their writer (`.NAME.tmp-HOST-PID-RANDOM`, `.NAME.old-HOST-PID`), and every
write of NAME first clears what writers killed on this machine left beside it (`clear_leftovers`):
kill -9 leaves nothing behind for longer than the next run of the same command. Readers skip
dot-names, so a leftover is never taken for a result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from kit.errors import KitError


@contextlib.contextmanager
def atomic_dir(target: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temp folder; on success it replaces `target` whole, on error it is removed.
    replace=False: a non-empty `target` that exists by then stays, and FileExistsError is raised
    (one rename: no other process can land it in between)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))
    try:
        yield tmp
        usual_modes(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(exc):
            raise _full(target) from None
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
        old = target.parent / f".{target.name}.old-{_HOST}-{os.getpid()}"
        os.replace(target, old)  # a kill before the next rename leaves `target` only there: see set_aside
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def version(folder: Path) -> tuple[int, ...] | None:
    """Which landed version of a folder that `atomic_dir` replaces whole is at `folder` now (None: none
    is): each landing is a new folder, so a reader that sees the same version before and after it
    read has read one version, never a mix of two."""
    try:
        st, meta = os.stat(folder), os.stat(Path(folder) / "meta.json")
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, meta.st_ino, meta.st_mtime_ns, meta.st_size


def set_aside(target: Path) -> list[Path]:
    """Earlier versions of `target` that `atomic_dir` moved aside and a kill left there (between its
    two renames, `target` itself is missing): complete folders, newest first."""
    found = Path(target).parent.glob(f".{Path(target).name}.old-*")
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


_HOST = platform.node().replace("/", "_") or "localhost"


def temp_prefix(target: Path) -> str:
    """The name prefix of this process's temporary copies of `target` (a random part follows)."""
    return f".{Path(target).name}.tmp-{_HOST}-{os.getpid()}-"


def clear_leftovers(target: Path) -> list[Path]:
    """Remove the temporary copies of `target` that writers killed on this machine left beside it,
    and the versions they set aside; when `target` itself went missing (a kill between the two
    renames of a replace), the newest version set aside is put back first. Returns what was removed.
    Leftovers of live processes, and of other machines sharing the folder, are left alone."""
    target = Path(target)
    try:
        found = [p for p in target.parent.iterdir() if _stale(p, target.name)]
    except OSError:
        return []
    olds = sorted((p for p in found if ".old-" in p.name), key=_mtime, reverse=True)
    if olds and not target.exists():
        try:
            os.rename(olds[0], target)
        except OSError:  # someone else is landing `target` now: keep every set-aside version
            found = [p for p in found if p not in olds]
        else:
            found.remove(olds[0])
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed meanwhile by another cleaner
        return 0


def _stale(path: Path, name: str) -> bool:
    """`path` is a temporary copy or a set-aside version of `name` whose writer on this host is gone."""
    for kind, parts in ((".tmp-", 3), (".old-", 2)):
        if path.name.startswith(f".{name}{kind}"):
            fields = path.name[len(name) + 1 + len(kind) :].rsplit("-", parts - 1)
            if len(fields) == parts and fields[0] == _HOST and fields[1].isdigit():
                return not _alive(int(fields[1]))
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def atomic_write(path: Path, data: bytes) -> None:
    """Write `path` whole (synced to disk) or leave it as it was; the file gets the usual mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(path)
    tmp = path.with_name(f"{temp_prefix(path)}{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if disk_full(exc):
            raise _full(path) from None
        raise


def disk_full(exc: BaseException | None) -> bool:
    """`exc`, or what caused it, is a write that found the disk (or the user's quota) full: an OSError,
    or a library's own error that says so (safetensors' Rust I/O)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(exc) for words in ("No space left on device", "Disk quota exceeded")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _full(target: Path) -> KitError:
    return KitError(
        f"no space left on the device of {Path(target).parent}/ while writing {Path(target).name}: "
        "nothing half-written was kept; free some space there and rerun"
    )


def reserve(path: Path, nbytes: int) -> None:
    """Allocate `nbytes` for the file at `path` now, so that a full disk is an OSError here and not
    a SIGBUS later, when a memory-mapped write finds no block to land in."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a filesystem that cannot say
            raise
    finally:
        os.close(fd)


def need_space(folder: Path, nbytes: int, what: str) -> None:
    """KitError when the device of `folder` (or its nearest existing parent) has less than `nbytes` free."""
    where = Path(folder).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < nbytes:
        raise KitError(
            f"{folder}: {what} needs {_size(nbytes)} but its device has {_size(free)} free: "
            "free some space, or choose another folder"
        )


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


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"
