"""Safe archive extraction: zip and tar, nested zips, never a path outside the target.

Every member is checked before anything is written (absolute paths, `..`, links pointing
outside, members written through links); one bad member refuses the whole archive.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from kit.errors import KitError
from kit.kaggle_client import one_line

MAX_NESTING = 3  # zips inside zips inside zips... deeper than this is refused


def _member_target(dest: Path, name: str) -> Path | None:
    """Where member `name` lands under `dest`, or None when it escapes (absolute, drive, ..)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return None
    parts = [p for p in PurePosixPath(norm).parts if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            return None
    if ".." in parts:  # harmless-looking a/../b is still refused: no archive needs it
        return None
    return dest.joinpath(*parts) if parts else dest


def _rel_inside(base_parts: list[str], link: str) -> list[str] | None:
    """Resolve symlink text `link` found in folder `base_parts` lexically; None when it leaves the root."""
    if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
        return None
    parts = list(base_parts)
    for part in PurePosixPath(link.replace("\\", "/")).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return parts


def _refuse(archive: Path, member: str, why: str) -> KitError:
    return KitError(f"refusing to extract {archive.name}: member {member!r} {why}; nothing was extracted")


def _skip(name: str) -> bool:
    return name.replace("\\", "/").startswith("__MACOSX/")


def _check_space(archive: Path, dest: Path, total: int) -> None:
    probe = dest
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if total > free:
        raise KitError(
            f"not enough disk space to extract {archive.name}: needs {total / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB free at {probe}"
        )


def _plan_zip(archive: Path, zf: zipfile.ZipFile, dest: Path) -> list[tuple[zipfile.ZipInfo, Path]]:
    plan = []
    total = 0
    for info in zf.infolist():
        if _skip(info.filename):
            continue
        target = _member_target(dest, info.filename)
        if target is None:
            raise _refuse(archive, info.filename, "escapes the destination folder (absolute path or ..)")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            link = zf.read(info).decode("utf-8", "replace")
            rel = target.relative_to(dest).parts
            if _rel_inside(list(rel[:-1]), link) is None:
                raise _refuse(archive, info.filename, f"is a symlink pointing outside ({link!r})")
        total += info.file_size
        plan.append((info, target))
    _check_space(archive, dest, total)
    return plan


def _plan_tar(archive: Path, tf: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    members = [m for m in tf.getmembers() if not _skip(m.name)]
    links = {
        tuple(_member_target(dest, m.name).relative_to(dest).parts)
        for m in members
        if m.issym() and _member_target(dest, m.name) is not None
    }

    def through_link(parts: list[str] | tuple[str, ...]) -> bool:
        return any(tuple(parts[:i]) in links for i in range(1, len(parts)))

    total = 0
    for m in members:
        target = _member_target(dest, m.name)
        if target is None:
            raise _refuse(archive, m.name, "escapes the destination folder (absolute path or ..)")
        rel = list(target.relative_to(dest).parts)
        if through_link(rel):
            raise _refuse(archive, m.name, "is written through a symlink")
        if m.issym():
            resolved = _rel_inside(rel[:-1], m.linkname)
            if resolved is None or through_link(resolved + ["x"]):
                raise _refuse(archive, m.name, f"is a symlink pointing outside ({m.linkname!r})")
        elif m.islnk():
            resolved = _rel_inside([], m.linkname)
            if resolved is None or through_link(resolved + ["x"]):
                raise _refuse(archive, m.name, f"is a hard link pointing outside ({m.linkname!r})")
        elif not (m.isfile() or m.isdir()):
            raise _refuse(archive, m.name, "is a device or special file")
        total += m.size
    _check_space(archive, dest, total)
    return members


def _extract_one(archive: Path, dest: Path) -> list[Path]:
    """Extract one archive into dest (all members checked first); return the top-level entries made."""
    dest.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in dest.iterdir()}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                plan = _plan_zip(archive, zf, dest)
                for info, target in plan:
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = _plan_tar(archive, tf, dest)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(dest, members=members, **kwargs)
        else:
            raise KitError(f"{archive.name} is not a zip or tar archive (corrupted download?): download it again")
    except KitError:
        _remove_new(dest, before)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zipfile.LargeZipFile) as e:
        _remove_new(dest, before)
        raise KitError(f"{archive.name} is corrupt ({one_line(e, 120)}): download it again") from None
    except OSError as e:
        _remove_new(dest, before)
        raise KitError(f"cannot extract {archive.name} into {dest} ({one_line(e, 160)})") from None
    except BaseException:
        _remove_new(dest, before)
        raise
    return sorted(p for p in dest.iterdir() if p.name not in before)


def _remove_new(dest: Path, before: set[str]) -> None:
    if not dest.is_dir():
        return
    for p in dest.iterdir():
        if p.name not in before:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


def _single_top_folder(archive: Path) -> str | None:
    """The one top-level folder all of a zip's members sit under, or None."""
    with zipfile.ZipFile(archive) as zf:
        names = [n.replace("\\", "/") for n in zf.namelist() if not _skip(n) and n.strip("/")]
    tops = {PurePosixPath(n).parts[0] for n in names}
    if len(tops) != 1:
        return None
    (top,) = tops
    return top if all(n.startswith(top + "/") for n in names) else None


def _zips_in(entries: list[Path]) -> list[Path]:
    found = []
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_file() and entry.suffix.lower() == ".zip":
            found.append(entry)
        elif entry.is_dir():
            for folder, _, names in os.walk(entry):  # does not follow symlinks
                found += [Path(folder, n) for n in sorted(names) if n.lower().endswith(".zip")]
    return [z for z in found if not z.is_symlink() and zipfile.is_zipfile(z)]


def _expand_nested(entries: list[Path], depth: int) -> None:
    """Unpack the zips among `entries` in place (same checks as the outer archive), then delete them."""
    for nested in _zips_in(entries):
        if depth > MAX_NESTING:
            raise KitError(f"refusing to extract {nested.name}: zips nested more than {MAX_NESTING} deep")
        # train_mp3s.zip holding train_mp3s/... lands beside it; a bare list of files gets its own folder.
        top = _single_top_folder(nested)
        into = nested.parent if top else nested.with_suffix("")
        _extract_one(nested, into)
        nested.unlink()
        _expand_nested([into / top] if top else [into], depth + 1)


def _looks_like_wrapper(folder: Path, archive: Path) -> bool:
    """A lone top folder that wraps a dataset (named like the archive, or holding mixed content)."""
    if folder.name.lower() == archive.name.split(".")[0].lower():
        return True
    entries = list(folder.iterdir())
    kinds = {p.suffix.lower() for p in entries if p.is_file()}
    return any(p.is_dir() for p in entries) or len(kinds) > 1


def _flatten(dest: Path, top: Path) -> None:
    hold = dest / f".flatten-{os.getpid()}-{top.name}"
    os.replace(top, hold)
    for child in hold.iterdir():
        os.replace(child, dest / child.name)
    hold.rmdir()


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Extract a zip (or tar/tar.gz) into `dest`, refusing any member that would escape it.

    All members are checked before anything is written: an absolute path, a `..` component or a
    symlink/hard link pointing outside `dest` raises a KitError naming the member, and nothing is
    extracted. Zips inside the archive are unpacked in place (same checks) and removed. If the
    archive held one top-level folder wrapping the dataset, its contents are moved up into `dest`.
    Returns the files now under `dest` that came from the archive, sorted.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise KitError(f"archive {archive} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in dest.iterdir()}
    made = _extract_one(archive, dest)
    try:
        _expand_nested(made, 1)
        made = sorted(p for p in dest.iterdir() if p.name not in before)
        if not before and len(made) == 1 and made[0].is_dir() and not made[0].is_symlink():
            if _looks_like_wrapper(made[0], archive):
                _flatten(dest, made[0])
                made = sorted(dest.iterdir())
    except BaseException:
        _remove_new(dest, before)
        raise
    files: list[Path] = []
    for entry in made:
        if entry.is_dir() and not entry.is_symlink():
            files.extend(p for p in entry.rglob("*") if not p.is_dir() or p.is_symlink())
        else:
            files.append(entry)
    return sorted(files)
