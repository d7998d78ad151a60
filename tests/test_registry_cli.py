"""`kit registry` subcommands work on the runs folder given at either level, and rm asks first."""

from __future__ import annotations

import json

from stores import tiny_store
from test_ensemble_cli import fake_run
from typer.testing import CliRunner

from kit.cli.app import app
from kit.features.store import FeatureStore

runner = CliRunner()


def test_rm_deletes_from_the_folder_given_to_the_group_and_asks_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    default, other = tmp_path / "artifacts" / "runs", tmp_path / "x" / "runs"
    fake_run(default, "r1", store, quality=1.0)
    fake_run(other, "r1", store, quality=1.0)
    kept = runner.invoke(app, ["registry", "--runs", str(other), "rm", "r1"], input="n\n")
    assert kept.exit_code == 1 and f"delete run r1 from {other}?" in kept.output
    assert (other / "r1").exists() and (default / "r1").exists()
    gone = runner.invoke(app, ["registry", "--runs", str(other), "rm", "r1", "--yes"])
    assert gone.exit_code == 0 and f"removed run r1 from {other}" in gone.output
    assert not (other / "r1").exists() and (default / "r1").exists()  # the group's folder, not artifacts/runs
    best = runner.invoke(app, ["registry", "--runs", str(default), "best", "--json"])
    assert best.exit_code == 0 and f'"path": "{default / "r1"}"' in best.stdout
    assert runner.invoke(app, ["registry", "--runs", str(other), "best"]).exit_code == 1  # no runs there now


def test_of_runs_with_equal_accuracy_the_lower_log_loss_is_best_as_the_ensemble_starts_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    runs = tmp_path / "artifacts" / "runs"
    for run_id, log_loss in (("a", 0.9), ("b", 0.8)):
        fake_run(runs, run_id, store, quality=1.0)  # same predictions: the same accuracy
        meta = json.loads((runs / run_id / "run.json").read_text())
        meta["metrics"]["log_loss"] = log_loss
        (runs / run_id / "run.json").write_text(json.dumps(meta))
    best = runner.invoke(app, ["registry", "best", "--json"])
    assert best.exit_code == 0 and json.loads(best.stdout)["id"] == "b"  # not "a", first by id


def _runs_ok_and_old_without_log_loss(tmp_path) -> dict:
    """Runs "ok" and "old" in artifacts/runs, old's run.json without log_loss; returns old's run.json."""
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    runs = tmp_path / "artifacts" / "runs"
    for run_id in ("ok", "old"):
        fake_run(runs, run_id, store, quality=1.0)
    meta = json.loads((runs / "old" / "run.json").read_text())
    del meta["metrics"]["log_loss"]
    (runs / "old" / "run.json").write_text(json.dumps(meta))
    return meta


def test_a_run_whose_metrics_lack_one_is_named_broken_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _runs_ok_and_old_without_log_loss(tmp_path)
    listing = runner.invoke(app, ["registry"])
    assert listing.exit_code == 0 and "old: run.json's metrics lack log_loss" in listing.output
    assert json.loads(runner.invoke(app, ["registry", "best", "--json"]).stdout)["id"] == "ok"


def test_an_index_an_older_kit_wrote_is_rebuilt_so_its_runs_meet_todays_checks(tmp_path, monkeypatch):
    """An index.json from before the metrics check, listing a run without log_loss as whole, with
    stamps that still match: kit rebuilds it and names the run broken instead of crashing on it."""
    monkeypatch.chdir(tmp_path)
    meta = _runs_ok_and_old_without_log_loss(tmp_path)
    assert runner.invoke(app, ["registry"]).exit_code == 0  # writes today's index
    index = tmp_path / "artifacts" / "index.json"
    doc = json.loads(index.read_text())
    del doc["version"]  # as an older kit wrote it: no version, the run listed as whole
    doc["runs"]["old"], doc["broken"] = meta, {}
    index.write_text(json.dumps(doc))
    best = runner.invoke(app, ["registry", "best", "--json"])
    assert best.exit_code == 0 and json.loads(best.stdout)["id"] == "ok"
    assert "old: run.json's metrics lack log_loss" in runner.invoke(app, ["registry"]).output
    assert json.loads(index.read_text())["version"] == 2
