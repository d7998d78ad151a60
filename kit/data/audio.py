"""Audio decoding: any clip -> mono float32 at the front-end's rate and fixed length.

Matches `librosa.load(path, sr=sr)` (channel mean, soxr 'HQ' resampling), then pads with
zeros or trims the end to exactly `duration` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_EXTS = (".mp3", ".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class ClipInfo:
    """What a clip was before normalisation (for `kit data check`)."""

    sr: int
    channels: int
    seconds: float


class DecodeError(Exception):
    """The clip could not be decoded (message says why)."""


class EmptyClip(DecodeError):
    """The file has no bytes or no audio frames."""


def read(path: Path) -> tuple[np.ndarray, ClipInfo]:
    """Decode a whole clip: (frames,) mono float32 at its own rate, and what it was."""
    import soundfile as sf

    if path.stat().st_size == 0:
        raise EmptyClip("empty file (0 bytes)")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if msg.startswith("Error opening"):  # libsndfile's text blames pipes; say what it means
            msg = "unrecognised or corrupt audio format"
        raise DecodeError(msg) from None
    if data.shape[0] == 0:
        raise EmptyClip("no audio frames")
    channels = data.shape[1]
    mono = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise DecodeError("non-finite samples")
    return mono, ClipInfo(sr=int(sr), channels=int(channels), seconds=data.shape[0] / sr)


def load(path: Path, sr: int, duration: float) -> np.ndarray:
    """Mono float32 clip at `sr`, exactly round(duration * sr) samples."""
    mono, info = read(path)
    return fit(resample(mono, info.sr, sr), round(duration * sr))


def resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    if orig_sr == sr:
        return y
    import soxr

    return soxr.resample(y, orig_sr, sr, quality="HQ").astype(np.float32, copy=False)


def fit(y: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or trim the end to n samples."""
    if len(y) >= n:
        return np.ascontiguousarray(y[:n])
    out = np.zeros(n, dtype=np.float32)
    out[: len(y)] = y
    return out
