"""`kit train` and the registry, on tiny learnable feature stores."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from stores import add_noise_channel, tiny_store
from typer.testing import CliRunner

from kit.cli.app import app
from kit.errors import KitError
from kit.params import TrainParams

runner = CliRunner()
# tiny stores have 3 classes and no voices: sum mixing (on in the contest defaults) is off
NO_LOG_AUG = ["--sum-mix", "0", "--filter-db", "0", "--voice-weight", "0"]  # tiny stores: no log powers, no voices
FAST = ["--epochs", "4", "--batch-size", "16", "--lr", "0.01", "--mixup-alpha", "0", *NO_LOG_AUG]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a tiny feature store where `kit train` runs with its defaults."""
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features")
    return tmp_path


def _kit(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "kit", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kw,
    )


def test_training_leaves_a_complete_run_that_the_registry_ranks(project):
    result = runner.invoke(app, ["train", "cnn4", *FAST, "--refit"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (project / "artifacts" / "runs").iterdir()
    files = {p.name for p in run_dir.iterdir()}
    assert {"run.json", "model.safetensors", "val_probs.npy", "val_index.npy", "test_probs.npy", "dvclive"} <= files
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["arch"] == "cnn4" and meta["params"]["epochs"] == 4 and meta["seed"] == 0
    assert meta["split_id"].startswith("holdout0.2-s0-") and meta["feature_hash"] == "tiny0000abcdef12"
    assert set(meta["metrics"]) == {"accuracy", "macro_f1", "log_loss"} and meta["metrics"]["accuracy"] > 0.6
    assert meta["device"].startswith("cpu") and meta["wall_seconds"] > 0 and len(meta["best_epoch"]) == 1
    val_probs, val_index = np.load(run_dir / "val_probs.npy"), np.load(run_dir / "val_index.npy")
    assert val_probs.shape == (12, 3) and len(val_index) == 12 and np.allclose(val_probs.sum(1), 1, atol=1e-5)
    assert np.load(run_dir / "test_probs.npy").shape == (12, 3)
    assert (run_dir / "dvclive" / "metrics.json").exists()
    history = (run_dir / "dvclive" / "plots" / "metrics" / "val_accuracy.tsv").read_text().splitlines()
    assert len(history) == 5  # header + 4 epochs
    refit = (run_dir / "dvclive" / "plots" / "metrics" / "refit" / "train_loss.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in refit] == ["step", "0", "1", "2", "3"]  # the refit's own epochs
    assert not (project / "artifacts" / "work").exists()

    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and run_dir.name in listing.output and "cnn4" in listing.output
    best = runner.invoke(app, ["registry", "best"])
    assert best.output.strip() == run_dir.name
    again = runner.invoke(app, ["train", "cnn4", *FAST, "--refit"])
    assert again.exit_code == 0 and "already exists with these params: nothing to do" in again.output


def test_time_first_stores_are_augmented_along_time(tmp_path, monkeypatch):
    """fbank stores are (time, freq): time shifts and masks must move along time, not frequency."""
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features", time_first=True)
    result = runner.invoke(app, ["train", "cnn4", *FAST])  # default time_shift rolls a whole clip length
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "artifacts" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["metrics"]["accuracy"] > 0.6


def test_models_take_time_first_stores_as_freq_by_time(tmp_path):
    from kit.features.store import FeatureStore

    store = FeatureStore.open(tiny_store(tmp_path / "f", time_first=True))  # 32 bands x 40 frames, stored 40 x 32
    x = store.model_input("train")
    assert store.array("train").shape == (60, 1, 40, 32) and x.shape == (60, 1, 32, 40)
    assert np.array_equal(x[3, 0, 5], store.array("train")[3, 0, :, 5])  # band 5 over time


def test_sum_mixing_trains_from_the_params_table_and_refuses_a_bad_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features", log="db")
    table = "[[0, 1, 2], [1, 1, 2], [2, 2, 2]]"
    (tmp_path / "params.yaml").write_text(f"train:\n  augment:\n    sum_labels: {table}\n")
    result = runner.invoke(app, ["train", "cnn4", *FAST, "--sum-mix", "0.5"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "artifacts" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["params"]["augment"]["sum_mix"] == 0.5 and meta["params"]["augment"]["sum_labels"][1] == [1, 1, 2]
    (tmp_path / "params.yaml").write_text("train:\n  augment:\n    sum_labels: [[0, 1], [1, 1]]\n")
    bad = runner.invoke(app, ["train", "cnn4", *FAST, "--sum-mix", "0.5"])
    assert bad.exit_code == 1 and "train.augment.sum_labels: needs a 3 x 3 table" in bad.output
    assert len(list((tmp_path / "artifacts" / "runs").iterdir())) == 1


def test_a_diverging_training_stops_with_a_one_line_error_and_lands_nothing(project):
    result = runner.invoke(app, ["train", "cnn4", *FAST, "--lr", "1e8"])
    assert result.exit_code == 1, result.output
    assert re.search(
        r"training diverged in epoch \d+: the loss is not finite; lower --lr \(now 1e\+08\)", result.output
    )
    assert not (project / "artifacts" / "runs").exists()


def test_kfold_gives_out_of_fold_probabilities_for_every_clip(project):
    result = runner.invoke(app, ["train", "cnn4", "--folds", "3", "--epochs", "2", "--batch-size", "16", *NO_LOG_AUG])
    assert result.exit_code == 0, result.output
    (run_dir,) = (project / "artifacts" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["split_id"].startswith("kfold3-s0-") and len(meta["best_epoch"]) == 3
    assert np.load(run_dir / "val_probs.npy").shape == (60, 3)
    assert np.load(run_dir / "val_index.npy").tolist() == list(range(60))
    assert {f"fold{k}.safetensors" for k in range(3)} <= {p.name for p in run_dir.iterdir()}


def test_grouped_split_keeps_groups_apart(tmp_path):
    from kit.params import SplitParams
    from kit.training.splits import make_split

    labels = np.arange(60) % 3
    groups = [f"g{i // 4}" for i in range(60)]
    split = make_split(labels, SplitParams(kind="kfold", folds=3, grouped=True), groups)
    for train_idx, val_idx in split.folds:
        assert not {groups[i] for i in train_idx} & {groups[i] for i in val_idx}
    assert split.id.startswith("kfold3-s0-grouped-")
    assert make_split(labels, SplitParams(seed=1)).id != make_split(labels, SplitParams(seed=2)).id
    quarter = make_split(labels, SplitParams(fraction=0.25, grouped=True), groups)
    assert quarter.id.startswith("holdout0.25-s0-grouped-") and 12 <= len(quarter.val_index()) <= 16
    with pytest.raises(KitError, match=r"train.split.fraction: a grouped holdout .* got 0.3, nearest 1/3"):
        make_split(labels, SplitParams(fraction=0.3, grouped=True), groups)


def test_ctrl_c_says_which_checkpoint_is_kept_and_the_same_command_resumes(tmp_path):
    tiny_store(tmp_path / "data" / "features", n=120)
    # 40 epochs of ~0.1 s: the interrupt lands mid-training even when a busy machine delays this process
    args = ["train", "cnn4", "--epochs", "40", "--batch-size", "16", "--lr", "0.01", "--name", "r", *NO_LOG_AUG]
    # a shell's background job starts with SIGINT ignored, and Python then never turns it into
    # KeyboardInterrupt: give the child the default disposition, as a terminal's foreground job has
    proc = _kit(*args, cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "artifacts" / "work").glob("*/fold0/state.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    assert re.search(r"interrupted: the fold 0 epoch \d+ checkpoint is kept; run the same command to resume", out), out
    assert "Traceback" not in out and not (tmp_path / "artifacts" / "runs").exists()
    resumed = _kit(*args, cwd=tmp_path)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0 and "resumed from checkpoints (fold 0:" in out, out


@pytest.mark.parametrize(
    ("ema", "fold", "epoch"),  # killed once `fold` has checkpointed `epoch`
    [
        (["--refit"], "fold0", 1),
        (["--refit", "--ema-epochs", "1"], "fold0", 1),
        (["--pseudo-start", "0.2", "--pseudo-threshold", "0.4"], "fold0", 1),
        (["--refit", "--pack", "2"], "fold0", 1),
        (["--refit", "--pack", "2", "--keep", "last"], "fold1", 1),  # in the refit (all 5 epochs: time to kill it)
        (["--refit", "--scheduler", "multistep"], "fold0", 2),  # decayed after epochs 0 and 1 (params below)
        (["--scheduler", "plateau"], "fold0", 2),  # patience 0: decays on any epoch not best
    ],
    ids=["plain", "ema", "self-training", "pack", "refit", "multistep", "plateau"],
)
def test_killed_training_resumes_and_matches_an_uninterrupted_run(tmp_path, ema, fold, epoch):
    tiny_store(tmp_path / "data" / "features", n=200)
    (tmp_path / "params.yaml").write_text("train:\n  milestones: [1, 2]\n  gamma: 0.5\n  patience: 0\n")
    args = ["train", "cnn4", "--epochs", "5", "--batch-size", "16", "--lr", "0.01", "--name", "r", *NO_LOG_AUG, *ema]
    proc = _kit(*args, cwd=tmp_path)
    state = tmp_path / "artifacts" / "work"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list(state.glob(f"*/{fold}/state.json"))
        if done and json.loads(done[0].read_text())["epoch"] >= epoch:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"no checkpoint appeared: {proc.communicate()[0]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "artifacts" / "runs").exists()  # no partial run folder

    resumed = _kit(*args, cwd=tmp_path)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    resumed_line = re.search(r"resumed from checkpoints \((.*)\)", out).group(1)
    assert resumed_line.startswith("fold 0:") and ("refit:" in resumed_line) == (fold == "fold1")
    if "--pseudo-start" in ema:  # the resumed epochs trained on the pseudo-labels the checkpoint holds
        assert re.search(r"epoch +4 .* pseudo [1-9]", out), out
    names = ["r-s0", "r-s1"] if "--pack" in ema else ["r"]
    runs = sorted(p.name for p in (tmp_path / "artifacts" / "runs").iterdir())
    assert runs == names and not (tmp_path / "artifacts" / "work").exists()

    straight = _kit(*args, "--runs", "other/runs", cwd=tmp_path)
    assert straight.wait(timeout=300) == 0
    for name in names:
        a = np.load(tmp_path / f"artifacts/runs/{name}/val_probs.npy")
        b = np.load(tmp_path / f"other/runs/{name}/val_probs.npy")
        assert np.allclose(a, b, atol=1e-5)  # resuming changed nothing
        a, b = (np.load(tmp_path / f"{runs}/{name}/test_probs.npy") for runs in ("artifacts/runs", "other/runs"))
        assert np.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("split_args", [["--refit"], ["--folds", "2"]], ids=["holdout", "kfold"])
def test_packed_training_lands_one_run_per_seed_each_usable_alone(project, split_args):
    """`--pack 2` trains seeds 3 and 4 as one wider model; each lands as its own run whose saved
    weights, loaded into a plain model, give back the run's validation probabilities."""
    import torch
    from safetensors.torch import load_file

    from kit.device import autocast_dtype
    from kit.features.store import FeatureStore
    from kit.models import create_model
    from kit.training.model import Standardised, predict

    result = runner.invoke(app, ["train", "cnn4", "--pack", "2", "--seed", "3", *FAST, *split_args])
    assert result.exit_code == 0, result.output
    assert "2 models" in result.output and "2 runs trained at once, packed in one model" in result.output
    runs = sorted((project / "artifacts" / "runs").iterdir())
    assert [json.loads((r / "run.json").read_text())["seed"] for r in runs] == [3, 4]
    store = FeatureStore.open(project / "data" / "features")
    x, x_test = (torch.from_numpy(store.model_input(split)) for split in ("train", "test"))
    probs = []
    for run in runs:
        meta = json.loads((run / "run.json").read_text())
        assert meta["params"]["pack"] == 2 and run.name == f"cnn4-s{meta['seed']}-{meta['key'][:8]}"
        assert meta["pack_seeds"] == [3, 4]
        val_probs, val_index = np.load(run / "val_probs.npy"), np.load(run / "val_index.npy")
        weights = sorted(run.glob("fold*.safetensors")) or [run / "model.safetensors"]
        assert len(weights) == (2 if "--folds" in split_args else 1)
        if "--refit" in split_args:
            state = load_file(weights[0])
            model = Standardised(create_model("cnn4", num_classes=3, in_chans=x.shape[1]), state["mean"], state["std"])
            model.load_state_dict(state)
            model = model.to(memory_format=torch.channels_last)  # kit's layout: bf16 kernels differ by layout
            cpu = torch.device("cpu")
            alone = predict(model, x, val_index, cpu, 64, autocast_dtype("auto", cpu))
            assert np.allclose(alone, val_probs, atol=1e-5)
            state = load_file(run / "refit.safetensors")  # each member's own refit weights
            model = Standardised(create_model("cnn4", num_classes=3, in_chans=x.shape[1]), state["mean"], state["std"])
            model.load_state_dict(state)
            model = model.to(memory_format=torch.channels_last)
            refit = predict(model, x_test, np.arange(len(x_test)), cpu, 64, autocast_dtype("auto", cpu))
            assert np.allclose(refit, np.load(run / "test_probs.npy"), atol=1e-5)
            assert meta["refit"] == {"epochs": 4, "clips": 60}  # the holdout's whole schedule
        probs.append(val_probs)
    assert not np.allclose(*probs)  # two models, not one twice
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert all(r.name in listing.output for r in runs)
    again = runner.invoke(app, ["train", "cnn4", "--pack", "2", "--seed", "3", *FAST, *split_args])
    assert "runs cnn4-s3-" in again.output and "already exist with these params: nothing to do" in again.output
    if not split_args:  # seed 4 trained beside seed 5 is another run than beside seed 3
        shifted = runner.invoke(app, ["train", "cnn4", "--pack", "2", "--seed", "4", *FAST])
        assert shifted.exit_code == 0 and "2 runs trained at once" in shifted.output
        assert len(list((project / "artifacts" / "runs").iterdir())) == 4
        shutil.rmtree(runs[0])  # the seed-3 member is gone: it alone is written again
        refill = runner.invoke(app, ["train", "cnn4", "--pack", "2", "--seed", "3", *FAST], env={"COLUMNS": "250"})
        assert refill.exit_code == 0 and f"{runs[1].name} already existed with these params: kept" in refill.output
        assert (runs[0] / "run.json").exists() and len(list((project / "artifacts" / "runs").iterdir())) == 4
    assert not (project / "artifacts" / "work").exists()


def test_refit_trains_on_every_clip_for_the_holdouts_epochs_and_predicts_the_test_clips(project):
    import torch
    from safetensors.torch import load_file

    from kit.device import autocast_dtype
    from kit.features.store import FeatureStore
    from kit.models import create_model
    from kit.training.model import Standardised, predict

    plain = runner.invoke(app, ["train", "cnn4", *FAST, "--no-refit", "--name", "plain"])
    result = runner.invoke(app, ["train", "cnn4", *FAST, "--refit", "--name", "refit"])
    assert plain.exit_code == 0 and result.exit_code == 0, result.output
    assert re.search(r"refit +epoch +0 +loss", result.output) and "test predictions from the refit" in result.output
    runs = project / "artifacts" / "runs"
    meta = json.loads((runs / "refit" / "run.json").read_text())
    assert meta["refit"] == {"epochs": 4, "clips": 60} and meta["params"]["refit"]  # all 4, the last kept
    assert len(re.findall(r"refit +epoch", result.output)) == 4
    stopped = runner.invoke(
        app, ["train", "cnn4", *FAST, "--refit", "--epochs", "12", "--early-stop", "1", "--name", "early"]
    )
    early = json.loads((runs / "early" / "run.json").read_text())
    ran = len((runs / "early" / "dvclive" / "plots" / "metrics" / "val_accuracy.tsv").read_text().splitlines()) - 1
    assert stopped.exit_code == 0 and ran < 12 and early["refit"]["epochs"] == ran  # early stopping's cut
    # the holdout half is the plain run's: same validation predictions and score
    assert np.array_equal(np.load(runs / "plain" / "val_probs.npy"), np.load(runs / "refit" / "val_probs.npy"))
    assert meta["metrics"] == json.loads((runs / "plain" / "run.json").read_text())["metrics"]
    test_probs = np.load(runs / "refit" / "test_probs.npy")
    assert not np.allclose(test_probs, np.load(runs / "plain" / "test_probs.npy"), atol=1e-3)
    x_test = torch.from_numpy(FeatureStore.open(project / "data" / "features").model_input("test"))
    state = load_file(runs / "refit" / "refit.safetensors")  # the refit's weights give its test predictions
    model = Standardised(create_model("cnn4", num_classes=3, in_chans=x_test.shape[1]), state["mean"], state["std"])
    model.load_state_dict(state)
    model = model.to(memory_format=torch.channels_last)  # kit's layout: bf16 kernels differ by layout
    cpu = torch.device("cpu")
    again = predict(model, x_test, np.arange(len(x_test)), cpu, 64, autocast_dtype("auto", cpu))
    assert np.allclose(again, test_probs, atol=1e-5)

    for bad, key in ((["--pseudo-start", "0.5"], "self-training"), (["--scheduler", "plateau"], "plateau")):
        out = runner.invoke(app, ["train", "cnn4", *FAST, "--refit", *bad])
        assert out.exit_code != 0 and "train.refit" in out.output and key in out.output and "--no-refit" in out.output
    kfold = runner.invoke(app, ["train", "cnn4", *FAST, "--refit", "--folds", "2", "--name", "kfold"])
    assert kfold.exit_code == 0 and "refit" not in json.loads((runs / "kfold" / "run.json").read_text())
    same = runner.invoke(app, ["train", "cnn4", *FAST, "--no-refit", "--folds", "2", "--name", "kfold"])
    assert "already exists with these params: nothing to do" in same.output  # a K-fold run does not refit


def test_two_trainings_at_once_both_land(tmp_path):
    tiny_store(tmp_path / "data" / "features")
    procs = [_kit("train", "cnn4", "--epochs", "2", "--seed", str(s), *NO_LOG_AUG, cwd=tmp_path) for s in (1, 2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = sorted(p.name for p in (tmp_path / "artifacts" / "runs").iterdir())
    assert len(runs) == 2 and runs[0].startswith("cnn4-s1-") and runs[1].startswith("cnn4-s2-")
    index = json.loads((tmp_path / "artifacts" / "index.json").read_text())
    listing = _kit("registry", cwd=tmp_path).communicate()[0]
    assert all(r in listing for r in runs), listing
    assert set(index["runs"]) <= set(runs)


def test_a_run_landed_meanwhile_under_the_same_name_is_kept_and_the_work_is_not_lost(project, monkeypatch):
    from kit.training import work as training

    assert runner.invoke(app, ["train", "cnn4", *FAST, "--seed", "1", "--name", "other"]).exit_code == 0
    runs, fold = project / "artifacts" / "runs", training.train_fold

    def fold_then_other_lands(*args, **kw):  # another `kit train --name mine` finishes meanwhile
        results = fold(*args, **kw)
        if not (runs / "mine").exists():
            shutil.copytree(runs / "other", runs / "mine")
        return results

    monkeypatch.setattr(training, "train_fold", fold_then_other_lands)
    clash = runner.invoke(app, ["train", "cnn4", *FAST, "--name", "mine"])
    assert clash.exit_code == 1 and "run mine already exists with other params" in clash.output
    assert json.loads((runs / "mine" / "run.json").read_text())["seed"] == 1  # not replaced
    monkeypatch.setattr(training, "train_fold", fold)
    from kit.training import record

    fill = record.fill

    def other_lands_while_filling(tmp, **kw):  # ... or while this one writes its folder
        fill(tmp, **kw)
        shutil.copytree(runs / "other", runs / "mine2")

    monkeypatch.setattr(record, "fill", other_lands_while_filling)
    late = runner.invoke(app, ["train", "cnn4", *FAST, "--name", "mine2"])
    assert late.exit_code == 1 and "run mine2 was landed by another process meanwhile" in late.output
    assert json.loads((runs / "mine2" / "run.json").read_text())["seed"] == 1
    assert not [p.name for p in runs.iterdir() if p.name.startswith(".")]  # no temp folder left
    monkeypatch.setattr(record, "fill", fill)
    again = runner.invoke(app, ["train", "cnn4", *FAST, "--name", "mine3"])
    assert again.exit_code == 0 and "resumed from checkpoints" in again.output  # nothing retrained
    assert json.loads((runs / "mine3" / "run.json").read_text())["seed"] == 0


def test_corrupt_run_folders_do_not_break_the_registry(project):
    assert runner.invoke(app, ["train", "cnn4", "--epochs", "1", *NO_LOG_AUG]).exit_code == 0
    runs = project / "artifacts" / "runs"
    (good,) = runs.iterdir()
    (runs / "half").mkdir()
    (runs / "half" / "run.json").write_text('{"arch": "cnn4", "metr')
    for name in ("run.json", "val_probs.npy", "val_index.npy"):
        (runs / "half" / name).touch()
    (runs / "empty").mkdir()
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and good.name in listing.output
    assert "broken run folder empty: run.json missing" in listing.output
    assert "broken run folder half: run.json is corrupt" in listing.output
    reindexed = runner.invoke(app, ["registry", "reindex"])
    assert reindexed.exit_code == 0 and "indexed 1 run(s)" in reindexed.output
    shown = runner.invoke(app, ["registry", "show", good.name[:6]])
    assert shown.exit_code == 0 and '"epochs": 1' in shown.output
    onto = runner.invoke(app, ["train", "cnn4", "--epochs", "1", *NO_LOG_AUG, "--name", "half"])
    assert onto.exit_code == 1 and "run folder half is broken (run.json is corrupt" in onto.output
    assert runner.invoke(app, ["registry", "rm", "half", "--yes"]).exit_code == 0
    assert not (runs / "half").exists()
    missing = runner.invoke(app, ["registry", "show", "zzz"])
    assert missing.exit_code == 1 and "no run 'zzz'" in missing.output
    outside = project / "outside"
    outside.mkdir()
    for bad in ("", "..", str(outside), f"{good.name}/dvclive"):  # never a folder other than one run
        refused = runner.invoke(app, ["registry", "rm", bad, "--yes"])
        assert refused.exit_code == 1 and "is not a run id" in refused.output, bad
    assert outside.is_dir() and (good / "dvclive").is_dir() and runs.is_dir()
    unknown = runner.invoke(app, ["registry", "best", "--metric", "f1"])
    assert unknown.exit_code == 2 and "expected one of accuracy, macro_f1, log_loss" in unknown.output


def test_damaged_predictions_or_store_meta_are_named_not_tracebacks(project):
    for seed in ("0", "1"):
        assert runner.invoke(app, ["train", "cnn4", "--epochs", "1", "--seed", seed, *NO_LOG_AUG]).exit_code == 0
    runs = project / "artifacts" / "runs"
    a, b = sorted(runs.iterdir())
    assert runner.invoke(app, ["registry"]).exit_code == 0  # the index now caches both as sound
    np.save(b / "val_probs.npy", np.zeros((5, 2), dtype=np.float32))  # another run's shape, under the same name
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    n_val, k = len(np.load(a / "val_index.npy")), json.loads((a / "run.json").read_text())["num_classes"]
    assert listing.exit_code == 0 and a.name in listing.output and "1 run(s)" in listing.output
    assert f"broken run folder {b.name}: val_probs.npy is float32[5, 2], expected floats of shape ({n_val}, {k})" in (
        listing.output
    )
    built = runner.invoke(app, ["ensemble"], env={"COLUMNS": "250"})
    assert built.exit_code == 0 and f"skipped {b.name}: broken folder: val_probs.npy is float32[5, 2]" in built.output
    (a / "test_probs.npy").write_bytes((a / "test_probs.npy").read_bytes()[:100])  # cut short
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert f"broken run folder {a.name}: test_probs.npy is unreadable" in listing.output
    meta = json.loads((project / "data" / "features" / "meta.json").read_text())
    del meta["splits"]["train"]["labels"]
    (project / "data" / "features" / "meta.json").write_text(json.dumps(meta))
    refused = runner.invoke(app, ["train", "cnn4", "--epochs", "1"], env={"COLUMNS": "250"})
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.output.strip().splitlines()[-1] == (
        "error: data/features/meta.json: key splits.train.labels is missing; rebuild with `kit features --force`"
    )


def test_the_registry_sees_a_run_json_replaced_under_the_same_name(project):
    """`dvc checkout` / `dvc exp apply` replace a run folder's files under its name: the index follows."""
    assert runner.invoke(app, ["train", "cnn4", "--epochs", "1", *NO_LOG_AUG]).exit_code == 0
    (run,) = (project / "artifacts" / "runs").iterdir()
    assert runner.invoke(app, ["registry"]).exit_code == 0  # index.json written
    meta = json.loads((run / "run.json").read_text())
    meta["metrics"]["accuracy"] = 0.123456
    tmp = run / "run.json.new"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, run / "run.json")
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and "0.1235" in listing.output


def test_schedulers_and_options_run(project):
    for extra in (
        ["--scheduler", "cosine_restarts", "--optimizer", "sgd", "--balance", "sampler"],
        ["--scheduler", "plateau", "--mixup-alpha", "0.4", "--label-smoothing", "0.1"],
        ["--scheduler", "multistep", "--early-stop", "1", "--stem", "stride1", "--freq-shift", "2"],
    ):
        result = runner.invoke(app, ["train", "cnn4", "--epochs", "3", *NO_LOG_AUG, *extra])
        assert result.exit_code == 0, (extra, result.output)
    runs = list((project / "artifacts" / "runs").iterdir())
    shifts = [json.loads((r / "run.json").read_text())["params"]["augment"]["freq_shift"] for r in runs]
    assert sorted(shifts) == [0, 0, 2]


def test_keep_last_keeps_the_final_epoch(project):
    result = runner.invoke(app, ["train", "cnn4", *FAST, "--keep", "last"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (project / "artifacts" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["best_epoch"] == [3] and meta["params"]["keep"] == "last"


def test_precision_auto_is_bf16_where_the_cpu_has_it_and_runs_record_theirs(project, monkeypatch):
    import torch

    from kit.device import autocast_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda n=native: n)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)
        assert autocast_dtype("auto", cuda) == autocast_dtype("bf16", cpu) == torch.bfloat16
        assert autocast_dtype("fp32", cuda) is None
    monkeypatch.undo()
    monkeypatch.chdir(project)

    probs = {}
    for precision in ("fp32", "bf16"):
        result = runner.invoke(app, ["train", "cnn4", *FAST, "--precision", precision, "--name", precision])
        assert result.exit_code == 0, result.output
        meta = json.loads((project / "artifacts" / "runs" / precision / "run.json").read_text())
        assert meta["device"].endswith(f", {precision})") and meta["metrics"]["accuracy"] > 0.6
        assert meta["key"] == json.loads((project / "artifacts" / "runs" / "fp32" / "run.json").read_text())["key"]
        probs[precision] = np.load(project / "artifacts" / "runs" / precision / "val_probs.npy")
    assert not np.array_equal(probs["fp32"], probs["bf16"])


def test_the_weights_moving_average_is_what_is_validated_and_kept(project):
    def run(name: str, *extra: str) -> np.ndarray:
        result = runner.invoke(app, ["train", "cnn4", *FAST, "--name", name, *extra])
        assert result.exit_code == 0, result.output
        return np.load(project / "artifacts" / "runs" / name / "val_probs.npy")

    off = run("off")
    assert np.allclose(run("latest", "--ema-epochs", "0.001"), off, atol=1e-5)  # decay 0: the latest weights
    slow = run("slow", "--ema-epochs", "1000")  # barely moves from the first step's weights
    assert not np.allclose(slow, off, atol=1e-2)
    meta = json.loads((project / "artifacts" / "runs" / "slow" / "run.json").read_text())
    assert meta["params"]["ema_epochs"] == 1000


def test_the_moving_average_does_torchs_ema_arithmetic_and_resumes_from_its_state():
    """kit updates the average itself (torch's update copies its step count to the device every
    step, which waits for the GPU); weights, BatchNorm statistics and batch counts must come out as
    torch's do."""
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from kit.training.ema import moving_average

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ours = moving_average(model, 0.5, steps=4)  # decay 1 - 1 / 2
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    for step in range(6):
        model(torch.randn(8, 1, 5, 5)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        if step == 3:  # resume: a fresh average loaded from the checkpoint's state
            ours, state = moving_average(model, 0.5, steps=4), ours.state_dict()
            ours.load_state_dict(state)
        ours.update_parameters(model)
        theirs.update_parameters(model)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    assert not torch.equal(ours.module[0].weight, model[0].weight)  # an average, not the latest weights


def test_self_training_labels_unlabelled_clips_itself_and_never_reads_their_labels(tmp_path):
    """From the start epoch on, the validation and test clips the model is sure of join the batches
    under its own labels: scrambling the validation labels leaves the trained weights unchanged."""
    import dataclasses

    import torch

    from kit.features.store import FeatureStore
    from kit.params import AugmentParams, PseudoParams
    from kit.training.loop import Fold, fit_fold

    store = FeatureStore.open(tiny_store(tmp_path / "f"))
    x = torch.from_numpy(np.concatenate([store.model_input("train"), store.model_input("test")]))
    y = torch.from_numpy(np.concatenate([store.labels("train"), np.full(12, -1)]))
    fold = Fold(x, y, np.arange(48), np.arange(48, 60), x[60:], 3, test_rows=np.arange(60, 72))
    p = TrainParams(
        epochs=4,
        batch_size=16,
        lr=0.01,
        keep="last",
        augment=AugmentParams(mixup_alpha=0, sum_mix=0, filter_db=0),
        pseudo=PseudoParams(start=0.5, threshold=0.01),  # every unlabelled clip joins
    )
    cpu = torch.device("cpu")
    (first,) = fit_fold(fold, p, "cnn4", [0], cpu, tmp_path / "a")
    assert [r["pseudo_labels"] for r in first.history] == [0, 0, 24, 24]  # 12 validation + 12 test clips
    scrambled = y.clone()
    scrambled[48:60] = (scrambled[48:60] + 1) % 3
    (second,) = fit_fold(dataclasses.replace(fold, y=scrambled), p, "cnn4", [0], cpu, tmp_path / "b")
    assert np.array_equal(first.test_probs, second.test_probs)
    assert first.history[-1]["val_accuracy"] != second.history[-1]["val_accuracy"]
    (plain,) = fit_fold(fold, dataclasses.replace(p, pseudo=PseudoParams()), "cnn4", [0], cpu, tmp_path / "c")
    assert "pseudo_labels" not in plain.history[0] and not np.allclose(plain.test_probs, first.test_probs)


def test_bad_options_are_one_line_errors(project):
    """Ranges and combinations are the schema's (tests/test_params.py covers each kind); these are
    the ones training relied on."""
    cases = {
        ("--scheduler", "warp"): "--scheduler (train.scheduler): expected one of onecycle",
        ("--epochs", "0"): "--epochs (train.epochs): must be ≥ 1, got 0",
        ("--early-stop", "-1"): "--early-stop (train.early_stop): must be ≥ 0, got -1",
        ("--ema-epochs", "-1"): "--ema-epochs (train.ema_epochs): must be ≥ 0, got -1.0",
        ("--pseudo-start", "1"): "--pseudo-start (train.pseudo.start): must be in [0, 1), got 1.0",
        ("--epochs", "10", "--pseudo-start", "0.99"): "train.pseudo.start 0.99 of train.epochs 10 leaves no epoch",
        ("--freq-shift", "-1"): "--freq-shift (train.augment.freq_shift): must be ≥ 0, got -1",
        ("--pack", "0"): "--pack (train.pack): must be ≥ 1, got 0",
        ("--pack", "2", "--pseudo-start", "0.5"): "train.pack 2 contradicts train.pseudo.start 0.5",
        ("--pack", "2", "--early-stop", "3"): "train.pack 2 contradicts train.early_stop 3",
    }
    for args, message in cases.items():
        bad = runner.invoke(app, ["train", "cnn4", *args])
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
    assert not (project / "artifacts").exists()  # refused before anything was written
    missing = runner.invoke(app, ["train", "cnn4", "--features", "nowhere"])
    assert missing.exit_code == 1 and "nowhere: no feature store here" in missing.output
    assert TrainParams().arch == "cnn4f"


@pytest.mark.parametrize("split_args", [["--refit"], ["--folds", "3"], []])
def test_predict_with_tta_registers_a_comparable_run(project, split_args):
    assert runner.invoke(app, ["train", "cnn4", *FAST, *split_args]).exit_code == 0
    (source,) = (project / "artifacts" / "runs").iterdir()
    same = runner.invoke(app, ["predict", source.name, "--tta", "1"])
    assert same.exit_code == 0, same.output
    again = project / "artifacts" / "runs" / f"{source.name}-tta1"
    # one unshifted copy with the stored weights reproduces the run's own predictions
    assert np.allclose(np.load(again / "val_probs.npy"), np.load(source / "val_probs.npy"), atol=1e-5)
    assert np.allclose(np.load(again / "test_probs.npy"), np.load(source / "test_probs.npy"), atol=1e-5)
    shifted = runner.invoke(app, ["predict", source.name, "--tta", "4"])
    assert shifted.exit_code == 0 and "with TTA" in shifted.output
    meta = json.loads((project / "artifacts" / "runs" / f"{source.name}-tta4" / "run.json").read_text())
    original = json.loads((source / "run.json").read_text())
    assert meta["tta"] == {"source": source.name, "time_shifts": 4}
    assert meta["split_id"] == original["split_id"] and meta["feature_hash"] == original["feature_hash"]
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert f"{source.name}-tta4" in listing.output


def test_predict_with_tta_on_a_store_without_test_clips(project):
    store = project / "data" / "features"
    meta = json.loads((store / "meta.json").read_text())
    del meta["splits"]["test"]
    (store / "meta.json").write_text(json.dumps(meta))
    (store / "test.npy").unlink()
    assert runner.invoke(app, ["train", "cnn4", *FAST]).exit_code == 0
    (source,) = (project / "artifacts" / "runs").iterdir()
    result = runner.invoke(app, ["predict", source.name, "--tta", "2"])
    assert result.exit_code == 0, result.output
    files = {p.name for p in (project / "artifacts" / "runs" / f"{source.name}-tta2").iterdir()}
    assert {"run.json", "val_probs.npy", "val_index.npy"} <= files and "test_probs.npy" not in files


def test_a_run_sees_only_the_channels_it_names_and_re_predicts_with_them(project):
    unnamed = runner.invoke(app, ["train", "cnn4", *FAST, "--channels", "signal"])
    assert unnamed.exit_code == 1 and "train.channels: data/features/meta.json names no channels" in unnamed.output
    add_noise_channel(project / "data" / "features")
    assert runner.invoke(app, ["train", "cnn4", *FAST, "--name", "both"]).exit_code == 0
    result = runner.invoke(app, ["train", "cnn4", *FAST, "--channels", "signal", "--name", "signal"])
    assert result.exit_code == 0, result.output
    runs = project / "artifacts" / "runs"
    meta, both = (json.loads((runs / r / "run.json").read_text()) for r in ("signal", "both"))
    assert meta["params"]["channels"] == ["signal"] and both["params"]["channels"] == []
    assert meta["key"] != both["key"] and meta["feature_hash"] == both["feature_hash"]  # comparable runs
    assert meta["metrics"]["accuracy"] > 0.6
    assert load_file(runs / "signal" / "model.safetensors")["net.features.0.0.weight"].shape[1] == 1
    again = runner.invoke(app, ["predict", "signal", "--tta", "1"])
    assert again.exit_code == 0, again.output
    assert np.allclose(
        np.load(runs / "signal-tta1" / "test_probs.npy"), np.load(runs / "signal" / "test_probs.npy"), atol=1e-5
    )
    bad = runner.invoke(app, ["train", "cnn4", *FAST, "--channels", "signal,vocals"])
    assert bad.exit_code == 1
    assert "train.channels: vocals is not a channel of data/features (it has signal, noise)" in bad.output


@pytest.mark.parametrize("mode", ["band", "global"])
def test_input_standardisation_is_per_channel(mode):
    import torch

    from kit.training.model import input_stats

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2, 8, 10)).astype(np.float32)
    x[:, 0] = x[:, 0] * 3 + 5  # the mix channel: mean 5, std 3
    x[:, 1] = x[:, 1] * 0.5 - 2  # the vocals channel: mean -2, std 0.5
    x[:, :, 0] += 10  # the lowest band is louder in both
    mean, std = input_stats(torch.from_numpy(x), np.arange(40), mode, freq_dim=2)
    z = (x - mean.numpy()) / std.numpy()
    keep = (1, 2) if mode == "band" else (1,)
    axes = tuple(d for d in range(4) if d not in keep)
    assert mean.shape == ((1, 2, 8, 1) if mode == "band" else (1, 2, 1, 1))
    assert np.allclose(z.mean(axis=axes), 0, atol=1e-4) and np.allclose(z.std(axis=axes), 1, atol=1e-3)


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine_restarts", "multistep"])
def test_replaying_the_schedule_on_resume_sets_the_rates_and_warns_nothing(scheduler):
    """Resuming replays the finished epochs' schedule on a fresh optimizer, which torch warns about
    (bench scripts train in-process, where kit's CLI does not silence library warnings)."""
    import warnings

    import torch

    from kit.params import TrainParams
    from kit.training.schedule import Schedule

    p = TrainParams(epochs=4, lr=0.01, scheduler=scheduler, milestones=[1, 2])
    straight = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=p.lr)
    schedule = Schedule(straight, p, steps=3)
    for epoch in range(2):
        for i in range(3):
            straight.step()
            schedule.batch_end(epoch, i)
        schedule.epoch_end(0.5)
    fresh = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=p.lr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Schedule(fresh, p, steps=3).replay([{"epoch": 0}, {"epoch": 1}], "accuracy")
    assert fresh.param_groups[0]["lr"] == pytest.approx(straight.param_groups[0]["lr"])
