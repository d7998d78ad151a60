"""A sung line for the demo synthesiser: a glottal-like source with vibrato and portamento, shaped
by moving vowel formants in the STFT domain, with consonant bursts at syllable onsets."""

from __future__ import annotations

import numpy as np

from kit.data.synth_dsp import fft_filter, lookup, midi_hz, rms, smooth_noise, stft_filter, table

CTRL_HZ = 200.0  # rate of the coarse control grid
# Peterson & Barney (1952) adult male vowel formants F1, F2, F3 (Hz): a e i o u ae uh
VOWELS = np.array(
    [
        [730, 1090, 2440],
        [530, 1840, 2480],
        [270, 2290, 3010],
        [570, 840, 2410],
        [300, 870, 2240],
        [660, 1720, 2410],
        [640, 1190, 2390],
    ],
    float,
)


def _f0(rng, tc, t, on, off, midi):
    """The sung pitch (Hz per sample): notes joined by glides (some scooped from below), vibrato, drift."""
    glide, pt, pv = rng.uniform(0.03, 0.12), [], []
    for a, b, m in zip(on, np.r_[on[1:], off[-1:]], midi):
        g = min(glide * rng.uniform(0.6, 1.4), 0.4 * (b - a))
        if rng.random() < 0.3:  # scoop up into the note
            pt, pv = pt + [a], pv + [m - rng.uniform(0.7, 2.0)]
        pt, pv = pt + [a + g, max(b, a + g + 1e-3)], pv + [m, m]
    pt = np.maximum.accumulate(np.array(pt)) + np.arange(len(pt)) * 1e-6
    pitch = np.interp(tc, pt, pv)
    note = np.clip(np.searchsorted(on, tc, "right") - 1, 0, len(on) - 1)
    since = tc - on[note]
    ramp = np.clip((since - rng.uniform(0.05, 0.2)) / rng.uniform(0.1, 0.3), 0, 1)
    rate = rng.uniform(4.5, 6.5) + 0.3 * smooth_noise(rng, len(tc), CTRL_HZ * 0.5)
    depth = rng.uniform(0.15, 0.7) * (1 + 0.2 * smooth_noise(rng, len(tc), CTRL_HZ * 0.3))
    vib = depth * ramp * np.sin(2 * np.pi * np.cumsum(rate) / CTRL_HZ + rng.uniform(0, 6.3))
    drift = 0.08 * smooth_noise(rng, len(tc), CTRL_HZ * 0.15)
    f0 = np.interp(t, tc, midi_hz(pitch + vib + drift))
    return f0


def sing(song, on, off, midi, female):
    """One sung line: glottal source + vibrato/portamento, syllables, moving vowel formants."""
    rng, sr, n = song.rng, song.sr, song.n
    tc = np.arange(int(n / sr * CTRL_HZ) + 2) / CTRL_HZ
    t = np.arange(n) / sr
    f0 = _f0(rng, tc, t, on, off, midi)
    # syllables: a new syllable on most notes (else melisma), attack/release, vowel per syllable
    new = np.r_[True, rng.random(len(on) - 1) < 0.8]
    syl_on = on[new]
    ends = np.r_[off[np.r_[new[1:], True].nonzero()[0]]]
    env = np.zeros(len(tc))
    for a, b in zip(syl_on, ends):
        att, rel, vel = rng.uniform(0.02, 0.07), rng.uniform(0.04, 0.12), rng.uniform(0.6, 1.0)
        env = np.maximum(
            env,
            vel
            * np.clip((tc - a) / att, 0, 1)
            * np.clip(1 - (tc - b) / rel, 0, 1)
            * np.exp(-np.clip(tc - a, 0, None) * rng.uniform(0, 0.5)),
        )
    env *= 1 + 0.15 * smooth_noise(rng, len(tc), CTRL_HZ * 0.8) + 0.03 * rng.standard_normal(len(tc))
    env = np.clip(env, 0, None)
    amp = np.interp(t, tc, env)
    # glottal-like source from band-limited wavetables (one per third of an octave)
    alpha = rng.uniform(0.8, 1.4)
    bands = 60.0 * 2 ** (np.arange(15) / 3)
    tabs = np.stack([table(np.arange(1, int(0.45 * sr / (b * 2 ** (1 / 3))) + 1) ** -alpha) for b in bands])
    which = np.clip((3 * np.log2(f0 / 60)).astype(int), 0, len(bands) - 1)
    src = lookup(tabs, np.cumsum(f0) / sr + rng.random(), which)
    src = src * amp + rng.uniform(0.01, 0.06) * rng.standard_normal(n) * amp  # + breath
    # vowel formants per syllable, gliding at syllable onsets; F1 follows a high f0 up
    scale = rng.uniform(1.12, 1.24) if female else rng.uniform(0.93, 1.05)
    vow = VOWELS[rng.integers(len(VOWELS), size=len(syl_on))] * scale
    vow *= rng.uniform(0.95, 1.05, vow.shape)
    ft = np.maximum.accumulate(np.r_[syl_on[:1] - 1, np.c_[syl_on, syl_on + rng.uniform(0.03, 0.08)].ravel()])
    fv = np.r_[vow[:1], np.repeat(vow, 2, axis=0)]
    fv[1::2] = np.r_[vow[:1], vow[:-1]] * [0.8, 1.0, 1.0]  # coarticulation: start from previous vowel
    form = np.stack([np.interp(tc, ft + np.arange(len(ft)) * 1e-6, fv[:, k]) for k in range(3)], 1)
    form[:, 0] = np.maximum(form[:, 0], np.interp(tc, t, f0) * 1.1)
    bw = np.array([70, 95, 130, 220, 300]) * rng.uniform(0.8, 1.3)

    def reson(F, B, f):  # |H| of a 2-pole resonator with unit gain at 0 Hz
        return F**2 / np.sqrt((F**2 - f**2) ** 2 + (B * f) ** 2)

    def gain(times, freqs):
        g = reson(3400 * scale, bw[3], freqs) * reson(4300 * scale, bw[4], freqs)  # fixed F4, F5
        g, freqs = g.astype(np.float32), freqs.astype(np.float32)
        for k in range(3):
            g = g * reson(np.interp(times, tc, form[:, k]).astype(np.float32)[:, None], np.float32(bw[k]), freqs)
        return g

    y = stft_filter(src, sr, gain)
    # consonants: short noise bursts (fricatives / plosives) at some syllable onsets
    burst = np.zeros(n)
    for a in syl_on[rng.random(len(syl_on)) < 0.5]:
        ln = int(rng.uniform(0.015, 0.08) * sr)
        i0 = int((a - ln / sr * 0.8) * sr)
        s0, s1 = max(i0, 0), min(i0 + ln, n)
        if s1 > s0:
            burst[s0:s1] += rng.standard_normal(s1 - s0) * np.hanning(ln)[s0 - i0 : s1 - i0] * rng.uniform(0.3, 1)
    fc = min(rng.uniform(2500, 7000), 0.4 * sr)
    y = y / (rms(y) + 1e-9) + rng.uniform(0.1, 0.4) * fft_filter(
        burst, sr, lambda f: 1 / (1 + ((f - fc) / (0.5 * fc)) ** 2)
    )
    return y
