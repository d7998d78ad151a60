"""Voice embeddings: a pretrained GE2E speaker encoder (Wan et al. 2018) run on each clip's inputs.

The encoder is resemblyzer's (3 LSTM layers of 256 on 40 mel bands of 16 kHz audio, 10 ms frames,
a linear + ReLU projection to 256, L2-normalised), trained to tell speakers apart: its embedding
carries the voice's pitch range and timbre, what separates one male voice from one female voice.
Its weights ship inside the `resemblyzer` wheel on PyPI (`pretrained.pt`, 17 MB), so nothing is
downloaded at run time; a local `.pt` / `.safetensors` file works too. The resemblyzer package is
only located, never imported (its import needs webrtcvad, which kit does not use).

A clip's embedding is the mean (not re-normalised) of the encoder's outputs over 1.6 s windows
(160 frames, evenly spread, overlapping by at least `features.voice.overlap` of a window: two for a
3 s clip by default), the clip scaled to -30 dBFS RMS up or down, silence kept.
(resemblyzer itself only raises quiet audio, trims silences and re-normalises the mean.)
Change any of this and bump extract.FEATURE_VERSION: the feature hash holds only the weights' hash.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np

from kit.errors import KitError

SR = 16000
N_MELS = 40
HOP = 160  # 10 ms
N_FFT = 400  # 25 ms
WINDOW = 160  # frames per partial utterance (1.6 s)
DIM = 256
TARGET_DBFS = -30.0


def weights_path(setting: str) -> Path:
    """The encoder weights: features.voice.weights, or the installed resemblyzer package's file."""
    if setting:
        path = Path(setting)
        if not path.is_file():
            raise KitError(f"features.voice.weights: {path} is not a file")
        return path
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise KitError(
            "features.voice.embed needs the GE2E encoder's weights: pip install resemblyzer, or set "
            "features.voice.weights to a local file (or features.voice.embed: false)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise KitError(f"features.voice.weights: the resemblyzer package has no {path.name} ({path})")
    return path


@functools.lru_cache(maxsize=4)
def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_state(path: Path) -> dict:
    """The encoder's tensors from a resemblyzer checkpoint (no unpickling of objects) or safetensors."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("model_state", state) if isinstance(state, dict) else state
    except Exception as exc:  # torch / safetensors raise many kinds on a bad file
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise KitError(f"features.voice.weights: {path} is not a weights file ({why})") from None
    need = {n: t.shape for n, t in _encoder().state_dict().items()}
    if not isinstance(state, dict) or not set(need) <= set(state):
        missing = sorted(set(need) - set(state)) if isinstance(state, dict) else sorted(need)
        raise KitError(f"features.voice.weights: {path} is not a GE2E encoder (missing {', '.join(missing[:3])})")
    wrong = [n for n, shape in need.items() if getattr(state[n], "shape", None) != shape]
    if wrong:
        raise KitError(f"features.voice.weights: {path} is not a GE2E encoder of 256 ({wrong[0]} has another shape)")
    return {n: state[n] for n in need}


def _encoder():
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, DIM, 3, batch_first=True)
            self.linear = nn.Linear(DIM, DIM)

        def forward(self, mels):  # (B, frames, 40) power mel -> (B, 256), unit length
            _, (hidden, _) = self.lstm(mels)
            e = self.linear(hidden[-1]).relu()
            return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return Encoder()


class VoiceEncoder:
    """Waveforms (B, inputs, samples) at `sr` -> embeddings (B, inputs, 256) float32, on `device`;
    `precision` bf16 autocasts the LSTM (~1.7x faster on CPUs with native bf16; on song4-dev's clips
    the embeddings stay within cosine 0.9986 of fp32's, on pure synthetic tones only 0.95)."""

    def __init__(
        self, path: Path, sr: int, duration: float, precision: str = "fp32", device: str = "cpu", *, overlap: float
    ):
        self.path = path
        self.sr = sr
        self.n_samples = round(duration * SR)
        self.precision = precision  # fp32 | bf16, resolved
        self.overlap = overlap
        self.device_setting = device  # resolved at the first embedding

    @functools.cached_property
    def device(self):
        from kit.device import resolve_device

        return resolve_device(self.device_setting, "features.device")

    @functools.cached_property
    def model(self):  # loaded at the first embedding: a store that is up to date needs only the hash
        model = _encoder()
        model.load_state_dict(load_state(self.path))
        return model.eval().to(self.device)

    @functools.cached_property
    def mel(self):
        import librosa
        import torch

        mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
        return torch.from_numpy(mel).to(self.device)

    def describe(self) -> dict:
        desc = {"encoder": "ge2e", "weights_sha256": file_digest(self.path), "sr": SR, "window_frames": WINDOW}
        if self.precision != "fp32":  # fp32 stores keep the hash they had before the option
            desc["precision"] = self.precision
        if self.overlap != 0.5:  # nor do those of the half-overlapping windows kit had before the option
            desc["overlap"] = self.overlap
        return desc

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        import soxr
        import torch

        flat = waves.reshape(-1, waves.shape[-1]).astype(np.float32)
        y = soxr.resample(flat.T, self.sr, SR).T if self.sr != SR else flat
        y = np.pad(y, ((0, 0), (0, max(0, self.n_samples - y.shape[1]))))[:, : self.n_samples]
        rms = np.sqrt(np.mean(y.astype(np.float64) ** 2, axis=1, keepdims=True))
        y = np.where(rms > 1e-6, y * (10 ** (TARGET_DBFS / 20) / np.maximum(rms, 1e-6)), y).astype(np.float32)
        dev = self.device
        bf16 = self.precision == "bf16"
        with torch.inference_mode():
            mels = self._mels(torch.from_numpy(y).to(dev))  # (n, frames, 40), fp32
            starts = windows(mels.shape[1], self.overlap)
            parts = torch.stack([mels[:, s : s + WINDOW] for s in starts], dim=1)  # (n, windows, WINDOW, 40)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):  # the LSTM only
                emb = self.model(parts.reshape(-1, WINDOW, N_MELS)).float().cpu().numpy()
        return emb.reshape(len(flat), len(starts), DIM).mean(1).reshape(*waves.shape[:-1], DIM)

    def _mels(self, y):
        """librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40), power, time first."""
        import torch

        window = torch.hann_window(N_FFT, periodic=True, device=y.device)
        spec = torch.stft(y, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
        mels = torch.matmul(spec.abs().square().transpose(1, 2), self.mel.T).float()  # (n, frames, 40)
        if mels.shape[1] < WINDOW:
            mels = torch.nn.functional.pad(mels, (0, 0, 0, WINDOW - mels.shape[1]))
        return mels


def windows(frames: int, overlap: float) -> list[int]:
    """Start frames of the 160-frame windows covering `frames`: evenly spread, consecutive ones
    overlapping by at least `overlap` of a window (0.5: at most 80 frames apart)."""
    if frames <= WINDOW:
        return [0]
    n = math.ceil((frames - WINDOW) / (WINDOW * (1 - overlap))) + 1
    return [round(s) for s in np.linspace(0, frames - WINDOW, n)]
