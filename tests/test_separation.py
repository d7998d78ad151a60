"""`kit separate`: the dsp backend for real, the stems cache, stems as feature channels, and the
spleeter guards and worker protocol (spleeter itself replaced by a stand-in package: the real
one needs TensorFlow and weights from GitHub, neither of which a test may fetch)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio import contest
from typer.testing import CliRunner

from kit.cli.app import app
from kit.data import synth, synth_dsp
from kit.errors import KitError
from kit.features.store import FeatureStore
from kit.params import DspParams
from kit.separation.dsp import separate
from kit.separation.spleeter import check_model_dir, check_not_half_mix

runner = CliRunner()
SR = 22050


def _voice_over_band(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    song = synth.make_song(rng, SR, 3.0)
    acc = sum(
        p / (synth_dsp.rms(p) + 1e-9) for p in (synth.chords_part(song), synth.bass_part(song), synth.drums_part(song))
    )
    voice = synth.voices_part(song, 1 + seed % 3)
    voice = voice / (synth_dsp.rms(voice) + 1e-9)
    scale = 0.1 / synth_dsp.rms(acc + voice)
    return (voice * scale).astype(np.float32), ((acc + voice) * scale).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dsp_vocals_are_closer_to_the_true_voice_than_the_mix(seed):
    voice, mix = _voice_over_band(seed)
    vocals, accomp = separate(mix, SR, DspParams())
    assert vocals.shape == accomp.shape == mix.shape and vocals.dtype == np.float32
    err_sep, err_mix = np.sum((voice - vocals) ** 2), np.sum((voice - mix) ** 2)
    assert err_sep < 0.5 * err_mix  # at least 3 dB better than doing nothing


def test_dsp_on_a_clip_too_short_to_repeat_gives_all_accompaniment():
    y = np.random.default_rng(0).standard_normal(1024).astype(np.float32)  # 3 frames
    vocals, accomp = separate(y, SR, DspParams())
    assert not vocals.any() and np.array_equal(accomp, y)


def _project(tmp_path, monkeypatch, params: str = "") -> Path:
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "data" / "raw")
    (tmp_path / "params.yaml").write_text(params)
    return tmp_path


def test_separate_writes_stems_once_and_features_take_them_as_channels(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch, "separate:\n  workers: 1\n  accompaniment: true\n")
    first = runner.invoke(app, ["separate"])
    assert first.exit_code == 0, first.output
    assert "9 clips separated with dsp" in first.output and "22050 Hz" in first.output
    vocals, sr = sf.read(tmp_path / "data/stems/train/3.vocals.flac")
    assert sr == 22050 and vocals.shape == (66150,) and np.abs(vocals).max() > 0
    assert (tmp_path / "data/stems/test/2.accompaniment.flac").exists()
    again = runner.invoke(app, ["separate"])
    assert again.exit_code == 0 and "is up to date" in again.output

    feats = runner.invoke(app, ["features"])  # default input: mix + vocals
    assert feats.exit_code == 0, feats.output
    store = FeatureStore.open(tmp_path / "data/features")
    assert store.array("train").shape == (6, 2, 128, 130) and store.meta["channels"] == ["mix", "vocals"]
    mix_only = runner.invoke(app, ["features", "--input", "mix", "--out", "mixfeat"])
    assert mix_only.exit_code == 0
    mix_store = FeatureStore.open(tmp_path / "mixfeat")
    assert np.array_equal(mix_store.array("train")[:, 0], store.array("train")[:, 0])
    assert not np.array_equal(store.array("train")[:, 1], store.array("train")[:, 0])
    assert mix_store.feature_hash != store.feature_hash


def test_features_refuse_missing_or_stale_stems(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch, "separate:\n  workers: 1\n")
    missing = runner.invoke(app, ["features"])
    assert missing.exit_code == 1
    assert "features.input is mix+vocals: it needs vocal stems from `kit separate`" in missing.output
    assert runner.invoke(app, ["separate"]).exit_code == 0
    sf.write(tmp_path / "data/raw/train_mp3s/0.mp3", np.zeros(22050, np.float32), 22050, format="MP3")
    stale = runner.invoke(app, ["features"])
    assert stale.exit_code == 1 and "were made from other clips: run `kit separate` again" in stale.output
    assert not (tmp_path / "data/features").exists()


def test_spleeter_refuses_a_missing_or_empty_model_folder(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch)
    (tmp_path / "models").mkdir()
    empty = runner.invoke(app, ["separate", "--backend", "spleeter", "--model-dir", "models"])
    assert empty.exit_code == 1
    assert "spleeter model folder models/2stems is missing: download" in empty.output
    (tmp_path / "models/2stems").mkdir()
    empty = runner.invoke(app, ["separate", "--backend", "spleeter", "--model-dir", "models"])
    assert empty.exit_code == 1 and "models/2stems is empty" in empty.output
    assert not (tmp_path / "data/stems").exists()
    with pytest.raises(KitError, match="has no checkpoint"):
        (tmp_path / "models/2stems/model.meta").write_bytes(b"x")
        check_model_dir(tmp_path / "models")


def test_half_of_the_mix_is_detected_as_spleeter_garbage(tmp_path):
    mix = [np.random.default_rng(i).standard_normal(1000).astype(np.float32) for i in range(3)]
    with pytest.raises(KitError, match="vocals equal to half of the mix"):
        check_not_half_mix([0.5 * m for m in mix], mix, tmp_path)
    check_not_half_mix([0.2 * m + 0.01 for m in mix], mix, tmp_path)  # a real separation passes


FAKE_SPLEETER = {
    "spleeter/__init__.py": "",
    "spleeter/audio/__init__.py": "",
    "spleeter/audio/adapter.py": """
        import soundfile as sf, numpy as np, soxr
        class AudioAdapter:
            @classmethod
            def default(cls):
                return cls()
            def load(self, path, sample_rate):
                y, sr = sf.read(path, dtype="float32", always_2d=True)
                y = soxr.resample(y, sr, sample_rate)
                return np.repeat(y[:, :1], 2, axis=1), sample_rate
    """,
    "spleeter/separator.py": """
        import os
        FACTOR = float(os.environ["FAKE_SPLEETER_FACTOR"])
        class Separator:
            def __init__(self, config, multiprocess=True):
                assert config == "spleeter:2stems" and os.environ["MODEL_PATH"]
            def separate(self, wave):
                return {"vocals": FACTOR * wave, "accompaniment": (1 - FACTOR) * wave}
    """,
}


def _fake_spleeter_env(tmp_path: Path, monkeypatch, factor: float) -> None:
    """A 'venv' whose python is this interpreter, with a stand-in spleeter package on its path."""
    site = tmp_path / "fake_site"
    for rel, text in FAKE_SPLEETER.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(textwrap.dedent(text))
    (tmp_path / "env/bin").mkdir(parents=True)
    (tmp_path / "env/bin/python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (tmp_path / "env/bin/python").chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/ffmpeg").write_text("#!/bin/sh\n")
    (tmp_path / "bin/ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("FAKE_SPLEETER_FACTOR", str(factor))
    weights = tmp_path / "models/2stems"
    weights.mkdir(parents=True)
    for name in ("checkpoint", "model.index", "model.data-00000-of-00001"):
        (weights / name).write_bytes(b"weights")


SPLEETER_PARAMS = (
    "separate:\n  backend: spleeter\n  spleeter:\n    env: env\n    model_dir: models\n    batch_size: 4\n"
)


def test_spleeter_worker_protocol_end_to_end(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch, SPLEETER_PARAMS)
    _fake_spleeter_env(tmp_path, monkeypatch, factor=0.3)
    result = runner.invoke(app, ["separate"])
    assert result.exit_code == 0, result.output
    assert "9 clips separated with spleeter" in result.output
    mix, _ = sf.read(tmp_path / "data/raw/train_mp3s/4.mp3", dtype="float32")
    vocals, sr = sf.read(tmp_path / "data/stems/train/4.vocals.flac", dtype="float32")
    assert sr == 22050 and vocals.shape == (66150,)
    n = min(len(mix), len(vocals)) - 2000
    assert np.abs(vocals[1000:n] - 0.3 * mix[1000:n]).max() < 0.01  # 0.3 x the mix, as the stand-in said


def test_spleeter_silent_garbage_stops_the_run(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch, SPLEETER_PARAMS)
    _fake_spleeter_env(tmp_path, monkeypatch, factor=0.5)
    result = runner.invoke(app, ["separate"])
    assert result.exit_code == 1
    assert "spleeter returned vocals equal to half of the mix" in result.output
    assert not (tmp_path / "data/stems").exists()


def test_demucs_without_its_extra_says_how_to_install(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch)
    monkeypatch.setitem(sys.modules, "demucs", None)  # not installed
    monkeypatch.setitem(sys.modules, "demucs.pretrained", None)
    result = runner.invoke(app, ["separate", "--backend", "demucs"])
    assert result.exit_code == 1 and "demucs is not installed: pip install 'kit[demucs]'" in result.output


def test_separate_never_replaces_a_folder_that_is_not_a_stems_folder(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch, "separate:\n  workers: 1\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    result = runner.invoke(app, ["separate", "--out", "notes"])
    assert result.exit_code == 1 and "--out notes exists and is not a stems folder" in result.output
    inside = runner.invoke(app, ["separate", "--out", "data/raw/stems"])
    assert inside.exit_code == 1 and "overlaps the dataset" in inside.output
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
