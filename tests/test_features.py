"""Front-ends against their references, and the feature store's contract."""

from __future__ import annotations

import dataclasses
import json

import librosa
import numpy as np
import pytest
import python_speech_features as psf
from audio import contest, tone, write_clip
from PIL import Image
from typer.testing import CliRunner

from kit.cli.app import app
from kit.data.audio import load
from kit.data.layout import load_dataset
from kit.errors import KitError
from kit.features.extract import extract
from kit.features.frontends import SpectralFrontend, fbank, logfreq, logmel
from kit.features.store import FeatureStore
from kit.params import FbankParams, FeaturesParams, LogfreqParams, LogmelParams

runner = CliRunner()
MIX = dataclasses.replace(FeaturesParams(), input="mix")  # the front-end alone (no vocal stems)


def _signals(n: int, sr: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(n) / sr
    return np.stack(
        [
            tone(n / sr, sr),  # harmonic
            0.5 * rng.standard_normal(n),  # loud noise
            1e-4 * np.sin(2 * np.pi * 440 * t),  # very quiet
            np.where(t < 1.0, np.sin(2 * np.pi * 3000 * t), 0.0),  # tone then silence
            np.zeros(n),  # silence
        ]
    ).astype(np.float32)


def test_logmel_matches_librosa_within_1e3_db():
    x = _signals(66150, 22050)
    ours = SpectralFrontend(logmel(LogmelParams(), 3.0))(x)
    assert ours.shape == (5, 128, 130)
    for row, y in zip(ours, x):
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050))
        assert np.abs(row - ref).max() < 1e-3


def test_a_clip_gets_the_same_features_whatever_batch_it_comes_in():
    """The front-end keeps its work tensors between calls: batch sizes up and down must not leak state."""
    x = _signals(66150, 22050)
    frontend = SpectralFrontend(logmel(LogmelParams(), 3.0))
    first = frontend(x)
    for batch in (x[4:], x[1:4], x[::-1]):
        again = frontend(batch)
        expected = first[4:] if len(batch) == 1 else first[1:4] if len(batch) == 3 else first[::-1]
        np.testing.assert_array_equal(again, expected)


def test_logmel_other_params_match_librosa():
    p = LogmelParams(sr=16000, n_fft=1024, hop_length=256, n_mels=64, fmin=50.0, fmax=7000.0, top_db=None)
    x = _signals(32000, 16000)
    ours = SpectralFrontend(logmel(p, 2.0))(x)
    for row, y in zip(ours, x):
        S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=256, n_mels=64, fmin=50, fmax=7000)
        assert np.abs(row - librosa.power_to_db(S, top_db=None)).max() < 1e-3


def test_fbank_matches_python_speech_features_299x40():
    x = _signals(48000, 16000)
    ours = SpectralFrontend(fbank(FbankParams(), 3.0))(x)
    assert ours.shape == (5, 299, 40)
    for row, y in zip(ours, x):
        feat, _ = psf.fbank(
            y.astype(np.float64),
            16000,
            winlen=0.025,
            winstep=0.01,
            nfilt=40,
            nfft=1024,
            lowfreq=0,
            highfreq=8000,
            preemph=0.97,
            winfunc=np.hamming,
        )
        assert np.abs(row - np.log(feat)).max() < 1e-3


def _spectrum(spec, y: np.ndarray) -> np.ndarray:
    """Mean dB per band over the frames of one clip."""
    return SpectralFrontend(spec)(y.astype(np.float32)[None])[0].mean(axis=1)


def test_logfreq_resolves_two_voices_a_whole_tone_apart_that_logmel_merges():
    t = np.arange(66150) / 22050
    duet = np.sin(2 * np.pi * 200 * t) + np.sin(2 * np.pi * 225 * t)
    lf = _spectrum(logfreq(LogfreqParams(), 3.0), duet)
    assert lf.shape == (128,)
    centres = np.geomspace(60, 8000, 128)
    a, b = np.abs(centres - 200).argmin(), np.abs(centres - 225).argmin()
    assert min(lf[a], lf[b]) - lf[a + 1 : b].min() > 6  # two peaks with a dip between
    lm = _spectrum(logmel(LogmelParams(), 3.0), duet)
    mel = librosa.mel_frequencies(130, fmin=0, fmax=11025)[1:-1]
    a, b = np.abs(mel - 200).argmin(), np.abs(mel - 225).argmin()
    assert b == a + 1 and sorted(np.argsort(lm)[-2:]) == [a, b]  # adjacent mel bands: one bump, no dip


def test_logfreq_puts_a_tone_in_its_band_and_keeps_noise_flat():
    t = np.arange(66150) / 22050
    spec = logfreq(LogfreqParams(), 3.0)
    centres = np.geomspace(60, 8000, 128)
    for f in (100, 440, 1000, 5000):
        assert abs(_spectrum(spec, np.sin(2 * np.pi * f * t)).argmax() - np.abs(centres - f).argmin()) <= 1
    noise = _spectrum(spec, np.random.default_rng(0).standard_normal(66150))
    assert noise.max() - noise.min() < 5  # bands average power: white noise stays level from 60 Hz to 8 kHz
    with pytest.raises(KitError, match="features.logfreq: needs 0 < fmin < fmax ≤ sr/2"):
        logfreq(LogfreqParams(fmax=12000.0), 3.0)


def test_combined_front_ends_are_each_front_ends_channels_in_one_store(tmp_path):
    ds = load_dataset(contest(tmp_path / "data"), 4)
    both = extract(ds, dataclasses.replace(MIX, frontend="logmel+logfreq"), tmp_path / "both").store
    mel = extract(ds, MIX, tmp_path / "mel").store
    freq = extract(ds, dataclasses.replace(MIX, frontend="logfreq"), tmp_path / "freq").store
    assert both.meta["channels"] == ["mix:logmel", "mix:logfreq"] and both.meta["shape"] == [2, 128, 130]
    for split in ("train", "test"):
        combined = np.concatenate([mel.array(split), freq.array(split)], axis=1)
        np.testing.assert_array_equal(both.array(split), combined)
    assert both.meta["frontend"]["name"] == "logmel+logfreq" and both.meta["frontend"]["log"] == "db"
    assert len({both.feature_hash, mel.feature_hash, freq.feature_hash}) == 3
    fewer_mels = dataclasses.replace(MIX, frontend="logmel+logfreq", logmel=LogmelParams(n_mels=64))
    with pytest.raises(KitError, match=r"logmel\+logfreq: combined front-ends need one sample rate and shape "):
        extract(ds, fewer_mels, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_decoding_matches_librosa_load_for_stereo_44k(tmp_path):
    path = write_clip(tmp_path / "a.wav", seconds=2.0, sr=44100, channels=2)
    ref, _ = librosa.load(path, sr=22050)
    ours = load(path, 22050, 3.0)
    assert ours.shape == (66150,) and np.abs(ours[: len(ref)] - ref).max() < 1e-6
    assert not ours[len(ref) :].any()  # zero-padded to 3 s


def test_store_contract_and_values(tmp_path):
    ds = load_dataset(contest(tmp_path / "data"), 4)
    result = extract(ds, MIX, tmp_path / "feat")
    store = FeatureStore.open(tmp_path / "feat")
    train = store.array("train")
    assert result.built and isinstance(train, np.memmap)
    assert train.shape == (6, 1, 128, 130) and train.dtype == np.float16
    assert store.array("test").shape == (3, 1, 128, 130)
    assert store.ids("train") == ["0", "1", "2", "3", "4", "5"]
    assert store.labels("train").tolist() == [0, 1, 2, 3, 1, 2] and store.labels("test") is None
    meta = json.loads((tmp_path / "feat" / "meta.json").read_text())
    assert meta["frontend"]["name"] == "logmel" and meta["axes"] == ["channel", "freq", "time"]
    assert len(meta["feature_hash"]) == 16 and meta["num_classes"] == 4
    y, _ = librosa.load(tmp_path / "data/train_mp3s/3.mp3", sr=22050)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050))
    assert np.abs(train[3, 0].astype(np.float32) - ref).max() < 0.05  # float16 rounding of dB values
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "feat"]  # no temp folders left


def test_rerun_does_no_work_until_something_changes(tmp_path):
    data = contest(tmp_path / "data")
    ds = load_dataset(data, 4)
    first = extract(ds, MIX, tmp_path / "feat")
    stamp = (tmp_path / "feat" / "train.npy").stat().st_mtime_ns
    again = extract(ds, MIX, tmp_path / "feat")
    assert not again.built and again.store.feature_hash == first.store.feature_hash
    assert (tmp_path / "feat" / "train.npy").stat().st_mtime_ns == stamp

    changed_param = extract(ds, dataclasses.replace(MIX, frontend="fbank"), tmp_path / "feat")
    assert changed_param.built and changed_param.store.array("train").shape == (6, 1, 299, 40)

    write_clip(data / "train_mp3s" / "4.mp3", f0=500.0)  # same name, new content
    changed_data = extract(load_dataset(data, 4), dataclasses.replace(MIX, frontend="fbank"), tmp_path / "feat")
    assert changed_data.built and changed_data.store.feature_hash != changed_param.store.feature_hash


def test_undecodable_clips_stop_the_run_and_keep_the_old_store(tmp_path):
    data = contest(tmp_path / "data")
    extract(load_dataset(data, 4), MIX, tmp_path / "feat")
    old_hash = FeatureStore.open(tmp_path / "feat").feature_hash
    (data / "train_mp3s" / "1.mp3").write_bytes(b"garbage" * 100)
    (data / "test_mp3s" / "2.mp3").write_bytes(b"\xff\xfb" * 10)
    with pytest.raises(KitError) as err:
        extract(load_dataset(data, 4), MIX, tmp_path / "feat")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("2 clip(s) could not be decoded")
    assert "train_mp3s/1.mp3" in msg and "test_mp3s/2.mp3" in msg and "--on-error silence" in msg
    assert FeatureStore.open(tmp_path / "feat").feature_hash == old_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "feat"]


def test_on_error_silence_lists_clips_in_meta(tmp_path):
    data = contest(tmp_path / "data")
    (data / "train_mp3s" / "1.mp3").write_bytes(b"garbage" * 100)
    params = dataclasses.replace(MIX, on_error="silence")
    result = extract(load_dataset(data, 4), params, tmp_path / "feat")
    assert result.silenced == ["train_mp3s/1.mp3 (unrecognised or corrupt audio format)"]
    assert result.store.meta["silenced"] == result.silenced
    assert (result.store.array("train")[1] == -100).all()  # silence in dB (amin 1e-10)


def test_odd_clips_are_normalised(tmp_path):
    contest(tmp_path / "data", ext=".wav")
    write_clip(tmp_path / "data/train_mp3s/0.wav", channels=2, sr=48000, seconds=0.5)
    write_clip(tmp_path / "data/train_mp3s/1.wav", sr=8000, seconds=60.0)
    result = extract(load_dataset(tmp_path / "data", 4), MIX, tmp_path / "feat")
    train = result.store.array("train")
    assert train.shape == (6, 1, 128, 130)
    assert (train[0, 0, :, 30:] == train[0, 0, :, 30:].min()).all()  # 0.5 s of sound, then padding


def test_image_dataset_store(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(3):
        (tmp_path / "img/train" / f"c{k}").mkdir(parents=True)
        for j in range(2):
            Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8)).save(tmp_path / f"img/train/c{k}/{j}.png")
    result = extract(load_dataset(tmp_path / "img"), MIX, tmp_path / "feat")
    train = result.store.array("train")
    assert train.shape == (6, 1, 128, 128) and 0 <= train.min() and train.max() <= 1
    assert result.store.meta["frontend"]["name"] == "image" and result.store.meta["classes"] == ["c0", "c1", "c2"]


def test_cli_features_twice_says_up_to_date(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "data" / "raw")
    first = runner.invoke(app, ["features", "--input", "mix"])
    assert first.exit_code == 0, first.output
    assert "train │ 6" in first.output and "1×128×130" in first.output
    second = runner.invoke(app, ["features", "--input", "mix"])
    assert second.exit_code == 0 and "is up to date" in second.output and "nothing to do" in second.output
    bad = runner.invoke(app, ["features", "--input", "mix", "--frontend", "mfcc"])
    assert (
        bad.exit_code == 2
        and "--frontend (features.frontend): expected one of logmel, logfreq, fbank, logmel+logfreq, got 'mfcc'"
        in bad.output
    )


def test_cli_features_reads_params_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "clips")
    (tmp_path / "params.yaml").write_text("data:\n  root: clips\nfeatures:\n  out: store\n  frontend: fbank\n")
    result = runner.invoke(app, ["features", "--input", "mix"])
    assert result.exit_code == 0, result.output
    assert FeatureStore.open(tmp_path / "store").array("train").shape == (6, 1, 299, 40)
    (tmp_path / "params.yaml").write_text("features:\n  logmel:\n    n_mel: 64\n")
    bad = runner.invoke(app, ["features", "--input", "mix"])
    assert bad.exit_code == 2
    assert "params.yaml: unknown key 'features.logmel.n_mel'" in bad.output


def test_out_that_is_not_a_store_is_never_replaced(tmp_path):
    data = contest(tmp_path / "data")
    ds = load_dataset(data, 4)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("precious")
    for out, message in (
        (tmp_path / "notes", "exists and is not a feature store"),
        (data, "overlaps the dataset"),
        (data / "train_mp3s", "overlaps the dataset"),
        (tmp_path, "overlaps the dataset"),
    ):
        with pytest.raises(KitError, match=message):
            extract(ds, MIX, out)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "precious"
    assert len(list((data / "train_mp3s").iterdir())) == 6


def test_damaged_store_is_rebuilt_not_trusted(tmp_path):
    ds = load_dataset(contest(tmp_path / "data"), 4)
    extract(ds, MIX, tmp_path / "feat")
    path = tmp_path / "feat" / "train.npy"
    path.write_bytes(path.read_bytes()[:-1000])  # truncated
    with pytest.raises(KitError, match="train.npy is damaged"):
        FeatureStore.open(tmp_path / "feat")
    again = extract(ds, MIX, tmp_path / "feat")
    assert again.built and again.store.array("train").shape == (6, 1, 128, 130)


def test_cli_features_with_data_groups_rebuilds_and_stores_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "clips")
    (tmp_path / "params.yaml").write_text("data:\n  root: clips\nfeatures:\n  out: store\n")
    assert runner.invoke(app, ["features", "--input", "mix"]).exit_code == 0
    plain = FeatureStore.open(tmp_path / "store")
    assert plain.meta["splits"]["train"]["groups"] is None
    (tmp_path / "songs.csv").write_text("id,group\n" + "".join(f"{i},song{i // 2}\n" for i in range(6)))
    (tmp_path / "params.yaml").write_text("data:\n  root: clips\n  groups: songs.csv\nfeatures:\n  out: store\n")
    result = runner.invoke(app, ["features", "--input", "mix"])
    assert result.exit_code == 0 and "up to date" not in result.output, result.output
    grouped = FeatureStore.open(tmp_path / "store")
    assert grouped.meta["splits"]["train"]["groups"] == ["song0", "song0", "song1", "song1", "song2", "song2"]
    assert grouped.feature_hash != plain.feature_hash
    (tmp_path / "songs.csv").write_text("id,group\n0,a\n")
    bad = runner.invoke(app, ["features", "--input", "mix"])
    assert bad.exit_code == 2 and "songs.csv: 5 train clip(s) without a group (first: id 1)" in bad.output
