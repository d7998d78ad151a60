"""Synthetic songs for the demo dataset: sung voices, accompaniment, drums, mix.

All vectorised numpy. Slow controls (pitch, loudness, formants) live on a coarse
grid and are interpolated; tones come from band-limited wavetables; a voice is a
glottal-like source shaped by moving vowel formants in the STFT domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.data.singing import sing
from kit.data.synth_dsp import TABLE, fft_filter, lookup, midi_hz, rms, table

SCALES = (
    [0, 2, 4, 5, 7, 9, 11],
    [0, 2, 3, 5, 7, 8, 10],
    [0, 2, 3, 5, 7, 9, 10],
    [0, 2, 4, 5, 7, 9, 10],
    [0, 2, 3, 5, 7, 8, 11],
)
PROGRESSIONS = ([0, 4, 5, 3], [0, 5, 3, 4], [0, 3, 4, 0], [5, 3, 0, 4], [0, 3, 0, 4], [1, 4, 0, 0])
MALE, FEMALE = (42.0, 60.0), (54.0, 75.0)  # sung MIDI note ranges (~92-262 Hz, ~185-622 Hz)
P_CLASS = (0.16, 0.30, 0.28, 0.26)


@dataclass
class Song:
    rng: np.random.Generator
    sr: int
    n: int
    tempo: float
    t0: float  # time of the first downbeat (<= 0: the clip starts mid-song)
    meter: int
    key: int
    scale: np.ndarray
    chords: list  # (start, end, scale degree)

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    def midi(self, deg):
        deg = np.asarray(deg)
        return 48 + self.key + 12 * (deg // 7) + self.scale[deg % 7]


def make_song(rng, sr, duration) -> Song:
    n = int(round(duration * sr))
    tempo, meter = rng.uniform(70, 160), int(rng.choice([4, 4, 4, 3]))
    beat = 60.0 / tempo
    t0 = -rng.uniform(0, beat * meter)
    prog = list(PROGRESSIONS[rng.integers(len(PROGRESSIONS))])
    rot = int(rng.integers(4))
    bar = beat * meter * (0.5 if tempo < 90 and rng.random() < 0.5 else 1.0)
    chords, t, i = [], t0, rot
    while t < duration:
        chords.append((t, t + bar, prog[i % 4]))
        t, i = t + bar, i + 1
    return Song(
        rng, sr, n, tempo, t0, meter, int(rng.integers(-6, 6)), np.array(SCALES[rng.integers(len(SCALES))]), chords
    )


# ---------------------------------------------------------------- melodies
def rhythm(song, start, end, rest_p=0.15):
    rng, grid = song.rng, song.beat / 2
    t = song.t0 + np.ceil((start - song.t0) / grid) * grid
    on, off = [], []
    while t < end:
        d = rng.choice([1, 2, 2, 2, 3, 4, 6], p=[0.2, 0.3, 0.1, 0.1, 0.12, 0.12, 0.06]) * grid
        d = min(d, grid * np.ceil(1.5 / grid))  # notes of 1.5 s at most
        on.append(t)
        off.append(t + d * rng.uniform(0.75, 0.98))
        t += d + (min(rng.choice([1, 2, 4]) * grid, 0.6) if rng.random() < rest_p else 0)
    return np.array(on), np.array(off)


def walk(song, count, lo, hi):
    """Scale-degree random walk (mostly steps) kept inside MIDI range [lo, hi]."""
    rng = song.rng
    degs = np.arange(-28, 42)
    ok = degs[(song.midi(degs) >= lo) & (song.midi(degs) <= hi)]
    i = int(rng.integers(len(ok) // 4, max(len(ok) // 4 + 1, 3 * len(ok) // 4)))
    out = []
    for _ in range(count):
        out.append(ok[i])
        i += int(rng.choice([-4, -2, -1, 0, 1, 2, 3], p=[0.05, 0.15, 0.27, 0.1, 0.27, 0.11, 0.05]))
        i = abs(i) if i < 0 else (2 * (len(ok) - 1) - i if i >= len(ok) else i)
        i = int(np.clip(i, 0, len(ok) - 1))
    return np.array(out, int)


def harmonize(song, degs, lo, hi):
    """A line a third or sixth from `degs`, moved by octaves into [lo, hi]."""
    d = degs + int(song.rng.choice([-5, -2, 2, 5]))
    mid = (lo + hi) / 2
    shift = np.round((mid - song.midi(d)) / 12).astype(int) * 7
    return np.clip(d + shift, *_deg_range(song, lo, hi))


def _deg_range(song, lo, hi):
    degs = np.arange(-28, 42)
    ok = degs[(song.midi(degs) >= lo) & (song.midi(degs) <= hi)]
    return ok.min(), ok.max()


def register(rng, female):
    lo, hi = FEMALE if female else MALE
    c = rng.uniform(lo + 6, hi - 6)
    w = rng.uniform(4, 7)
    return max(lo, c - w), min(hi, c + w)


# ---------------------------------------------------------------- voices
def instrument(rng):
    """A static timbre: spectral tilt, odd/even balance, brightness, envelope kind."""
    return dict(
        beta=rng.uniform(0.7, 2.5),
        even=rng.choice([1.0, rng.uniform(0.05, 1)]),
        bright=rng.uniform(1200, 8000),
        env=rng.choice(["pluck", "pad", "organ"]),
        decay=rng.uniform(0.15, 1.2),
        attack=rng.uniform(0.03, 0.25),
        detune=rng.choice([0.0, rng.uniform(2, 8)]),
        phases=rng.uniform(0, 6.3, TABLE // 2),
    )


def play(song, notes, inst, track):
    """Add notes [(on, off, midi, velocity)] played by `inst` (fixed pitch, no vibrato) to track."""
    sr, n, cache = song.sr, song.n, {}
    for on, off, m, vel in notes:
        f = float(midi_hz(m))
        if m not in cache:
            k = np.arange(1, int(0.45 * sr / f) + 1)
            a = k ** -inst["beta"] * np.where(k % 2 == 0, inst["even"], 1) / (1 + (k * f / inst["bright"]) ** 2)
            cache[m] = table(a, inst["phases"])
        rel = 0.05 if inst["env"] == "pluck" else (0.3 if inst["env"] == "pad" else 0.03)
        s0, s1 = max(0, int(on * sr)), min(n, int((off + rel) * sr))
        if s1 <= s0:
            continue
        tt = np.arange(s0, s1) / sr - on
        if inst["env"] == "pluck":
            e = np.clip(tt / 0.005, 0, 1) * np.exp(-np.clip(tt, 0, None) / inst["decay"])
        else:
            e = np.clip(tt / (inst["attack"] if inst["env"] == "pad" else 0.01), 0, 1)
        e = e * np.clip(1 - (tt - (off - on)) / rel, 0, 1)
        y = lookup(cache[m], f * tt + song.rng.random())
        if inst["detune"]:
            y = 0.5 * (y + lookup(cache[m], f * 2 ** (inst["detune"] / 1200) * tt + song.rng.random()))
        track[s0:s1] += vel * e * y
    return track


def chords_part(song):
    rng, beat = song.rng, song.beat
    inst, style, notes = instrument(rng), rng.choice(["hold", "beats", "offbeats"]), []
    for a, b, d in song.chords:
        tones = song.midi(d + np.array([0, 2, 4] + ([6] if rng.random() < 0.3 else [])))
        tones = tones + 12 * np.round((62 - tones) / 12 + rng.uniform(-0.4, 0.4, len(tones)))
        hits = (
            [(a, b)]
            if style == "hold"
            else [
                (x, x + beat * (0.9 if style == "beats" else 0.4))
                for x in np.arange(a + (beat / 2 if style == "offbeats" else 0), b - 1e-6, beat)
            ]
        )
        for x, y in hits:
            notes += [(x + rng.uniform(0, 0.02), y, int(m), rng.uniform(0.5, 1)) for m in tones]
    return play(song, notes, inst, np.zeros(song.n))


def bass_part(song):
    rng, beat, notes = song.rng, song.beat, []
    inst = instrument(rng) | dict(beta=rng.uniform(1.5, 3), bright=rng.uniform(400, 2000))
    step = beat * rng.choice([0.5, 1, 2])
    for a, b, d in song.chords:
        root = int(song.midi(d)) - 24
        root += 12 * (root < 28) - 12 * (root > 45)
        for x in np.arange(a, b - 1e-6, step):
            m = root + (7 if rng.random() < 0.2 else 0)
            notes.append((x, x + step * rng.uniform(0.6, 0.95), m, rng.uniform(0.6, 1)))
    return play(song, notes, inst, np.zeros(song.n))


def lead_part(song, start, end):
    """An instrumental melody: stepped pitches, no glides, vibrato or formants."""
    on, off = rhythm(song, start, end, rest_p=0.2)
    c = song.rng.uniform(55, 79)
    degs = walk(song, len(on), c - 6, c + 6)
    notes = [(a, b, int(m), song.rng.uniform(0.6, 1)) for a, b, m in zip(on, off, song.midi(degs))]
    return play(song, notes, instrument(song.rng), np.zeros(song.n))


def drums_part(song):
    rng, sr, n = song.rng, song.sr, song.n
    track = np.zeros(n)

    def hit(length, fn):
        tt = np.arange(int(length * sr)) / sr
        return fn(tt)

    f_hi, f_sn = min(7000, 0.35 * sr), min(rng.uniform(1500, 4000), 0.35 * sr)
    kick = hit(
        0.35,
        lambda tt: (
            np.sin(2 * np.pi * np.cumsum(45 + rng.uniform(60, 120) * np.exp(-tt / 0.04)) / sr)
            * np.exp(-tt / rng.uniform(0.08, 0.2))
        ),
    )
    snare = hit(
        0.25,
        lambda tt: (
            (
                fft_filter(rng.standard_normal(len(tt)), sr, lambda f: 1 / (1 + ((f - f_sn) / f_sn) ** 2)) * 2
                + 0.5 * np.sin(2 * np.pi * 190 * tt)
            )
            * np.exp(-tt / rng.uniform(0.05, 0.12))
        ),
    )
    hat = hit(
        0.12,
        lambda tt: (
            fft_filter(rng.standard_normal(len(tt)), sr, lambda f: (f > f_hi * 0.8) * 1.0)
            * np.exp(-tt / rng.uniform(0.015, 0.05))
        ),
    )
    g = song.beat / 4
    pat_k = {0, 8} | ({10} if rng.random() < 0.5 else set()) | ({6} if rng.random() < 0.3 else set())
    pat_s = ({4, 12} if rng.random() < 0.8 else {8}) if song.meter == 4 else {4, 8}
    pat_h = set(range(0, 16, int(rng.choice([2, 2, 4, 1]))))
    use = rng.random(3) < [0.85, 0.8, 0.8]
    for i, x in enumerate(np.arange(song.t0, n / sr, g)):
        s = i % (4 * song.meter)
        for on, pat, w, v in zip(use, (pat_k, pat_s, pat_h), (kick, snare, hat), (1, 0.7, 0.25)):
            if on and s in pat and rng.random() < 0.95:
                s0 = int(x * sr)
                a, b = max(0, s0), min(n, s0 + len(w))
                if b > a:
                    track[a:b] += v * rng.uniform(0.7, 1) * w[a - s0 : b - s0]
    return track


# ---------------------------------------------------------------- the clip
def voices_part(song, label):
    """The vocal stem for class 1 (one male), 2 (one female) or 3 (2-3 voices)."""
    rng, dur = song.rng, song.n / song.sr
    start = rng.uniform(-0.5, 0.35 * dur) if rng.random() < 0.4 else -1.0
    if label in (1, 2):
        lo, hi = register(rng, label == 2)
        on, off = rhythm(song, start, dur)
        return sing(song, on, off, song.midi(walk(song, len(on), lo, hi)), label == 2)
    k = int(rng.choice([2, 3], p=[0.65, 0.35]))
    females = rng.random(k) < 0.5
    mode = rng.choice(["harmony", "counterpoint", "call"], p=[0.5, 0.25, 0.25])
    regs = [register(rng, f) for f in females]
    on, off = rhythm(song, start, dur)
    degs = walk(song, len(on), *regs[0])
    out = np.zeros(song.n)
    for i, (f, reg) in enumerate(zip(females, regs)):
        if i and mode == "harmony":
            jit = rng.uniform(-0.02, 0.02, len(on))
            v = sing(song, on + jit, off + jit, song.midi(harmonize(song, degs, *reg)), f)
        elif i:
            a = start if mode == "counterpoint" else rng.uniform(0.2, 0.5) * dur
            on2, off2 = rhythm(song, a, dur)
            v = sing(song, on2, off2, song.midi(walk(song, len(on2), *reg)), f)
        else:
            v = sing(song, on, off, song.midi(degs), f)
        out += v * 10 ** (rng.uniform(-4, 0) / 20)
    return out


def _activerms(x, sr):
    frames = x[: len(x) // 512 * 512].reshape(-1, 512)
    e = np.sqrt(np.mean(frames**2, axis=1))
    return float(np.sqrt(np.mean(e[e > 0.1 * e.max()] ** 2))) + 1e-9


def _section(rng, x, sr, song):
    """Sometimes an instrument enters or stops at a bar line (with a short fade)."""
    if rng.random() < 0.75:
        return x
    cut = song.t0 + song.beat * song.meter * rng.integers(1, 3)
    if cut > 0.7 * len(x) / sr:
        return x
    g = np.clip((np.arange(len(x)) / sr - cut) / 0.02, 0, 1)
    return x * (g if rng.random() < 0.5 else 1 - g)


def render(rng, label, sr, duration):
    """One mono clip (float32, peak < 1) of class `label`."""
    song = make_song(rng, sr, duration)
    stems = [chords_part(song), bass_part(song), drums_part(song)]
    keep = rng.random(3) < 0.85
    keep[rng.integers(3)] = True
    acc = np.zeros(song.n)
    for s, k, g in zip(stems, keep, rng.uniform(-4, 4, 3)):
        if k and rms(s) > 0:
            acc += _section(rng, s / rms(s), sr, song) * 10 ** (g / 20)
    acc /= rms(acc) + 1e-9
    dur = song.n / sr
    if label == 0:  # an instrumental tune often takes the singer's place and level
        lead = lead_part(song, rng.uniform(-0.5, 0.3 * dur), dur) if rng.random() < 0.85 else None
        mix = acc if lead is None else acc + lead / _activerms(lead, sr) * 10 ** (rng.uniform(-6, 9) / 20)
    else:
        v = voices_part(song, label)
        mix = acc + v / _activerms(v, sr) * 10 ** (rng.uniform(-6, 9) / 20)
        if rng.random() < 0.35:
            lead = lead_part(song, rng.uniform(-0.5, 0.5 * dur), dur)
            mix += lead / _activerms(lead, sr) * 10 ** (rng.uniform(-12, -3) / 20)
    # room, equalisation and loudness: all independent of the class (one FFT for room + EQ)
    ir = np.zeros(int(0.5 * sr))
    ir[0] = 1.0
    if rng.random() < 0.7:
        tail = rng.standard_normal(len(ir) - 1) * np.exp(-np.arange(1, len(ir)) / sr / rng.uniform(0.05, 0.25))
        ir[1:] = rng.uniform(0.1, 0.5) * tail / np.sqrt(np.sum(tail**2))
    lp = np.exp(rng.uniform(np.log(min(3000, 0.3 * sr)), np.log(0.45 * sr))) if rng.random() < 0.75 else 1e9
    hp, order, tilt = rng.uniform(20, 150), rng.choice([2, 4, 8]), rng.uniform(-2, 2)
    m = 1 << int(np.ceil(np.log2(len(mix) + len(ir))))
    f = np.fft.rfftfreq(m, 1 / sr)
    eq = (
        1
        / np.sqrt(1 + (f / lp) ** (2 * order))
        / np.sqrt(1 + (hp / (f + 1e-3)) ** 4)
        * np.clip((np.maximum(f, 50) / 1000) ** (tilt / 6.02), 0.25, 4)
    )
    mix = np.fft.irfft(np.fft.rfft(mix, m) * np.fft.rfft(ir, m) * eq, m)[: len(mix)]
    mix *= 10 ** (rng.uniform(-26, -13) / 20) / (rms(mix) + 1e-12)
    return (0.8 * np.tanh(mix / 0.8)).astype(np.float32)  # soft limit; leaves room for mp3 overshoot
