"""Signal helpers of the demo synthesiser: pitch, smooth noise, filters, band-limited wavetables."""

from __future__ import annotations

import numpy as np

TABLE = 4096  # wavetable length (a power of two; read without interpolation)


def midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, float) - 69.0) / 12.0)


def smooth_noise(rng, n, width):
    """Random walk-free smooth noise on a grid: white noise blurred by a `width`-point window."""
    w = np.hanning(max(3, int(width)) + 2)[1:-1]
    x = np.convolve(rng.standard_normal(n + len(w)), w / np.sqrt((w**2).sum()), "same")
    return x[len(w) // 2 : len(w) // 2 + n]


def fft_filter(x, sr, gain_fn):
    """Apply a static zero-phase magnitude response gain_fn(freqs) to x."""
    X = np.fft.rfft(x)
    return np.fft.irfft(X * gain_fn(np.fft.rfftfreq(len(x), 1 / sr)), len(x))


def stft_filter(x, sr, gain_at):
    """Time-varying filter: STFT, multiply frame f by gain_at(times, freqs)[f], overlap-add."""
    nfft = 2 ** int(round(np.log2(sr * 0.046)))
    hop = nfft // 4
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nfft) / nfft)).astype(np.float32)
    xp = np.pad(x.astype(np.float32), (nfft, nfft + hop - len(x) % hop))
    frames = np.lib.stride_tricks.sliding_window_view(xp, nfft)[::hop] * win
    times = (np.arange(len(frames)) * hop + nfft / 2 - nfft) / sr
    Y = np.fft.irfft(np.fft.rfft(frames) * gain_at(times, np.fft.rfftfreq(nfft, 1 / sr)), nfft) * win
    out = np.zeros(len(frames) * hop + nfft, np.float32)
    for j in range(4):
        seg = Y[:, j * hop : (j + 1) * hop].reshape(-1)
        out[j * hop : j * hop + seg.size] += seg
    return out[nfft : nfft + len(x)].astype(np.float64) / 1.5


def table(amps, phases=None):
    spec = np.zeros(TABLE // 2 + 1, complex)
    k = min(len(amps), TABLE // 2 - 1)
    spec[1 : k + 1] = amps[:k] * (1 if phases is None else np.exp(1j * phases[:k]))
    return (np.fft.irfft(spec, TABLE) * TABLE / 2).astype(np.float32)


def lookup(tab, cycles, which=None):
    """Read wavetable(s) at phase `cycles`; `which` picks a table per sample from a pile of tables."""
    i = (cycles * TABLE).astype(np.int64) & (TABLE - 1)
    return tab.take(i) if which is None else tab.reshape(-1).take(which * TABLE + i)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))
