"""The ledger of submission attempts: `submissions/ledger.jsonl`, append-only JSON lines.

Every line is the full state of one attempt at one moment; a change (uploaded, scored, failed)
appends a new line with the same `attempt` id, and replaying the file gives each attempt's latest
state. Lines are never rewritten: each append is a single `write` on an O_APPEND descriptor,
then fsync, so a crash loses at most the line being written. Such a torn last line (no newline
at its end, not JSON) is skipped when read and cut off before the next append, as journal stores
do; damage anywhere else is refused.

Record fields: attempt, time (when the attempt began), updated, file, csv_sha256, manifest
({method, members, estimate} from the CSV's manifest), competition, message, status, ref
(Kaggle's submission id, once known), kaggle_message (Kaggle's answer to the upload),
public_score, private_score, error.

status: "pending" (recorded before Kaggle is called, and kept while Kaggle scores it),
"complete" (scored), "error" (Kaggle could not score it), "failed" (the upload itself failed).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kit.errors import KitError

LEDGER = Path("submissions/ledger.jsonl")
STATUSES = ("pending", "complete", "error", "failed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def start_attempt(
    ledger: Path, *, file: Path, csv_sha256: str, manifest: dict | None, competition: str, message: str
) -> dict:
    """Append a new "pending" attempt and return it."""
    t = _now()
    summary = {k: manifest.get(k) for k in ("method", "members", "estimate")} if manifest else None
    record = {
        "attempt": f"{t[:10]}-{uuid.uuid4().hex[:8]}",
        "time": t,
        "updated": t,
        "file": str(file),
        "csv_sha256": csv_sha256,
        "manifest": summary,
        "competition": competition,
        "message": message,
        "status": "pending",
        "ref": None,
        "public_score": None,
        "private_score": None,
        "error": None,
    }
    _append(Path(ledger), record)
    return record


def update(ledger: Path, record: dict, **changes) -> dict:
    """Append `record` with `changes` as the attempt's new state, and return that state."""
    if changes.get("status", record["status"]) not in STATUSES:
        raise ValueError(f"unknown status {changes['status']!r}")
    new = {**record, **changes, "updated": _now()}
    _append(Path(ledger), new)
    return new


def _append(ledger: Path, record: dict) -> None:
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    ledger.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(ledger, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":  # a torn last line: cut it off first
            tail = os.pread(fd, min(end, 1 << 20), max(0, end - (1 << 20)))
            os.ftruncate(fd, end - (len(tail) - tail.rfind(b"\n") - 1))
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_ledger(ledger: Path) -> list[dict]:
    """The latest state of every attempt, in the order the attempts began; [] if there is no ledger.
    A torn last line (see the module's docstring) is skipped; `torn_line` says whether there is one."""
    ledger = Path(ledger)
    lines, torn = _lines(ledger)
    latest: dict[str, dict] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip() or n == torn:
            continue
        try:
            record = json.loads(line)
            latest[record["attempt"]] = {**latest.get(record["attempt"], {}), **record}
        except (json.JSONDecodeError, TypeError, KeyError):
            raise KitError(f"{ledger} line {n}: not a ledger record ({line[:40]!r}); delete or fix that line") from None
    return list(latest.values())


def torn_line(ledger: Path) -> int | None:
    """The number of the ledger's last line when a crash cut it off mid-write (it is skipped), else None."""
    return _lines(Path(ledger))[1]


def _lines(ledger: Path) -> tuple[list[str], int | None]:
    try:
        data = ledger.read_bytes()
    except FileNotFoundError:
        return [], None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        if b"\n" not in data[exc.start :]:  # only the torn last line is cut mid-character
            lines = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="strict").splitlines() + ["\ufffd"]
        else:
            raise KitError(f"{ledger}: not UTF-8 text; restore it from version control") from None
    if data and not data.endswith(b"\n") and lines:
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            return lines, len(lines)
    return lines, None
