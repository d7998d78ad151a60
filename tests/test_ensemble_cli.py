"""`kit ensemble` over registry runs: comparable members only, a valid submission, an honest table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stores import tiny_store
from typer.testing import CliRunner

from kit.cli.app import app
from kit.features.store import FeatureStore
from kit.submission.files import check_submission

runner = CliRunner()


def fake_run(
    runs,
    run_id,
    store,
    *,
    quality,
    split="holdout0.2-s0-aaaa",
    feature_hash=None,
    seed=0,
    test=True,
    grouped=False,
    channels=None,
):
    """A run folder as `kit train` writes it, with predictions of a chosen quality."""
    rng = np.random.default_rng(seed)
    y = store.labels("train")
    val_index = np.arange(0, len(y), 2)
    k = store.meta["num_classes"]

    def probs(labels):
        logits = rng.normal(0, 1, (len(labels), k))
        logits[np.arange(len(labels)), labels] += quality
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    folder = runs / run_id
    folder.mkdir(parents=True)
    val = probs(y[val_index])
    np.save(folder / "val_probs.npy", val)
    np.save(folder / "val_index.npy", val_index)
    if test:
        np.save(folder / "test_probs.npy", probs(rng.integers(0, k, 12)))
    acc = float((val.argmax(1) == y[val_index]).mean())
    meta = {
        "id": run_id,
        "arch": "cnn4",
        **({"params": {"channels": channels}} if channels is not None else {}),
        "split_id": split,
        "split": {"kind": "holdout", "fraction": 0.5, "seed": 0, "grouped": grouped},
        "feature_hash": feature_hash or store.feature_hash,
        "features": str(store.path),
        "metrics": {"accuracy": acc, "macro_f1": acc, "log_loss": 1.0},
        "epochs_run": [1],
        "wall_seconds": 1.0,
        "created": "2026-11-22T10:00:00",
    }
    (folder / "run.json").write_text(json.dumps(meta))


@pytest.fixture
def registry_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    runs = tmp_path / "artifacts" / "runs"
    for i, quality in enumerate((2.0, 1.5, 1.2)):
        fake_run(runs, f"good{i}", store, quality=quality, seed=i)
    fake_run(runs, "useless", store, quality=0.0, seed=9)
    fake_run(runs, "other-split", store, quality=1.0, split="kfold5-s0-bbbb", seed=5)
    fake_run(runs, "other-features", store, quality=1.0, feature_hash="feedfeedfeedfeed", seed=6)
    fake_run(runs, "no-test", store, quality=2.5, test=False, seed=7)
    (runs / "broken").mkdir()
    return tmp_path


def test_ensemble_uses_only_comparable_runs_and_writes_a_valid_submission(registry_dir):
    result = runner.invoke(
        app, ["ensemble", "--top", "5", "--method", "weighted", "--name", "blend"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "skipped other-split: split kfold5-s0-bbbb" in out
    assert "skipped other-features: feature hash feedfeedfeedfeed" in out
    assert "skipped no-test: no test predictions" in out and "skipped broken: broken folder" in out
    assert "ensemble (honest estimate)" in out and "best single member" in out
    assert "5-fold cross-validation on the validation rows, rows shuffled" in out
    csv = registry_dir / "submissions" / "blend.csv"
    store = FeatureStore.open(registry_dir / "data" / "features")
    assert check_submission(csv, store.ids("test"), 3) == []
    manifest = json.loads(csv.with_suffix(".json").read_text())
    members = {m["run"]: m["weight"] for m in manifest["members"]}
    assert set(members) == {"good0", "good1", "good2", "useless"}
    assert abs(sum(members.values()) - 1) < 1e-6 and members["useless"] < 0.05
    assert manifest["method"] == "weighted" and set(manifest["estimate"]) == {"accuracy", "macro_f1", "log_loss"}
    assert set(manifest["inputs"]) == set(members)


@pytest.mark.parametrize("method", ["mean", "hillclimb", "stack"])
def test_every_method_writes_a_submission(registry_dir, method):
    result = runner.invoke(app, ["ensemble", "--top", "3", "--method", method, "--name", method])
    assert result.exit_code == 0, result.output
    manifest = json.loads((registry_dir / "submissions" / f"{method}.json").read_text())
    assert [m["run"] for m in manifest["members"]] == ["good0", "good1", "good2"]


@pytest.mark.parametrize(
    "metric, weights", [("log_loss", [1, 0, 0, 0]), ("accuracy", [0.5, 0.5, 0, 0]), ("macro_f1", [0.5, 0.5, 0, 0])]
)
def test_hillclimb_climbs_the_metric_set_in_params(registry_dir, metric, weights):
    """good0 has the best accuracy and log-loss; adding good1 raises accuracy (0.90 -> 0.95) and log-loss."""
    result = runner.invoke(app, ["ensemble", "--top", "4", "--name", "h", "-S", f"ensemble.metric={metric}"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((registry_dir / "submissions" / "h.json").read_text())
    assert manifest["method"] == "hillclimb" and manifest["params"]["metric"] == metric
    assert [m["weight"] for m in manifest["members"]] == weights
    assert "fell_back_to" not in manifest["details"]
    sign = -1 if metric == "log_loss" else 1
    assert sign * (manifest["in_sample"][metric] - manifest["best_member"][metric]) >= -1e-6  # float32 members


def test_a_grouped_split_makes_the_ensemble_cv_keep_groups_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120, groups=True))
    for i, quality in enumerate((2.0, 1.5, 1.2)):
        fake_run(tmp_path / "artifacts" / "runs", f"g{i}", store, quality=quality, seed=i, grouped=True)
    result = runner.invoke(app, ["ensemble", "--method", "stack", "--name", "s"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "5-fold cross-validation on the validation rows, songs (groups) kept whole" in result.output
    assert json.loads((tmp_path / "submissions" / "s.json").read_text())["details"]["grouped"] is True


def test_explicit_runs_must_be_comparable(registry_dir):
    bad = runner.invoke(app, ["ensemble", "--runs", "good0,other-split"])
    assert bad.exit_code == 1 and "run other-split cannot join good0: split" in bad.output
    missing = runner.invoke(app, ["ensemble", "--runs", "good0,nope"])
    assert missing.exit_code == 1 and "no run 'nope'" in missing.output
    none = runner.invoke(app, ["ensemble", "--top", "0"])
    assert none.exit_code == 2 and "--top (ensemble.top): must be ≥ 1, got 0" in none.output


def test_the_best_run_sets_the_split(registry_dir):
    store = FeatureStore.open(registry_dir / "data" / "features")
    fake_run(registry_dir / "artifacts" / "runs", "kfold-star", store, quality=4.0, split="kfold5-s0-bbbb", seed=8)
    result = runner.invoke(app, ["ensemble", "--method", "mean", "--name", "k"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    manifest = json.loads((registry_dir / "submissions" / "k.json").read_text())
    assert [m["run"] for m in manifest["members"]] == ["kfold-star", "other-split"]
    assert "skipped good0: split holdout0.2-s0-aaaa ≠ kfold5-s0-bbbb" in result.output


def test_the_table_and_manifest_say_which_channels_each_member_sees(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = FeatureStore.open(tiny_store(tmp_path / "data" / "features", n=120))
    runs = tmp_path / "artifacts" / "runs"
    for i, channels in enumerate(
        (["mix:logmel", "vocals:logmel"], ["mix:logfreq", "vocals:logfreq"], ["mix:logmel", "vocals:logfreq"], [])
    ):
        fake_run(runs, f"r{i}", store, quality=2.0 - 0.2 * i, seed=i, channels=channels)
    result = runner.invoke(app, ["ensemble", "--name", "c"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {cells[0]: cells[2] for cells in _table_rows(result.output) if cells[0].startswith("r")}
    expected = {"r0": "mix+vocals:logmel", "r1": "mix+vocals:logfreq", "r2": "mix:logmel,vocals:logfreq", "r3": "all"}
    assert rows == expected
    manifest = json.loads((tmp_path / "submissions" / "c.json").read_text())
    assert {m["run"]: m["inputs"] for m in manifest["members"]} == expected
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert {cells[1]: cells[3] for cells in _table_rows(listing.output) if cells[0].isdigit()} == expected


def _table_rows(output: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]
