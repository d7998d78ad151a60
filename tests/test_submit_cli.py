"""`kit submission check`, `kit score`, `kit submit`, `kit submissions` as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audio import contest
from typer.testing import CliRunner

from kit.cli.app import app
from kit.submission.files import write_submission

runner = CliRunner()
SLUG = "kit-birds-2025"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "data" / "raw", n_test=4)
    (tmp_path / "data" / "raw" / "test_label.txt").write_text("0\n1\n2\n3\n")
    (tmp_path / "params.yaml").write_text(f"data:\n  competition: {SLUG}\n")
    write_submission(
        tmp_path / "submissions" / "blend.csv",
        ["0", "1", "2", "3"],
        np.array([0, 1, 1, 3]),
        manifest={"method": "weighted", "members": ["a", "b"], "estimate": {"accuracy": 0.7}},
    )
    return tmp_path


def test_check_and_score(project):
    ok = runner.invoke(app, ["submission", "check", "submissions/blend.csv"])
    assert ok.exit_code == 0 and "is a valid submission (4 test ids, labels 0..3)" in ok.output
    (project / "bad.csv").write_text("id,category\n0,0\n1,7\n1,1\n")
    bad = runner.invoke(app, ["submission", "check", "bad.csv"], env={"COLUMNS": "200"})
    assert bad.exit_code == 1 and "bad.csv line 3" in bad.output and "problem(s) in bad.csv" in bad.output
    scored = runner.invoke(app, ["score", "submissions/blend.csv", "--answers", "data/raw/test_label.txt"])
    assert scored.exit_code == 0 and "accuracy 0.7500" in scored.output


def test_check_of_a_huge_wrong_file_is_one_screen(project):
    rows = "".join(f"x{i},{i % 4}\n" for i in range(200_000))
    (project / "huge.csv").write_text("id,category\n" + rows)
    bad = runner.invoke(app, ["submission", "check", "huge.csv"], env={"COLUMNS": "200"})
    lines = bad.output.splitlines()
    assert bad.exit_code == 1 and len(lines) == 23, lines[-5:]  # 20 rows, missing ids, "... and N more", total
    assert lines[0] == "problem: huge.csv line 2: id 'x0' is not a test id"
    assert "4 of 4 test ids missing" in lines[20] and lines[21] == "problem: ... and 199,980 more"
    assert lines[22] == "200,001 problem(s) in huge.csv"


@pytest.mark.xdist_group("kaggle")
def test_submit_then_submissions_shows_the_score(project, kaggle_server):
    kaggle_server.add_competition(SLUG, b"")
    sent = runner.invoke(app, ["submit", "-m", "first blend"], env={"COLUMNS": "200"})
    assert sent.exit_code == 0, sent.output
    assert "submitted submissions/blend.csv to kit-birds-2025" in sent.output
    (ref,) = kaggle_server.received
    kaggle_server.score(ref, "0.81234", None)
    shown = runner.invoke(app, ["submissions"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "blend.csv" in shown.output and "0.81234" in shown.output
    assert "complete" in shown.output and "weighted" in shown.output
    records = [json.loads(line) for line in (project / "submissions" / "ledger.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["pending", "pending", "complete"]


@pytest.mark.xdist_group("kaggle")
def test_failed_submit_keeps_its_ledger_entry(project, kaggle_server):
    kaggle_server.add_competition(SLUG, b"")
    kaggle_server.fail("StartSubmissionUpload", 403)
    result = runner.invoke(app, ["submit", "submissions/blend.csv"])
    assert result.exit_code == 1 and "accept the competition rules" in result.output
    offline = runner.invoke(app, ["submissions", "--offline"], env={"COLUMNS": "200"})
    assert "failed" in offline.output and "blend.csv" in offline.output


@pytest.mark.xdist_group("kaggle")
def test_waiting_skips_an_upload_that_never_reached_kaggle(project, kaggle_server):
    """A submit killed before Kaggle answered stays pending without a ref: `--wait` does not wait on it."""
    import time

    from kit.submission.ledger import LEDGER, start_attempt

    kaggle_server.add_competition(SLUG, b"")
    start_attempt(
        LEDGER,
        file=project / "submissions/blend.csv",
        csv_sha256="0" * 64,
        manifest=None,
        competition=SLUG,
        message="x",
    )
    started = time.monotonic()
    shown = runner.invoke(app, ["submissions", "--wait", "120"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "pending" in shown.output and "blend.csv" in shown.output
    assert time.monotonic() - started < 60
