"""Parameters: params.yaml and -S overrides validated against the one schema, the run key it
derives, and docs/params.md generated from it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from stores import tiny_store
from typer.testing import CliRunner

from kit.cli.app import app
from kit.errors import KitError
from kit.params import Params, TrainParams, load_params
from kit.params.docs import render
from kit.params.identity import run_key

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_missing_file_gives_defaults(tmp_path):
    assert load_params(tmp_path / "params.yaml") == Params()


def test_repo_params_yaml_matches_the_defaults():
    assert load_params(REPO / "params.yaml") == Params()


def test_values_are_typed(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("features:\n  duration: 4\n  logmel:\n    fmax: 8000\ndata:\n  num_classes: null\n")
    params = load_params(p)
    assert params.features.duration == 4.0 and params.features.logmel.fmax == 8000.0
    assert params.data.num_classes is None and params.features.logmel.n_mels == 128


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features:\n  logmel:\n    n_mels: many\n", "features.logmel.n_mels: expected an integer, got 'many'"),
        (
            "features:\n  frontend: mfcc\n",
            "features.frontend: expected one of logmel, logfreq, fbank, logmel+logfreq, got 'mfcc'",
        ),
        ("data:\n  sauce: demo\n", "unknown key 'data.sauce'"),
        ("trian: {}\n", "unknown key 'trian'"),
        ("features:\n  duration: [3]\n", "features.duration: expected a number"),
        ("data:\n  demo: 5\n", "data.demo: expected a mapping, got 5"),
        ("data:\n  root: [\n", "line 3: not valid YAML"),
        ("train:\n  lr: -1\n", "train.lr: must be > 0, got -1"),
        ("train:\n  split:\n    fraction: 0.99\n", "train.split.fraction: must be in (0, 0.5], got 0.99"),
        ("train:\n  device: foo\n", "train.device: expected auto | cpu | cuda | cuda:N, got 'foo'"),
        ("train:\n  stack: 2\n", "unknown key 'train.stack': it is now 'train.pack'"),
        ("train:\n  pack: 2\n  early_stop: 3\n", "train.pack 2 contradicts train.early_stop 3"),
    ],
)
def test_bad_params_name_the_key(tmp_path, text, message):
    p = tmp_path / "params.yaml"
    p.write_text(text)
    with pytest.raises(KitError) as err:
        load_params(p)
    assert message in str(err.value) and str(err.value).startswith(str(p)) and err.value.exit_code == 2


def test_params_that_are_not_utf8_name_the_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_bytes("train:\n  arch: caf\xe9\n".encode("latin-1"))
    with pytest.raises(KitError, match=r"params.yaml line 2: not UTF-8 text"):
        load_params(p)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-S", "train.epochs=abc"], "command line: -S train.epochs: expected an integer, got 'abc'"),
        (["-S", "train.lr=-1"], "command line: -S train.lr: must be > 0, got -1"),
        (["-S", "train.augment.mixup_alpha=-1"], "-S train.augment.mixup_alpha: must be ≥ 0, got -1"),
        (["-S", "train.lr=0.1", "-S", "train.nope=1"], "-S train.nope: unknown key 'train.nope' (known: arch, augment"),
        (["-S", "features.out=x"], "-S features.out: this command does not read features.out (it reads train)"),
        (["-S", "train.epochs"], "-S 'train.epochs': expected key=value"),
        (["--lr", "-1"], "command line: --lr (train.lr): must be > 0, got -1.0"),
        (["--drop-rate", "2"], "--drop-rate (train.drop_rate): must be in [0, 1), got 2.0"),
        (["--label-smoothing", "1.5"], "--label-smoothing (train.label_smoothing): must be in [0, 1)"),
        (["--holdout", "0.99"], "--holdout (train.split.fraction): must be in (0, 0.5], got 0.99"),
        (["--mixup-alpha", "-1"], "--mixup-alpha (train.augment.mixup_alpha): must be ≥ 0"),
        (["--device", "foo"], "--device (train.device): expected auto | cpu | cuda | cuda:N, got 'foo'"),
        (["--epochs", "2.5"], "--epochs (train.epochs): expected an integer, got 2.5"),
        (["--folds", "3", "--holdout", "0.2"], "--holdout and --folds contradict each other (train.split.kind"),
        (["--folds", "3", "-S", "train.split.kind=holdout"], "--folds and -S train.split.kind contradict each other"),
        (["--pack", "2", "--pseudo-start", "0.5"], "train.pack 2 contradicts train.pseudo.start 0.5"),
        (["--epochs", "2", "--pseudo-start", "0.9"], "train.pseudo.start 0.9 of train.epochs 2 leaves no epoch"),
        (["--name", "../../escape"], "--name: expected one file name: letters, digits"),
        (["--name", ".hidden"], "(not starting with . or -; no / or \\), got '.hidden'"),
        (["--name=-x"], "got '-x'"),
        (["--name", "a\\b"], "got 'a\\\\b'"),
    ],
)
def test_bad_overrides_are_one_line_exit_2_and_write_nothing(project, args, message):
    result = runner.invoke(app, ["train", "cnn4", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert sorted(p.name for p in project.iterdir()) == ["data"]  # no artifacts/, nothing half-written


@pytest.mark.parametrize("name", ["../x", "a/b", "-x", ".x"])
def test_a_submission_name_is_one_file_name(project, name):
    result = runner.invoke(app, ["ensemble", f"--name={name}"])
    assert result.exit_code == 2 and "--name (ensemble.name): expected one file name" in result.output
    assert sorted(p.name for p in project.iterdir()) == ["data"]


def test_overrides_reach_the_run_and_its_key(project):
    args = [
        "cnn4",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "-S",
        "train.augment.sum_mix=0",
        "-S",
        "train.voice.weight=0",
    ]
    first = runner.invoke(app, ["train", *args, "-S", "train.augment.filter_db=0", "-S", "train.lr=0.02"])
    assert first.exit_code == 0, first.output
    (run,) = (project / "artifacts" / "runs").iterdir()
    import json

    meta = json.loads((run / "run.json").read_text())
    assert meta["params"]["lr"] == 0.02 and meta["params"]["augment"]["filter_db"] == 0.0
    again = runner.invoke(app, ["train", *args, "--filter-db", "0", "--lr", "0.02"])  # the flags are the same keys
    assert again.exit_code == 0 and "already exists with these params: nothing to do" in again.output


# run keys as main 9fcd2da computed them (sha256 of the hashed params, the feature hash, the split id)
OLD_KEYS = {
    "default": "e5a3e95948ea7465e10b89b280296433d41147d75198756c3dbdb293baa171b2",
    "packed": "85917afc096521c10f4e27df8bde2ca9bbc2683fe4e2cf0fafcebc55086e3038",
    "variants": "3deb22987821f2270bbb5d85cbaca96b7fcb05743d22c4ae7120e2e80148677b",
    "kfold_aug": "55640dfb669a40624cf329f31a63bd6108f53ec3d294c83a83ed5777e70d4d0e",
}


def test_run_keys_of_earlier_versions_are_kept():
    from kit.params import AugmentParams, SplitParams, VoiceHeadParams

    t = TrainParams(voice=VoiceHeadParams(weight=0.5), refit=True)  # 9fcd2da's defaults
    variants = dataclasses.replace(
        t, stem="stride1", refit=False, channels=["mix:logfreq"], voice=VoiceHeadParams(weight=0), device="cpu",
        precision="fp32", eval_batch_size=7, features="elsewhere", runs="x",
    )  # fmt: skip
    kfold = dataclasses.replace(
        t, split=SplitParams(kind="kfold", folds=3), augment=AugmentParams(mixup_alpha=0.0), lr=0.01, epochs=4
    )
    assert run_key(t, "f" * 16, "holdout0.2-s0-ab12cd34") == OLD_KEYS["default"]
    packed = dataclasses.replace(t, pack=2, seed=1)
    assert run_key(packed, "0123456789abcdef", "holdout0.2-s0-ab12cd34", [1, 2]) == OLD_KEYS["packed"]
    assert run_key(variants, "0123456789abcdef", "kfold5-s0-ab12cd34") == OLD_KEYS["variants"]
    assert run_key(kfold, "tiny0000abcdef12", "kfold3-s0-ab12cd34") == OLD_KEYS["kfold_aug"]
    assert run_key(dataclasses.replace(t, lr=0.005), "f" * 16, "holdout0.2-s0-ab12cd34") != OLD_KEYS["default"]
    assert run_key(TrainParams(), "f" * 16, "holdout0.2-s0-ab12cd34") != OLD_KEYS["default"]  # auto: a new recipe
    assert run_key(TrainParams(refit=True), "f" * 16, "h") != run_key(TrainParams(), "f" * 16, "h")  # off by default


def test_a_run_trained_before_the_schema_is_found_ranked_and_ensembled(project):
    """tests/data/old-runs: a run folder main 9fcd2da wrote (weights left out), on this tiny store."""
    old = "cnn4-s0-1b5602a0"
    shutil.copytree(REPO / "tests" / "data" / "old-runs" / old, project / "artifacts" / "runs" / old)
    same = ["cnn4", "--epochs", "2", "--batch-size", "16", "--lr", "0.01", "--mixup-alpha", "0", "--sum-mix", "0"]
    again = runner.invoke(app, ["train", *same, "--filter-db", "0", "--voice-weight", "0", "--refit"])
    assert again.exit_code == 0 and f"run {old} already exists with these params: nothing to do" in again.output
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and old in listing.output
    assert runner.invoke(app, ["registry", "best"]).output.strip() == old
    built = runner.invoke(app, ["ensemble", "--name", "old"], env={"COLUMNS": "250"})
    assert built.exit_code == 0, built.output
    assert (project / "submissions" / "old.csv").exists() and old in (project / "submissions" / "old.json").read_text()


def test_docs_params_md_is_generated_from_the_schema():
    assert (REPO / "docs" / "params.md").read_text(encoding="utf-8") == render(), "run `kit params docs`"


def test_a_stale_reference_is_detected(tmp_path):
    stale = tmp_path / "params.md"
    stale.write_text(render().replace("Peak learning rate.", "Learning rate."))
    result = runner.invoke(app, ["params", "docs", "--out", str(stale), "--check"])
    assert result.exit_code == 1 and "params.md is stale: run `kit params docs`" in result.output
    assert runner.invoke(app, ["params", "docs", "--out", str(stale)]).exit_code == 0
    assert runner.invoke(app, ["params", "docs", "--out", str(stale), "--check"]).exit_code == 0


def test_every_parameter_is_documented_with_help_and_every_range_is_checked():
    from kit.params.identity import leaves

    keys = list(leaves())
    assert len(keys) > 100
    for key, _, f in keys:
        assert f.metadata.get("help"), f"{key} has no help"
        assert f"`{key}`" in render()


def test_show_prints_the_effective_params():
    result = runner.invoke(app, ["params", "show", "train.split", "-S", "train.split.folds=3"])
    assert result.exit_code == 0 and "folds: 3" in result.output and "kind: holdout" in result.output


def test_each_dvc_stage_depends_on_the_keys_its_command_reads():
    import yaml

    from kit.params.identity import stage_params

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("data", "separate", "features", "sweep", "ensemble"):
        assert stages[name]["params"] == stage_params(name), name
    assert stages["train"]["do"]["params"] == stage_params("train")
    assert "train.lr" not in stages["features"]["params"] and "features.workers" not in stages["features"]["params"]
    written = yaml.safe_load((REPO / "params.yaml").read_text())  # DVC needs every key it depends on written out
    for name in ("data", "separate", "features", "sweep", "ensemble", "train"):
        for key in stage_params(name):
            node = written
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"params.yaml lacks {key} ({name} stage)"
                node = node[part]


def test_a_value_of_neither_type_names_both(project):
    bad = runner.invoke(app, ["train", "cnn4", "--voice-weight", "loud"])
    assert bad.exit_code == 2
    assert "--voice-weight (train.voice.weight): expected a number or one of auto, got 'loud'" in bad.output
