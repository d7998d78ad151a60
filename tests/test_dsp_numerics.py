"""The batched torch REPET-SIM against the librosa computation the stems always came from."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import torch
from test_separation import SR, _voice_over_band

from kit.params import DspParams
from kit.separation import dsp


def librosa_separation(y: np.ndarray, p: DspParams) -> tuple[np.ndarray, np.ndarray]:
    """kit's dsp backend as it was written on librosa (main a1e5d6b), the reference."""
    stft = librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length)
    mag, phase = np.abs(stft), np.exp(1j * np.angle(stft))
    frames = mag.shape[1]
    gap = max(1, min(round(p.min_gap_s * SR / p.hop_length), frames // 4))
    k = min(p.neighbours, frames - 2 * gap - 1)
    rep = librosa.decompose.nn_filter(mag, aggregate=np.median, metric="cosine", width=gap, k=k)
    rep = np.minimum(mag, rep)
    mask_v = librosa.util.softmask(mag - rep, p.margin_vocals * rep, power=p.power)
    mask_a = librosa.util.softmask(rep, p.margin_accomp * (mag - rep), power=p.power)
    vocals = librosa.istft(mask_v * mag * phase, hop_length=p.hop_length, length=len(y))
    accomp = librosa.istft(mask_a * mag * phase, hop_length=p.hop_length, length=len(y))
    return vocals.astype(np.float32), accomp.astype(np.float32)


PARAMS = {
    "shipped": DspParams(),
    "odd k, other margins": DspParams(neighbours=7, margin_vocals=2.0, margin_accomp=1.0, power=1.0),
    "short gap, small fft": DspParams(n_fft=1024, hop_length=256, min_gap_s=0.05, neighbours=12),
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_a_batch_matches_librosa_clip_by_clip_to_float32_rounding(name):
    p = PARAMS[name]
    mixes = [_voice_over_band(seed)[1] for seed in range(3)]
    mixes.append(np.concatenate([mixes[0][:SR], np.zeros(2 * SR, np.float32)]))  # silence: ties at distance 1
    vocals, accomp = dsp.separate_batch(np.stack(mixes), SR, p, accompaniment=True)
    for i, y in enumerate(mixes):
        ref_v, ref_a = librosa_separation(y, p)
        peak = np.abs(y).max()
        assert np.abs(vocals[i] - ref_v).max() < 1e-5 * peak, (name, i)
        assert np.abs(accomp[i] - ref_a).max() < 1e-5 * peak, (name, i)
    alone, none = dsp.separate_batch(np.stack(mixes[1:2]), SR, p)
    assert none is None and np.abs(alone[0] - vocals[1]).max() < 1e-6 * np.abs(mixes[1]).max()  # batch-independent


def test_the_gpu_median_and_the_cpu_chunks_agree_exactly():
    """The GPU path (whole-batch torch sorting network) runs here on CPU tensors."""
    rng = np.random.default_rng(0)
    mag = torch.from_numpy(rng.random((2, 257, 40), dtype=np.float32))
    mag[:, :, 30:] = 0  # silent frames
    idx = dsp._neighbours(mag, 3, 9)
    whole, chunks = dsp._repeating(mag, idx, whole=True), dsp._repeating(mag, idx, whole=False)
    ref = np.stack([np.median(m.numpy()[:, i.numpy()], axis=-1) for m, i in zip(mag, idx)])
    assert torch.equal(whole, chunks) and np.array_equal(chunks.numpy(), ref)


@pytest.mark.parametrize("n", [*range(1, 24), 32, 33, 40])
def test_the_median_network_is_numpys_median_ties_included(n):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 4, (n, 500)).astype(np.float32)  # many ties
    expected = np.median(values, axis=0)
    assert np.array_equal(dsp.median(list(values.copy())), expected)
    assert torch.equal(dsp.median(list(torch.from_numpy(values.copy()))), torch.from_numpy(expected))
    assert len(dsp.median_network(20)) < 103  # fewer comparators than the full sorting network


def test_params_change_the_result():
    y = _voice_over_band(0)[1][None]
    base = dsp.separate_batch(y, SR, DspParams())[0]
    other = dsp.separate_batch(y, SR, dataclasses.replace(DspParams(), neighbours=5))[0]
    assert not np.allclose(base, other, atol=1e-4)
