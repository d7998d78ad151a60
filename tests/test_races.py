"""Commands racing on one folder: a reader holds one version of what it reads, or refuses.

The interleavings are injected at the point where the race bit (the store replaced after training
opened it; the stems replaced between two batches of `kit features`), with the real writers
landing the new version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from audio import contest
from stores import tiny_store
from typer.testing import CliRunner

import kit.features.store as store_mod
import kit.training.run as run_mod
from kit.atomic import atomic_dir
from kit.cli.app import app
from kit.features.extract import AudioFrontend
from kit.features.store import FeatureStore

runner = CliRunner()
TRAIN = ["train", "cnn4", "--epochs", "3", "--batch-size", "16", "--sum-mix", "0", "--filter-db", "0"]


def _land_new_store(path: Path) -> None:
    """What `kit features` does when it lands: the whole folder replaced by another version."""
    with atomic_dir(path) as tmp:
        tiny_store(tmp, seed=1, voice=True)


def _train(project: Path, monkeypatch) -> tuple[dict, np.ndarray]:
    monkeypatch.chdir(project)
    result = runner.invoke(app, [*TRAIN, "--voice-weight", "0.5"])
    assert result.exit_code == 0, result.output
    (run,) = (project / "artifacts" / "runs").iterdir()
    return json.loads((run / "run.json").read_text()), np.load(run / "val_probs.npy")


def test_a_store_replaced_while_training_changes_nothing_the_run_read_or_records(tmp_path, monkeypatch):
    tiny_store(tmp_path / "alone" / "data" / "features", voice=True)
    meta, probs = _train(tmp_path / "alone", monkeypatch)  # the same training with nobody racing it

    tiny_store(tmp_path / "raced" / "data" / "features", voice=True)
    real = run_mod._train_folds

    def store_replaced_first(plan, *args, **kwargs):  # the store was opened; `kit features` lands now
        _land_new_store(Path("data/features"))
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(run_mod, "_train_folds", store_replaced_first)
    raced_meta, raced_probs = _train(tmp_path / "raced", monkeypatch)
    assert FeatureStore.open(tmp_path / "raced" / "data" / "features").feature_hash == "tiny0001abcdef12"
    assert raced_meta["feature_hash"] == meta["feature_hash"] == "tiny0000abcdef12"
    assert raced_meta["voice"] == meta["voice"]  # the voice head, fitted after training, read the same version
    np.testing.assert_array_equal(raced_probs, probs)


def test_opening_a_store_while_it_is_replaced_gives_one_version(tmp_path, monkeypatch):
    path = tiny_store(tmp_path / "features", voice=True)
    real, calls = store_mod._check_array, []

    def replaced_midway(file, shape):  # meta.json of the old version read; the new one lands now
        calls.append(file)
        if len(calls) == 2:
            _land_new_store(path)
        real(file, shape)

    monkeypatch.setattr(store_mod, "_check_array", replaced_midway)
    store = FeatureStore.open(path)
    new = np.load(path / "train.npy")
    assert store.feature_hash == "tiny0001abcdef12" and len(calls) > 4  # read again, whole
    np.testing.assert_array_equal(store.array("train"), new)


def test_features_refuses_stems_replaced_while_it_read_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "data" / "raw")
    separate = [sys.executable, "-m", "kit", "separate"]
    assert subprocess.run(separate, capture_output=True).returncode == 0
    real = AudioFrontend.write_chunk
    chunks = []

    def separate_lands_after_the_first_chunk(self, *args, **kw):
        done = real(self, *args, **kw)
        chunks.append(done)
        if len(chunks) == 1:  # `kit separate` with other params lands new stems after the first chunk
            again = subprocess.run([*separate, "-S", "separate.dsp.margin_vocals=3"], capture_output=True)
            assert again.returncode == 0, again.stderr
        return done

    monkeypatch.setattr(AudioFrontend, "write_chunk", separate_lands_after_the_first_chunk)
    one_process = ["-S", "features.workers=1"]  # the patch acts in this process
    result = runner.invoke(app, ["features", "--no-voice", *one_process], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: the stems in data/stems were replaced (by `kit separate`?) while kit features read them: "
        "nothing was written; run kit features again"
    )
    assert not (tmp_path / "data" / "features").exists()
    assert len(chunks) > 1  # it read on after the stems changed
    monkeypatch.setattr(AudioFrontend, "write_chunk", real)
    assert runner.invoke(app, ["features", "--no-voice"]).exit_code == 0  # the rerun reads the new stems whole
    stems_hash = json.loads((tmp_path / "data" / "stems" / "meta.json").read_text())["stems_hash"]
    assert (
        json.loads((tmp_path / "data" / "features" / "meta.json").read_text())["frontend"]["stems_hash"] == stems_hash
    )
