"""The demucs backend (optional extra: pip install 'kit[demucs]'), run in-process and batched.

Weights come from demucs' cache / download, or from a local folder (separate.demucs.repo, as
`demucs --repo`), so it also works offline once the files are there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from kit.data import audio
from kit.device import resolve_device
from kit.errors import KitError
from kit.params import DemucsParams
from kit.separation.backends import raise_failed
from kit.separation.stems import Job, write_stem

BATCH = 8


class DemucsBackend:
    def __init__(self, p: DemucsParams, sr: int, duration: float, device: str):
        try:
            from demucs.pretrained import get_model
        except ImportError:
            raise KitError("demucs is not installed: pip install 'kit[demucs]'") from None
        self.p, self.sr, self.duration, self.device = p, sr, duration, device
        repo = Path(p.repo) if p.repo else None
        if repo is not None and not repo.is_dir():
            raise KitError(f"separate.demucs.repo: {repo} is not a folder")
        try:
            self.model = get_model(p.model, repo=repo)
        except Exception as exc:  # demucs raises ModelLoadingError, URLError, ...
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = f"from {repo}" if repo else "(download needs network)"
            raise KitError(
                f"demucs could not load model {p.model!r} {where}: {msg}. Offline, put its weights in a folder "
                "and set separate.demucs.repo to it"
            ) from None
        self.weights = {f.name: f.stat().st_size for f in sorted(repo.iterdir())} if repo else {}

    def describe(self) -> dict:
        from importlib.metadata import version

        return {"name": "demucs", "model": self.p.model, "demucs": version("demucs"), "weights": self.weights}

    def run(self, jobs: list[Job], workers: int, progress: Callable[[int], None] | None) -> None:
        import torch
        from demucs.apply import apply_model

        device = resolve_device(self.device, "separate.device")
        rate, n = self.model.samplerate, round(self.duration * self.model.samplerate)
        vocals_at = self.model.sources.index("vocals")
        failed = []
        for start in range(0, len(jobs), BATCH):
            batch, waves = [], []
            for job in jobs[start : start + BATCH]:
                try:
                    waves.append(audio.load(job.src, rate, self.duration))
                    batch.append(job)
                except audio.DecodeError as exc:
                    failed.append(f"{job.src} ({exc})")
            if batch:
                x = torch.from_numpy(np.stack(waves))[:, None].expand(-1, self.model.audio_channels, n)
                with torch.inference_mode():
                    out = apply_model(self.model, x.contiguous(), device=device, progress=False)
                vocals = out[:, vocals_at].mean(dim=1).cpu().numpy()
                for job, mix, v in zip(batch, waves, vocals):
                    for stem, y in (("vocals", v), ("accompaniment", mix - v)):
                        if stem in job.outs:
                            write_stem(job.outs[stem], audio.resample(y.astype(np.float32), rate, self.sr), self.sr)
            if progress:
                progress(len(jobs[start : start + BATCH]))
        raise_failed(failed)
