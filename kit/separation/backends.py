"""Separation backends behind one interface: describe() for the stems hash, run(jobs) to write.

dsp runs here in a process pool; spleeter in its own venv through a worker; demucs in-process
when its optional extra is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict

from kit.data import audio
from kit.errors import KitError, listing
from kit.params import DspParams, SeparateParams
from kit.separation.stems import Job, write_stem


def make_backend(params: SeparateParams, sr: int, duration: float):
    if params.backend == "dsp":
        return DspBackend(params.dsp, sr, duration)
    if params.backend == "spleeter":
        from kit.separation.spleeter import SpleeterBackend

        return SpleeterBackend(params.spleeter, sr, duration)
    if params.backend == "demucs":
        from kit.separation.demucs import DemucsBackend

        return DemucsBackend(params.demucs, sr, duration)
    raise KitError(f"separate.backend: unknown backend {params.backend!r} (none | dsp | spleeter | demucs)")


class DspBackend:
    def __init__(self, p: DspParams, sr: int, duration: float):
        self.p, self.sr, self.duration = p, sr, duration

    def describe(self) -> dict:
        from importlib.metadata import version

        return {"name": "dsp", **asdict(self.p), "librosa": version("librosa")}

    def run(self, jobs: list[Job], workers: int, progress: Callable[[int], None] | None) -> None:
        chunk = 16
        batches = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
        failed: list[str] = []
        with ProcessPoolExecutor(workers) as pool:
            for n, errors in pool.map(_dsp_batch, [(b, self.p, self.sr, self.duration) for b in batches]):
                failed += errors
                if progress:
                    progress(n)
        raise_failed(failed)


def _dsp_batch(args) -> tuple[int, list[str]]:
    from kit.separation.dsp import separate

    jobs, p, sr, duration = args
    errors = []
    for job in jobs:
        try:
            y = audio.load(job.src, sr, duration)
        except audio.DecodeError as exc:
            errors.append(f"{job.src} ({exc})")
            continue
        stems = dict(zip(("vocals", "accompaniment"), separate(y, sr, p)))
        for stem, out in job.outs.items():
            write_stem(out, stems[stem], sr)
    return len(jobs), errors


def raise_failed(failed: list[str]) -> None:
    if failed:
        raise KitError(f"{len(failed)} clip(s) could not be decoded: {listing(failed)}")
