"""Synthetic clips and datasets for tests, written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float = 3.0, sr: int = 22050, channels: int = 1, f0: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone plus a little noise: (frames,) or (frames, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.2
    y = (y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    if channels == 1:
        return y
    return np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1)


def write_clip(path: Path, seconds=3.0, sr=22050, channels=1, f0=220.0, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".mp3": "MP3", ".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[path.suffix]
    sf.write(path, tone(seconds, sr, channels, f0, seed), sr, format=fmt)
    return path


def contest(root: Path, labels=(0, 1, 2, 3, 1, 2), n_test: int = 3, ext: str = ".mp3") -> Path:
    """A small, clean contest-layout dataset."""
    for i, label in enumerate(labels):
        write_clip(root / "train_mp3s" / f"{i}{ext}", f0=110.0 * (label + 1), seed=i)
    for i in range(n_test):
        write_clip(root / "test_mp3s" / f"{i}{ext}", f0=150.0 + 40 * i, seed=100 + i)
    (root / "train_label.txt").write_text("".join(f"{v}\n" for v in labels))
    (root / "sample_submission.csv").write_text("id,category\n" + "".join(f"{i},0\n" for i in range(n_test)))
    return root
