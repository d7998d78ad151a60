"""The weight-free backend: a REPET-SIM style soft mask (Rafii & Pardo 2012).

Accompaniment repeats: each STFT frame is compared with the frames most similar to it
(cosine, nearest neighbours at least `min_gap_s` apart), and their median is taken as the
repeating part. What does not repeat - a singing voice - gets a soft Wiener-style mask.
"""

from __future__ import annotations

import numpy as np

from kit.params import DspParams


def separate(y: np.ndarray, sr: int, p: DspParams) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, accompaniment), each as long as the mono float32 input `y`."""
    import librosa

    stft = librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length)
    mag, phase = np.abs(stft), np.exp(1j * np.angle(stft))
    frames = mag.shape[1]
    gap = max(1, min(round(p.min_gap_s * sr / p.hop_length), frames // 4))
    k = min(p.neighbours, frames - 2 * gap - 1)
    if k < 2:  # too short to find repetitions: all of it is accompaniment
        return np.zeros_like(y), y.copy()
    rep = librosa.decompose.nn_filter(mag, aggregate=np.median, metric="cosine", width=gap, k=k)
    rep = np.minimum(mag, rep)
    mask_v = librosa.util.softmask(mag - rep, p.margin_vocals * rep, power=p.power)
    mask_a = librosa.util.softmask(rep, p.margin_accomp * (mag - rep), power=p.power)
    vocals = librosa.istft(mask_v * mag * phase, hop_length=p.hop_length, length=len(y))
    accomp = librosa.istft(mask_a * mag * phase, hop_length=p.hop_length, length=len(y))
    return vocals.astype(np.float32), accomp.astype(np.float32)
