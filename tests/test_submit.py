"""kit.submission.kaggle + ledger: the real kaggle client against the fake server (tests/kaggle_server.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from kit.errors import KitError
from kit.submission import ledger as ledger_mod
from kit.submission.files import write_submission
from kit.submission.kaggle import refresh, submit
from kit.submission.ledger import read_ledger

SLUG = "kit-birds-2025"
IDS = [str(i) for i in range(6)]
K = 4
MANIFEST = {"method": "mean", "members": ["run-a", "run-b"], "estimate": 0.8, "created_by": "kit"}
UPLOAD_CALLS = [
    ("POST", "/api/v1/competitions.CompetitionApiService/StartSubmissionUpload"),
    ("PUT", "/upload/blob-1"),
    ("POST", "/api/v1/competitions.CompetitionApiService/CreateSubmission"),
]

kaggle = pytest.mark.xdist_group("kaggle")


@pytest.fixture
def sub(tmp_path):
    return write_submission(tmp_path / "subs" / "sub.csv", IDS, np.array([0, 1, 2, 3, 0, 1]), manifest=MANIFEST)


@pytest.fixture
def ledger(tmp_path):
    return tmp_path / "submissions" / "ledger.jsonl"


def lines(ledger) -> list[dict]:
    return [json.loads(line) for line in ledger.read_text().splitlines()]


def do_submit(sub, ledger, message="first try"):
    return submit(sub, message, SLUG, test_ids=IDS, num_classes=K, ledger=ledger)


def failed_submit(sub, ledger) -> str:
    with pytest.raises(KitError) as err:
        do_submit(sub, ledger)
    msg = str(err.value)
    assert "\n" not in msg and err.value.__cause__ is None
    records = lines(ledger)
    assert [r["status"] for r in records] == ["pending", "failed"]  # recorded before Kaggle was called
    assert records[1]["error"] == msg and records[0]["attempt"] == records[1]["attempt"]
    return msg


# --------------------------------------------------------------------------- submit


@kaggle
def test_submit_uploads_and_records(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")

    record = do_submit(sub, ledger)

    assert kaggle_server.requests == UPLOAD_CALLS
    assert kaggle_server.received == {1000: sub.read_bytes()}  # the server got the file's bytes
    on_server = kaggle_server.submissions[SLUG][0]
    assert (on_server["fileName"], on_server["description"]) == ("sub.csv", "first try")

    pending, uploaded = lines(ledger)
    assert pending["status"] == "pending" and pending["ref"] is None
    assert uploaded == record
    assert record["status"] == "pending"  # uploaded, Kaggle is scoring it
    assert record["ref"] == 1000
    assert record["kaggle_message"] == f"Successfully submitted to {SLUG}"
    assert record["file"] == str(sub) and record["competition"] == SLUG and record["message"] == "first try"
    assert record["csv_sha256"] == hashlib.sha256(sub.read_bytes()).hexdigest()
    assert record["manifest"] == {"method": "mean", "members": ["run-a", "run-b"], "estimate": 0.8}
    assert read_ledger(ledger) == [record]


@kaggle
def test_submit_edited_csv_drops_stale_manifest(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    sub.write_text(sub.read_text().replace("5,1", "5,2"))  # hand-edited after write_submission
    assert do_submit(sub, ledger)["manifest"] is None


@kaggle
def test_submit_rules_not_accepted(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    kaggle_server.fail("StartSubmissionUpload", 403)
    msg = failed_submit(sub, ledger)
    assert f"accept the competition rules at https://www.kaggle.com/c/{SLUG}/rules" in msg
    assert kaggle_server.received == {}


@kaggle
def test_submit_rate_limited(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    kaggle_server.fail("CreateSubmission", 429)
    assert "Kaggle rate limit hit (429)" in failed_submit(sub, ledger)
    assert kaggle_server.requests == UPLOAD_CALLS  # uploaded, then refused: no retry storm


@kaggle
def test_submit_unknown_competition(kaggle_server, sub, ledger):
    assert f"competition '{SLUG}' not found on Kaggle (404)" in failed_submit(sub, ledger)


@kaggle
def test_submit_upload_failure_returned_as_message(kaggle_server, sub, ledger, capsys):
    """A failed PUT does not raise: the client returns 'Could not submit to competition'."""
    kaggle_server.add_competition(SLUG, b"")
    kaggle_server.fail("Upload", 403)
    msg = failed_submit(sub, ledger)
    assert msg == (
        f"Kaggle did not take sub.csv for '{SLUG}': Could not submit to competition "
        "(recorded as failed in the ledger); run again"
    )
    assert kaggle_server.submissions == {}
    assert capsys.readouterr().out == ""


@kaggle
def test_submit_refusal_message_without_ref(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    kaggle_server.submit_message = "Submission not allowed: daily limit reached"
    assert "Submission not allowed: daily limit reached" in failed_submit(sub, ledger)


@kaggle
def test_submit_no_credentials(kaggle_creds, sub, ledger):
    kaggle_creds.remove()
    assert failed_submit(sub, ledger).startswith("no Kaggle credentials: put kaggle.json in ")


@kaggle
def test_submit_offline(kaggle_creds, sub, ledger):
    assert failed_submit(sub, ledger).startswith("cannot reach Kaggle (offline?)")


@kaggle
def test_submit_malformed_file_sends_nothing(kaggle_server, sub, ledger):
    """A malformed file is refused before anything happens: no request, no ledger entry."""
    kaggle_server.add_competition(SLUG, b"")
    sub.write_text("id,category\n0,0\n1,9\n")
    with pytest.raises(KitError) as err:
        do_submit(sub, ledger)
    assert str(err.value) == f"not submitting {sub} (2 problems, first): sub.csv line 3: category 9 out of range 0..3"
    assert kaggle_server.requests == []
    assert not ledger.exists()


def test_submit_missing_file_needs_no_server(tmp_path, ledger):
    with pytest.raises(KitError, match=r"^not submitting .*nope.csv \(1 problem\): .*nope.csv: no such file$"):
        submit(tmp_path / "nope.csv", "m", SLUG, test_ids=IDS, num_classes=K, ledger=ledger)
    assert not ledger.exists()


# --------------------------------------------------------------------------- refresh


@kaggle
def test_refresh_fills_in_scores(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    first = do_submit(sub, ledger)
    second = do_submit(sub, ledger, message="second")

    [a, b] = refresh(ledger, SLUG)
    assert (a["status"], b["status"]) == ("pending", "pending")  # not scored yet: nothing new recorded
    assert len(lines(ledger)) == 4

    kaggle_server.score(first["ref"], "0.812")
    kaggle_server.score(second["ref"], None, error="Submission scoring error: bad rows")
    [a, b] = refresh(ledger, SLUG)
    assert (a["attempt"], a["status"], a["public_score"], a["private_score"]) == (
        first["attempt"],
        "complete",
        0.812,
        None,
    )
    assert (b["status"], b["error"]) == ("error", "Submission scoring error: bad rows")
    assert read_ledger(ledger) == [a, b]

    kaggle_server.score(first["ref"], "0.812", "0.797")  # the competition closed
    [a, _] = refresh(ledger, SLUG)
    assert a["private_score"] == 0.797
    assert len(lines(ledger)) == 7
    refresh(ledger, SLUG)
    assert len(lines(ledger)) == 7  # nothing changed, nothing appended


@kaggle
def test_refresh_matches_interrupted_attempt_by_file_name(kaggle_server, sub, ledger):
    """An attempt left "pending" without a ref (killed mid-submit) is matched by file name and time."""
    kaggle_server.add_competition(SLUG, b"")
    start = dict(file=sub, csv_sha256="x", manifest=None, competition=SLUG, message="m")
    lost = ledger_mod.start_attempt(ledger, **start)
    failed = ledger_mod.update(ledger, ledger_mod.start_attempt(ledger, **start), status="failed", error="offline")
    kaggle_server.add_submission(SLUG, "other.csv")
    on_server = kaggle_server.add_submission(SLUG, "sub.csv")
    kaggle_server.score(on_server["ref"], "0.5")

    found, still_failed = refresh(ledger, SLUG)

    assert found["attempt"] == lost["attempt"]
    assert (found["ref"], found["status"], found["public_score"]) == (on_server["ref"], "complete", 0.5)
    assert still_failed == failed


@kaggle
def test_refresh_reads_every_page(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    record = do_submit(sub, ledger)
    for i in range(120):  # newer submissions push ours to the second page
        kaggle_server.add_submission(SLUG, f"later-{i}.csv")
    kaggle_server.score(record["ref"], "0.7")
    [latest] = refresh(ledger, SLUG)
    assert latest["public_score"] == 0.7


@kaggle
def test_refresh_offline(kaggle_creds, sub, ledger):
    ledger_mod.start_attempt(ledger, file=sub, csv_sha256="x", manifest=None, competition=SLUG, message="m")
    with pytest.raises(KitError) as err:
        refresh(ledger, SLUG)
    assert str(err.value).startswith("cannot reach Kaggle (offline?)") and "\n" not in str(err.value)


@kaggle
def test_refresh_rules_not_accepted(kaggle_server, sub, ledger):
    kaggle_server.add_competition(SLUG, b"")
    do_submit(sub, ledger)
    kaggle_server.fail("ListSubmissions", 403)
    with pytest.raises(KitError, match="accept the competition rules"):
        refresh(ledger, SLUG)


def test_refresh_without_open_attempts_calls_nobody(tmp_path, ledger):
    assert refresh(ledger, SLUG) == []  # no ledger yet, no credentials needed


# --------------------------------------------------------------------------- ledger


def test_ledger_replays_latest_state_in_order(tmp_path, ledger):
    start = dict(file=tmp_path / "a.csv", csv_sha256="x", manifest=MANIFEST, competition=SLUG, message="m")
    a = ledger_mod.start_attempt(ledger, **start)
    b = ledger_mod.start_attempt(ledger, **start)
    b2 = ledger_mod.update(ledger, b, status="complete", ref=7, public_score=0.9)
    a2 = ledger_mod.update(ledger, a, status="failed", error="boom")
    assert read_ledger(ledger) == [a2, b2]
    assert a["manifest"] == {"method": "mean", "members": ["run-a", "run-b"], "estimate": 0.8}
    assert a2["time"] == a["time"] and a2["attempt"] == a["attempt"]
    assert len(lines(ledger)) == 4
    with pytest.raises(ValueError):
        ledger_mod.update(ledger, a, status="done")


def test_ledger_corrupt_line_names_it(tmp_path, ledger):
    ledger_mod.start_attempt(
        ledger, file=tmp_path / "a.csv", csv_sha256="x", manifest=None, competition=SLUG, message="m"
    )
    with ledger.open("a") as fh:
        fh.write('{"attempt": "x", "sta\n')
    with pytest.raises(KitError, match=r"ledger.jsonl line 2: not a ledger record .*delete or fix that line"):
        read_ledger(ledger)
