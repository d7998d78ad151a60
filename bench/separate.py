"""Benchmark: the dsp backend on synthetic mixes with a known voice (kit.data.synth).

    python bench/separate.py [--clips 24]

For each candidate (REPET-SIM soft mask at a few settings, and HPSS + vocal-band mask) prints
the mean SDR of the separated vocals against the true voice, the SDR of the mix itself (the
do-nothing baseline) and clips/s on one core. The default in params.yaml is the best row.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from kit.data import synth, synth_dsp
from kit.params import DspParams
from kit.separation.dsp import separate

SR = 22050


def mixes(n: int):
    """(voice, mix) pairs: a sung part over chords, bass and drums at a random voice level."""
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        song = synth.make_song(rng, SR, 3.0)
        acc = sum(s / (synth_dsp.rms(s) + 1e-9) for s in (synth.chords_part(song), synth.bass_part(song)))
        acc = acc + synth.drums_part(song) / (synth_dsp.rms(synth.drums_part(song)) + 1e-9)
        voice = synth.voices_part(song, int(rng.integers(1, 4)))
        voice = voice / (synth_dsp.rms(voice) + 1e-9) * 10 ** (rng.uniform(-6, 3) / 20)
        scale = 0.1 / (synth_dsp.rms(acc + voice) + 1e-9)
        out.append(((voice * scale).astype(np.float32), ((acc + voice) * scale).astype(np.float32)))
    return out


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / (np.sum((ref - est) ** 2) + 1e-12) + 1e-12))


def hpss_vocals(y: np.ndarray, sr: int) -> np.ndarray:
    """HPSS, then the harmonic part in the vocal band (120 Hz - 5 kHz)."""
    import librosa

    stft = librosa.stft(y, n_fft=2048, hop_length=512)
    harm, _ = librosa.decompose.hpss(stft, margin=2.0)
    f = librosa.fft_frequencies(sr=sr, n_fft=2048)
    band = ((f > 120) & (f < 5000)).astype(np.float32)[:, None]
    return librosa.istft(harm * band, hop_length=512, length=len(y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    args = ap.parse_args()
    data = mixes(args.clips)
    base = DspParams()
    candidates = {
        "mix (no separation)": lambda y: y,
        "hpss + vocal band": lambda y: hpss_vocals(y, SR),
        **{
            f"repet-sim gap {g}s margin {m}": (
                lambda y, g=g, m=m: separate(y, SR, dataclasses.replace(base, min_gap_s=g, margin_vocals=m))[0]
            )
            for g in (0.1, 0.25, 0.5)
            for m in (1.0, 2.0, 4.0)
        },
    }
    table = Table(title=f"vocal SDR on {args.clips} synthetic mixes (higher is better); default: {base}")
    for col in ("method", "SDR dB", "clips/s"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, fn in candidates.items():
        fn(data[0][1])  # warm-up (numba)
        started = time.perf_counter()
        scores = [sdr(voice, fn(mix)) for voice, mix in data]
        rate = len(data) / (time.perf_counter() - started)
        table.add_row(name, f"{np.mean(scores):.2f}", f"{rate:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
