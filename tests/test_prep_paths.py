"""The preparation's execution paths give one result: worker processes or this process (the path a
GPU takes, run here on the CPU), any batch size; bf16 voice embeddings stay close to fp32's."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from audio import contest
from typer.testing import CliRunner

from kit.cli.app import app
from kit.data.audio import load
from kit.data.layout import load_dataset
from kit.features.extract import extract
from kit.params import DspParams, FeaturesParams, VoiceParams
from kit.separation.dsp import separate

runner = CliRunner()


@pytest.fixture(scope="module")
def separated(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    data = contest(root / "data" / "raw", labels=(0, 1, 2, 3, 1, 2, 0, 3, 2, 1), n_test=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = runner.invoke(app, ["separate", "-S", "separate.batch_size=3"])
        assert result.exit_code == 0, result.output
    return root, data


def test_batched_stems_in_worker_processes_are_each_clips_own_separation(separated):
    root, data = separated
    for i in (0, 4, 9):  # first, middle and last batch of three
        mix = load(data / "train_mp3s" / f"{i}.mp3", 22050, 3.0)
        alone, _ = separate(mix, 22050, DspParams())
        stem, sr = sf.read(root / "data" / "stems" / "train" / f"{i}.vocals.flac", dtype="float32")
        assert sr == 22050 and np.abs(stem - np.clip(alone, -1, 1)).max() <= 1.5 / 32768  # 16-bit rounding


def test_one_worker_separates_in_this_process_as_a_gpu_would_and_writes_the_same_stems(separated, monkeypatch):
    root, _ = separated
    monkeypatch.chdir(root)
    args = ["separate", "--out", "data/stems-here", "-S", "separate.workers=1", "-S", "separate.batch_size=4"]
    result = runner.invoke(app, [*args, "--device", "cpu", "--accompaniment"])
    assert result.exit_code == 0, result.output
    for split, n in (("train", 10), ("test", 5)):
        for i in range(n):
            here = sf.read(root / "data" / "stems-here" / split / f"{i}.vocals.flac", dtype="int16")[0]
            procs = sf.read(root / "data" / "stems" / split / f"{i}.vocals.flac", dtype="int16")[0]
            assert np.abs(here.astype(int) - procs).max() <= 1, (split, i)  # batches of 4 here, 3 there
            assert (root / "data" / "stems-here" / split / f"{i}.accompaniment.flac").exists()


def test_worker_processes_and_this_process_write_the_same_store(separated):
    root, data = separated
    ds = load_dataset(data)
    stems = root / "data" / "stems"
    fp32 = dataclasses.replace(FeaturesParams(), voice=VoiceParams(precision="fp32"))
    procs = extract(ds, dataclasses.replace(fp32, workers=2), root / "procs", stems=stems).store
    here = extract(ds, dataclasses.replace(fp32, workers=1, batch_size=4, device="cpu"), root / "here", stems=stems)
    assert procs.feature_hash == here.store.feature_hash  # device, workers and batch size are not in the hash
    for split in ("train", "test"):
        assert np.array_equal(procs.array(split), here.store.array(split))
        assert np.allclose(procs.voice(split), here.store.voice(split), atol=1e-6)
    assert procs.meta["channels"] == ["mix", "vocals"] and procs.array("train").shape == (10, 2, 128, 130)


def test_bf16_voice_embeddings_are_within_a_cosine_of_fp32_and_hashed_apart(separated):
    root, data = separated
    ds = load_dataset(data)
    stems = root / "data" / "stems"
    mix = dataclasses.replace(FeaturesParams(), input="mix", workers=1)
    fp32 = extract(ds, dataclasses.replace(mix, voice=VoiceParams(precision="fp32")), root / "fp32").store
    bf16 = extract(ds, dataclasses.replace(mix, voice=VoiceParams(precision="bf16")), root / "bf16", stems=stems).store
    a, b = fp32.voice("train"), bf16.voice("train")
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.mean() > 0.98 and cos.min() > 0.9 and not np.array_equal(a, b)  # song4-dev's real clips: min 0.9986
    assert np.array_equal(fp32.array("train"), bf16.array("train"))  # the spectrograms do not change
    assert fp32.feature_hash != bf16.feature_hash and bf16.meta["frontend"]["voice"]["precision"] == "bf16"
    assert "precision" not in fp32.meta["frontend"]["voice"]  # fp32 stores keep the hash they always had


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", ["separate", "features"])
def test_a_cuda_device_without_cuda_is_a_one_line_error(separated, command, monkeypatch):
    root, _ = separated
    monkeypatch.chdir(root)
    result = runner.invoke(app, [command, "--device", "cuda", "--force"])
    assert result.exit_code == 1
    assert (
        result.output.strip().splitlines()[-1] == f"error: {command}.device: cuda requested but CUDA is not available"
    )
    assert json.loads((root / "data" / "stems" / "meta.json").read_text())["backend"]["name"] == "dsp"  # untouched
