"""Submit a CSV to Kaggle and fetch its scores, with every attempt in the ledger.

`submit` checks the file (a malformed one is never uploaded, and leaves the ledger untouched:
nothing was attempted), records the attempt as "pending" before calling Kaggle, then appends
the outcome, so a failed or interrupted submit still has its ledger entry. `refresh` asks
Kaggle for the competition's submissions and records status and scores of the attempts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kit.errors import KitError
from kit.kaggle_client import kaggle_api, kaggle_errors, one_line
from kit.submission import ledger as ledger_mod
from kit.submission.files import check_submission, manifest_of, read_test_ids

PAGE_SIZE = 100
CLOCK_SLACK = timedelta(minutes=10)  # a Kaggle submission dated this much before its attempt still matches
STATUS = {"PENDING": "pending", "COMPLETE": "complete", "ERROR": "error"}


def submit(path: Path, message: str, competition: str, *, test_ids: list[str], num_classes: int, ledger: Path) -> dict:
    """Upload the submission at `path` to `competition`; return its final ledger record.

    Raises a one-line KitError when the file has problems (nothing uploaded, nothing recorded)
    or when Kaggle does not take it (recorded as "failed" first).
    """
    path = Path(path)
    problems = check_submission(path, test_ids, num_classes)
    if problems:
        count = f"{problems.total:,} problems, first" if problems.total > 1 else "1 problem"
        raise KitError(f"not submitting {path} ({count}): {problems[0]}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = ledger_mod.start_attempt(
        ledger,
        file=path,
        csv_sha256=digest,
        manifest=manifest_of(path, digest),
        competition=competition,
        message=message,
    )
    try:
        api = kaggle_api(competition)
        with kaggle_errors(competition), contextlib.redirect_stdout(io.StringIO()):
            reply = api.competition_submit(str(path), message, competition, quiet=True)
        answer = one_line(reply.message or "")
        if not (reply.ref or answer.lower().startswith("successfully")):
            raise KitError(
                f"Kaggle did not take {path.name} for '{competition}': {answer or 'no answer'} "
                "(recorded as failed in the ledger); run again"
            )
    except KitError as e:
        ledger_mod.update(ledger, record, status="failed", error=str(e))
        raise
    return ledger_mod.update(ledger, record, ref=reply.ref or None, kaggle_message=answer)


def submit_for_dataset(
    path: Path, message: str, competition: str, *, data: Path, num_classes: int | None, ledger: Path
) -> dict:
    """`submit`, checked against the test clips of the dataset at `data`."""
    ids, k = read_test_ids(data, num_classes)
    return submit(path, message, competition, test_ids=ids, num_classes=k, ledger=ledger)


def attempts(ledger: Path, competition: str | None = None, *, wait: float = 0) -> list[dict]:
    """The ledger's attempts; with `competition`, that competition's, refreshed from Kaggle and
    polled every 15 s for up to `wait` seconds while one Kaggle knows of (a ref) is still pending.
    An upload interrupted before it reached Kaggle stays pending without a ref: waiting would not
    change that."""
    if competition is None:
        return ledger_mod.read_ledger(ledger)
    deadline = time.monotonic() + wait
    records = refresh(ledger, competition)
    while any(r["status"] == "pending" and r.get("ref") for r in records) and time.monotonic() < deadline:
        time.sleep(min(15, max(1, deadline - time.monotonic())))
        records = refresh(ledger, competition)
    return records


def refresh(ledger: Path, competition: str) -> list[dict]:
    """Fetch `competition`'s submissions from Kaggle, record new status / scores; return its attempts.

    Attempts are matched to Kaggle's submissions by ref, or else (an attempt interrupted before
    Kaggle answered) by file name and time. "failed" attempts are left alone.
    """
    attempts = [a for a in ledger_mod.read_ledger(ledger) if a["competition"] == competition]
    open_attempts = [a for a in attempts if a["status"] != "failed"]
    if not open_attempts:
        return attempts
    subs = _submissions(competition)
    claimed = {a["ref"] for a in attempts if a.get("ref")}
    latest = {}
    for a in open_attempts:
        sub = subs.get(a["ref"]) if a.get("ref") else _by_name_and_time(a, subs, claimed)
        if sub is None:
            continue
        claimed.add(sub.ref)
        changes = {k: v for k, v in _fields(sub).items() if a.get(k) != v}
        if changes:
            latest[a["attempt"]] = ledger_mod.update(ledger, a, **changes)
    return [latest.get(a["attempt"], a) for a in attempts]


def _submissions(competition: str) -> dict[int, Any]:
    """{ref: ApiSubmission} of all the competition's submissions on Kaggle."""
    api = kaggle_api(competition)
    found: dict[int, Any] = {}
    page = 1
    with kaggle_errors(competition), contextlib.redirect_stdout(io.StringIO()):
        while True:
            batch = api.competition_submissions(competition, page_number=page, page_size=PAGE_SIZE) or []
            new = [s for s in batch if s is not None and s.ref not in found]
            found.update((s.ref, s) for s in new)
            if len(batch) < PAGE_SIZE or not new:
                return found
            page += 1


def _fields(sub: Any) -> dict:
    """The ledger fields Kaggle's submission `sub` (an ApiSubmission) sets."""
    status = STATUS.get(sub.status.name, "pending")
    return {
        "ref": sub.ref,
        "status": status,
        "public_score": _score(sub.public_score),
        "private_score": _score(sub.private_score),
        "error": one_line(sub.error_description) if status == "error" and sub.error_description else None,
    }


def _score(text: str | None) -> float | str | None:
    if text is None or not str(text).strip():
        return None
    try:
        return float(text)
    except ValueError:
        return str(text)


def _by_name_and_time(attempt: dict, subs: dict[int, Any], claimed: set) -> Any:
    """The earliest unclaimed submission of the attempt's file name made after it began (or None)."""
    began = datetime.fromisoformat(attempt["time"]) - CLOCK_SLACK
    name = Path(attempt["file"]).name
    fits = [
        s
        for ref, s in subs.items()
        if ref not in claimed and s.file_name == name and s.date and s.date.replace(tzinfo=UTC) >= began
    ]
    return min(fits, key=lambda s: s.date, default=None)
