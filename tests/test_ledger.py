"""The submissions ledger survives a crash mid-append: a torn last line is skipped, then cut off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kit.cli.app import app
from kit.errors import KitError
from kit.submission.ledger import read_ledger, start_attempt, torn_line, update

runner = CliRunner()


def _two_attempts(ledger: Path) -> dict:
    start_attempt(ledger, file=Path("a.csv"), csv_sha256="0" * 64, manifest=None, competition="c", message="a")
    b = start_attempt(ledger, file=Path("b.csv"), csv_sha256="1" * 64, manifest=None, competition="c", message="b")
    return update(ledger, b, status="failed", error="offline")


@pytest.mark.parametrize("cut", [1, 17, -1])
def test_a_torn_last_line_is_skipped_and_cut_off_before_the_next_append(tmp_path, monkeypatch, cut):
    ledger = tmp_path / "submissions" / "ledger.jsonl"
    last = _two_attempts(ledger)
    data = ledger.read_bytes()
    full = len(data) - len(data.rstrip(b"\n").rsplit(b"\n", 1)[-1]) - 1  # where the last line starts
    ledger.write_bytes(data[: full + (cut if cut > 0 else len(data) - full - 1 + cut)])  # killed mid-write
    assert torn_line(ledger) == 3
    records = read_ledger(ledger)  # the last update is lost, nothing else
    assert [r["message"] for r in records] == ["a", "b"] and records[1]["status"] == "pending"
    update(ledger, records[1], status="failed", error="offline again")
    assert torn_line(ledger) is None
    assert [json.loads(line)["attempt"] for line in ledger.read_text().splitlines()] == [
        records[0]["attempt"], last["attempt"], last["attempt"],
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    shown = runner.invoke(app, ["submissions", "--offline"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "offline again" in shown.output


def test_damage_in_the_middle_is_still_refused(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    _two_attempts(ledger)
    lines = ledger.read_text().splitlines()
    ledger.write_text("\n".join([lines[0], lines[1][:20], lines[2]]) + "\n")
    with pytest.raises(KitError, match=r"ledger.jsonl line 2: not a ledger record"):
        read_ledger(ledger)


def test_the_torn_line_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "submissions" / "ledger.jsonl"
    _two_attempts(ledger)
    ledger.write_bytes(ledger.read_bytes()[:-9])
    shown = runner.invoke(app, ["submissions", "--offline"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "ledger.jsonl line 3 was cut off by a crash mid-write: skipped" in shown.stderr
