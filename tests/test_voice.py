"""Voice embeddings in the feature store (the pretrained GE2E encoder) and the runs' voice head."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import librosa
import numpy as np
import pytest
import torch
from audio import contest, tone
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from stores import tiny_store
from typer.testing import CliRunner

from kit.cli.app import app
from kit.data.layout import load_dataset
from kit.errors import KitError
from kit.features import voice
from kit.features.extract import extract
from kit.features.store import FeatureStore
from kit.params import FeaturesParams, VoiceParams
from kit.training import voice_head

runner = CliRunner()
MIX = dataclasses.replace(FeaturesParams(), input="mix")
TINY = [
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--lr",
    "0.01",
    "--mixup-alpha",
    "0",
    "--sum-mix",
    "0",
    "--filter-db",
    "0",
]


def _encoder(sr: int = 22050) -> voice.VoiceEncoder:
    return voice.VoiceEncoder(voice.weights_path(""), sr, 3.0, overlap=VoiceParams().overlap)


def test_the_encoder_embeds_each_input_of_each_clip_whatever_its_level():
    enc = _encoder()
    low, high = tone(f0=110.0, seed=1), tone(f0=330.0, seed=2)
    waves = np.stack([np.stack([low, high]), np.stack([0.05 * low, tone(f0=110.0, seed=3)])])  # (2 clips, 2 inputs)
    emb = enc(waves)
    assert emb.shape == (2, 2, 256) and emb.dtype == np.float32 and (emb >= 0).all()
    assert np.allclose(emb[0, 0], emb[1, 0], atol=1e-4)  # the level is normalised to -30 dBFS
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cos(emb[0, 0], emb[1, 1]) > cos(emb[0, 0], emb[0, 1])  # another 110 Hz voice is nearer than 330 Hz
    assert np.allclose(enc(np.zeros((1, 1, 66150), np.float32)), enc(np.zeros((1, 1, 66150), np.float32)))


def test_the_encoders_mel_input_is_librosas():
    enc = _encoder(16000)
    y = tone(seconds=3.0, sr=16000)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=400, hop_length=160, n_mels=40)
    assert np.allclose(enc._mels(torch.from_numpy(y[None]))[0].T.numpy(), ref, rtol=1e-3, atol=1e-6)
    assert voice.windows(301, 0.5) == [0, 70, 141] and voice.windows(120, 0.5) == [0] and voice.windows(160, 0.1) == [0]


def test_less_overlap_means_fewer_windows_and_a_store_of_its_own(tmp_path):
    assert voice.windows(301, 0.1) == [0, 141] and voice.windows(501, 0.1) == [0, 114, 227, 341]
    assert voice.windows(501, 0.5) == [0, 68, 136, 205, 273, 341]
    assert VoiceParams().overlap == 0.1  # the default: two windows a 3 s clip (docs/results.md)
    ds = load_dataset(contest(tmp_path / "data"))
    half, less = (
        extract(ds, dataclasses.replace(MIX, voice=VoiceParams(overlap=o)), tmp_path / str(o)).store for o in (0.5, 0.1)
    )
    assert "overlap" not in half.meta["frontend"]["voice"]  # half-overlap stores keep the hash they always had
    assert less.meta["frontend"]["voice"]["overlap"] == 0.1 and less.feature_hash != half.feature_hash
    assert np.array_equal(less.array("train"), half.array("train"))  # the spectrograms do not move
    a, b = half.voice("train"), less.voice("train")
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert not np.allclose(a, b) and cos.min() > 0.8  # two windows' mean instead of three's: near, not equal


def test_bad_or_missing_encoder_weights_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(KitError, match=r"features.voice.weights: .*nothing.pt is not a file"):
        voice.weights_path(str(tmp_path / "nothing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(KitError, match=r"junk.pt is not a weights file"):
        voice.load_state(tmp_path / "junk.pt")
    save_file({"lstm.weight_ih_l0": torch.zeros(3)}, tmp_path / "other.safetensors")
    with pytest.raises(KitError, match=r"other.safetensors is not a GE2E encoder \(missing "):
        voice.load_state(tmp_path / "other.safetensors")
    state = voice._encoder().state_dict()
    save_file({n: t[..., :1].contiguous() for n, t in state.items()}, tmp_path / "small.safetensors")
    with pytest.raises(KitError, match=r"small.safetensors is not a GE2E encoder of 256 \(.* has another shape\)"):
        voice.load_state(tmp_path / "small.safetensors")
    save_file({n: t.contiguous() for n, t in state.items()}, tmp_path / "ge2e.safetensors")  # the right tensors load
    assert set(voice.load_state(tmp_path / "ge2e.safetensors")) == set(state)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KitError, match=r"pip install resemblyzer, or set features.voice.weights"):
        voice.weights_path("")


def test_the_store_keeps_voice_embeddings_beside_the_spectrograms(tmp_path):
    ds = load_dataset(contest(tmp_path / "data"))
    with_voice = extract(ds, MIX, tmp_path / "store")
    store = with_voice.store
    assert store.meta["voice"] == {"inputs": ["mix"], "dim": 256}
    assert store.voice("train").shape == (6, 256) and store.voice("test", flat=False).shape == (3, 1, 256)
    assert store.meta["frontend"]["voice"]["weights_sha256"] == voice.file_digest(voice.weights_path(""))
    off = dataclasses.replace(MIX, voice=VoiceParams(embed=False))
    plain = extract(ds, off, tmp_path / "plain").store
    assert plain.voice("train") is None and "voice" not in plain.meta
    assert plain.feature_hash != store.feature_hash and np.array_equal(plain.array("train"), store.array("train"))
    np.save(tmp_path / "store" / "train.voice.npy", np.zeros((5, 1, 256), np.float32))
    with pytest.raises(KitError, match=r"train.voice.npy is damaged"):
        FeatureStore.open(tmp_path / "store")


def test_cli_features_lists_the_voice_embeddings_and_no_voice_leaves_them_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "data" / "raw")
    result = runner.invoke(app, ["features", "--input", "mix"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "voice embeddings" in result.output and "1×256 float32" in result.output
    off = runner.invoke(app, ["features", "--input", "mix", "--no-voice", "--out", "plain"], env={"COLUMNS": "200"})
    assert off.exit_code == 0 and "voice" not in off.output


def test_the_voice_head_learns_a_linear_class_and_never_predicts_an_absent_one():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3  # class 3 of 4 never appears
    v = rng.normal(0, 1, (120, 6))
    v[np.arange(120), y] += 3
    head = voice_head.fit(v, y, 4, 0.0)
    assert head.c in voice_head.C_GRID
    probs = head.predict(v)
    assert probs.shape == (120, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() > 0.9 and probs[:, 3].max() < 1e-6
    fixed = voice_head.fit(v, y, 4, 0.5)
    assert fixed.c == 0.5
    ref = LogisticRegression(C=0.5, max_iter=3000).fit((v - v.mean(0)) / v.std(0), y)
    assert np.allclose(fixed.predict(v)[:, :3], ref.predict_proba((v - v.mean(0)) / v.std(0)), atol=1e-4)


def test_a_two_class_voice_head_gives_sklearns_probabilities(tmp_path):
    rng = np.random.default_rng(1)
    y = np.arange(40) % 2
    v = rng.normal(0, 1, (40, 3)) + y[:, None]
    head = voice_head.fit(v, y, 2, 1.0)
    z = (v - v.mean(0)) / v.std(0)
    assert np.allclose(head.predict(v), LogisticRegression(C=1.0, max_iter=3000).fit(z, y).predict_proba(z), atol=1e-5)
    voice_head.save({"0": head}, tmp_path / "v.safetensors")
    assert np.allclose(voice_head.load(tmp_path / "v.safetensors")["0"].predict(v), head.predict(v))


@pytest.fixture
def voiced(tmp_path, monkeypatch):
    """A tiny store whose spectrograms are noise and whose voice embeddings carry the class."""
    monkeypatch.chdir(tmp_path)
    store = tiny_store(tmp_path / "data" / "features", n=90, voice=True)
    np.save(store / "train.npy", np.random.default_rng(5).normal(0, 1, (90, 1, 32, 40)).astype(np.float16))
    return tmp_path


def test_a_run_blends_its_network_with_the_voice_head(voiced):
    args = [
        "train",
        "cnn4",
        *TINY,
        "--voice-weight",
        "0.9",
        "--refit",
        "--name",
        "r",
    ]  # a network on noise is overconfident
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "voice head" in result.output
    run = voiced / "artifacts" / "runs" / "r"
    meta = json.loads((run / "run.json").read_text())
    v = meta["voice"]
    assert v["weight"] == 0.9 and set(v["c"]) == {"0", "refit"}
    assert v["head"]["accuracy"] > 0.8 and v["network"]["accuracy"] < 0.6  # the spectrograms are noise
    assert meta["metrics"]["accuracy"] > v["network"]["accuracy"] + 0.2
    heads = voice_head.load(run / "voice.safetensors")
    store = FeatureStore.open("data/features")
    val_index, val_probs = np.load(run / "val_index.npy"), np.load(run / "val_probs.npy")
    network = (val_probs - 0.9 * heads["0"].predict(store.voice("train")[val_index])) / 0.1
    assert np.allclose(network.sum(1), 1, atol=1e-3) and network.min() > -1e-3  # what is left is a softmax
    test = (np.load(run / "test_probs.npy") - 0.9 * heads["refit"].predict(store.voice("test"))) / 0.1
    assert np.allclose(test.sum(1), 1, atol=1e-3) and test.min() > -1e-3  # the refit's head predicts the test clips
    tta = runner.invoke(app, ["predict", "r", "--tta", "1"])
    assert tta.exit_code == 0, tta.output
    assert np.allclose(np.load(run.parent / "r-tta1" / "val_probs.npy"), val_probs, atol=1e-5)
    assert np.allclose(np.load(run.parent / "r-tta1" / "test_probs.npy"), np.load(run / "test_probs.npy"), atol=1e-5)
    off = runner.invoke(app, ["train", "cnn4", *TINY, "--voice-weight", "0", "--name", "off"])
    assert off.exit_code == 0 and not (run.parent / "off" / "voice.safetensors").exists()
    assert "voice" not in json.loads((run.parent / "off" / "run.json").read_text())


def test_voice_head_settings_and_stores_without_embeddings_fail_before_training(voiced):
    bad = runner.invoke(app, ["train", "cnn4", *TINY, "--voice-weight", "1.5"])
    assert bad.exit_code == 2 and "--voice-weight (train.voice.weight): must be in [0, 1], got 1.5" in bad.output
    tiny_store(voiced / "plain")
    none = runner.invoke(app, ["train", "cnn4", *TINY, "--features", "plain", "--voice-weight", "0.5"])
    assert none.exit_code == 1
    assert "train.voice.weight is 0.5 but plain has no voice embeddings" in " ".join(none.output.split())
    assert not (voiced / "artifacts" / "work").exists()  # refused before any training
    auto = runner.invoke(app, ["train", "cnn4", *TINY, "--features", "plain", "--name", "plain"])
    assert auto.exit_code == 0, auto.output  # auto (the default) without embeddings: the network alone
    assert "voice" not in json.loads((voiced / "artifacts" / "runs" / "plain" / "run.json").read_text())


def test_auto_weight_picks_zero_for_a_head_that_only_adds_noise_and_more_for_one_that_knows():
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    network = rng.dirichlet(np.ones(4), 400)
    network[np.arange(400), y] += 1.5  # right on most clips, unsure
    network /= network.sum(1, keepdims=True)
    noise = rng.dirichlet(np.ones(4) * 0.5, 400)  # a head that knows nothing, confidently
    weight, losses = voice_head.choose_weight(network, noise, y)
    assert weight == 0 and losses["0"] == min(losses.values()) and len(losses) == len(voice_head.WEIGHTS)
    knows = np.full((400, 4), 0.02)
    knows[np.arange(400), y] = 0.94
    knows[:40] = knows[:40, ::-1]  # right on 90% of the clips: better than the network
    weight, _ = voice_head.choose_weight(network, knows, y)
    assert 0.3 <= weight < 1  # both: a blend
    assert voice_head.choose_weight(network, network, y)[0] == 0  # a tie goes to the network alone


def test_auto_weight_is_chosen_on_validation_recorded_and_shown(voiced):
    result = runner.invoke(app, ["train", "cnn4", *TINY, "--name", "auto"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    run = voiced / "artifacts" / "runs" / "auto"
    meta = json.loads((run / "run.json").read_text())
    v = meta["voice"]
    assert meta["params"]["voice"]["weight"] == "auto" and v["weight"] > 0.5  # the spectrograms are noise
    assert v["weight"] == float(min(v["auto"], key=lambda w: (v["auto"][w], float(w))))
    parts = np.load(run / "voice_parts.npz")
    blended = (1 - v["weight"]) * parts["network_val"] + v["weight"] * parts["head_val"]
    assert np.allclose(np.load(run / "val_probs.npy"), blended, atol=1e-6)
    assert np.allclose(
        np.load(run / "test_probs.npy"),
        (1 - v["weight"]) * parts["network_test"] + v["weight"] * parts["head_test"],
        atol=1e-6,
    )
    assert f"({1 - v['weight']:g} : {v['weight']:g}, auto)" in " ".join(result.output.split())
    listing = runner.invoke(app, ["registry"], env={"COLUMNS": "250"})
    assert f"{v['weight']:g} (auto)" in listing.output


def test_k_fold_runs_blend_each_folds_head_into_its_out_of_fold_rows(voiced):
    store = voiced / "data" / "features"
    meta = json.loads((store / "meta.json").read_text())
    meta["splits"]["train"]["groups"] = [None if i % 10 == 0 else f"song{i // 3}" for i in range(90)]
    (store / "meta.json").write_text(json.dumps(meta))  # some clips without a group
    args = ["train", "cnn4", *TINY, "--folds", "3", "--grouped", "--voice-weight", "0.9", "--name", "k"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = voiced / "artifacts" / "runs" / "k"
    meta = json.loads((run / "run.json").read_text())
    assert set(meta["voice"]["c"]) == {"0", "1", "2"}  # one head per fold, no refit
    heads, v = voice_head.load(run / "voice.safetensors"), FeatureStore.open(store).voice("train")
    val_probs, val_index = np.load(run / "val_probs.npy"), np.load(run / "val_index.npy")
    assert np.array_equal(val_index, np.arange(90))
    # every clip's row is its own fold's blend: 0.1 x (a softmax) + 0.9 x that fold's head, for one fold
    rests = np.stack([(val_probs - 0.9 * heads[k].predict(v)) / 0.1 for k in "012"])
    is_softmax = (np.abs(rests.sum(2) - 1) < 1e-3) & (rests.min(2) > -1e-3)
    assert is_softmax.any(0).all()
    tta = runner.invoke(app, ["predict", "k", "--tta", "1"])
    assert tta.exit_code == 0, tta.output
    assert np.allclose(np.load(run.parent / "k-tta1" / "val_probs.npy"), val_probs, atol=1e-5)
    assert np.allclose(np.load(run.parent / "k-tta1" / "test_probs.npy"), np.load(run / "test_probs.npy"), atol=1e-5)


def test_runs_without_the_voice_head_keep_the_keys_they_had_before_it():
    from kit.params import TrainParams, VoiceHeadParams
    from kit.params.identity import identity

    off = identity(TrainParams(voice=VoiceHeadParams(weight=0.0, c=0.01)))
    on = identity(TrainParams())
    assert "voice" not in off and on["voice"] == {"weight": "auto", "c": 0.0}
