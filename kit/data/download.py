"""Download a Kaggle competition's data into a folder, safely and atomically.

`download_competition` asks the real `kaggle` client for the competition archive, unpacks it
with `safe_extract` and moves the result into place in one rename: `out/` holds the old data
or the whole new data, never half of it. Every problem the user can fix (no credentials,
offline, rules not accepted, wrong slug, rate limit, corrupt archive) is a one-line `KitError`.

"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

from kit.atomic import atomic_dir, clear_leftovers, temp_prefix
from kit.data.archive import safe_extract
from kit.errors import KitError
from kit.kaggle_client import kaggle_api, kaggle_errors, one_line

_SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _holds_data(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def download_competition(slug: str, out: Path, *, force: bool = False, progress: bool = False) -> Path:
    """Download competition `slug` from Kaggle and unpack it so `out/` directly holds its files.

    The archive goes to a temp folder beside `out`, is unpacked with `safe_extract` into another
    temp folder, which then replaces `out` in one rename. On any error `out` is left as it was.
    `progress=True` lets the client draw its tqdm download bar (on stderr); stdout stays clean.
    """
    out = Path(out)
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        raise KitError(
            f"data.competition in params.yaml must be a Kaggle competition slug like 'birdclef-2024' "
            f"(the part after kaggle.com/c/), not {slug!r}"
        )
    if _holds_data(out) and not force:
        raise KitError(f"{out} already holds data: pass --force to download '{slug}' again and replace it")

    import requests

    api = kaggle_api(slug)
    out.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(out)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(out), dir=out.parent) as dl:
        with kaggle_errors(slug), contextlib.redirect_stdout(io.StringIO()):
            try:
                api.competition_download_files(slug, path=dl, force=True, quiet=not progress)
            except ValueError as e:  # the client's size check: "Downloaded file size (..) does not match"
                raise KitError(f"download of '{slug}' was incomplete ({one_line(e, 120)}): run again") from None
            except OSError as e:
                if isinstance(e, requests.exceptions.RequestException):
                    raise
                raise KitError(f"cannot write the download beside {out} ({one_line(e, 160)})") from None
        archives = [p for p in Path(dl).iterdir() if p.is_file() and not p.name.endswith(".kaggle-partial")]
        if not archives:
            raise KitError(f"Kaggle sent no files for '{slug}': check the competition's data page, then run again")
        archive = max(archives, key=lambda p: p.stat().st_size)
        with atomic_dir(out) as tmp:
            try:
                safe_extract(archive, tmp)
            except KitError as e:
                raise KitError(f"{e} (archive downloaded for '{slug}'; {out} left unchanged)") from None
    return out
