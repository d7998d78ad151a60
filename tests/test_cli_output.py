"""What `kit` prints where: --version, --json results on stdout, progress bars on stderr."""

from __future__ import annotations

import json

from stores import tiny_store
from test_ensemble_cli import fake_run
from typer.testing import CliRunner

from kit import __version__
from kit.cli.app import app
from kit.features.store import FeatureStore

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"kit {__version__}\n"


def test_registry_and_ensemble_print_json_on_stdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    runs = tmp_path / "artifacts" / "runs"
    for i, quality in enumerate((2.0, 1.0)):
        fake_run(runs, f"r{i}", store, quality=quality, seed=i)
    (runs / "broken").mkdir()
    listing = runner.invoke(app, ["registry", "--json"])
    assert listing.exit_code == 0
    ranked = json.loads(listing.stdout)  # the broken folder is reported on stderr only
    assert [r["id"] for r in ranked] == ["r0", "r1"] and ranked[0]["rank"] == 1
    assert set(ranked[0]["metrics"]) == {"accuracy", "macro_f1", "log_loss"} and ranked[0]["inputs"] == "all"
    assert "broken run folder broken" in listing.stderr
    built = runner.invoke(app, ["ensemble", "--json", "--name", "both", "--top", "2"])
    assert built.exit_code == 0, built.output
    manifest = json.loads(built.stdout)
    assert manifest["method"] == "hillclimb" and [m["run"] for m in manifest["members"]] == ["r0", "r1"]
    assert manifest["csv"].endswith("submissions/both.csv") and "accuracy" in manifest["estimate"]
    written = json.loads((tmp_path / "submissions" / "both.json").read_text())
    assert {k: v for k, v in manifest.items() if k not in ("csv", "manifest")} == written  # csv_sha256 included
    assert manifest["manifest"].endswith("submissions/both.json")


def test_registry_best_prints_the_id_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    runs = tmp_path / "artifacts" / "runs"
    none = runner.invoke(app, ["registry", "best"])
    assert none.exit_code == 1 and none.stdout == "" and "no runs in artifacts/runs" in none.stderr
    for i, quality in enumerate((1.0, 3.0)):
        fake_run(runs, f"r{i}", store, quality=quality, seed=i)
    (runs / "broken").mkdir()
    best = runner.invoke(app, ["registry", "best"])
    assert best.exit_code == 0 and best.stdout == "r1\n"
    summary = json.loads(runner.invoke(app, ["registry", "best", "--json"]).stdout)
    assert summary["id"] == "r1" and summary["arch"] == "cnn4" and summary["path"].endswith("artifacts/runs/r1")
    assert runner.invoke(app, ["registry", "best", "--arch", "resnet"]).exit_code == 1


def test_score_prints_json(tmp_path):
    (tmp_path / "sub.csv").write_text("id,category\n0,0\n1,1\n2,1\n3,3\n")
    (tmp_path / "test_label.txt").write_text("0\n1\n2\n3\n")
    result = runner.invoke(app, ["score", str(tmp_path / "sub.csv"), "--answers", str(tmp_path / "test_label.txt")])
    assert result.exit_code == 0, result.output
    s = json.loads(runner.invoke(app, ["score", str(tmp_path / "sub.csv"), "--answers",
                                       str(tmp_path / "test_label.txt"), "--json"]).stdout)  # fmt: skip
    assert s["accuracy"] == 0.75 and s["n"] == 4 and s["confusion"][2] == [0, 1, 0, 0]


def test_progress_goes_to_stderr_and_results_to_stdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features")
    args = ["train", "cnn4", "--epochs", "1", "--batch-size", "16", "--sum-mix", "0", "--filter-db", "0"]
    result = runner.invoke(app, [*args, "--voice-weight", "0", "--name", "r"])
    assert result.exit_code == 0, result.output
    assert "train cnn4" in result.stderr and "eta" in result.stderr  # the progress bar
    assert "train cnn4" not in result.stdout and "run r" in result.stdout  # the result table


def test_spinners_go_to_stderr():
    from kit.cli.ui import console, err_console, status

    assert console.status("working…").console is err_console and status("working…").console is err_console
    assert not console.stderr and err_console.stderr
