"""Separation backends behind one interface: describe() for the stems hash, run(jobs) to write.

dsp runs batched in torch (a process pool on the CPU, this process on a GPU); spleeter in its own venv through a worker; demucs in-process
when its optional extra is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict

import numpy as np

from kit.data import audio
from kit.device import one_thread, resolve_device, torch_threads
from kit.errors import KitError, listing
from kit.params import DspParams, SeparateParams
from kit.prefetch import ordered
from kit.separation.stems import Job, write_stem


def make_backend(params: SeparateParams, sr: int, duration: float):
    if params.backend == "dsp":
        return DspBackend(params.dsp, sr, duration, params.device, params.batch_size)
    if params.backend == "spleeter":
        from kit.separation.spleeter import SpleeterBackend

        return SpleeterBackend(params.spleeter, sr, duration)
    if params.backend == "demucs":
        from kit.separation.demucs import DemucsBackend

        return DemucsBackend(params.demucs, sr, duration, params.device)
    raise KitError(f"separate.backend: unknown backend {params.backend!r} (none | dsp | spleeter | demucs)")


class DspBackend:
    """Batches of clips through kit.separation.dsp: on the CPU one process per worker (torch on one
    thread each); on a GPU (or with one worker) in this process, decoding and FLAC writing in
    threads around it."""

    def __init__(self, p: DspParams, sr: int, duration: float, device: str, batch_size: int):
        self.p, self.sr, self.duration = p, sr, duration
        self.device, self.batch_size = device, batch_size

    def describe(self) -> dict:
        from importlib.metadata import version

        return {"name": "dsp", **asdict(self.p), "librosa": version("librosa")}

    def run(self, jobs: list[Job], workers: int, progress: Callable[[int], None] | None) -> None:
        device = resolve_device(self.device, "separate.device")
        batches = [jobs[i : i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
        failed: list[str] = []
        if device.type == "cpu" and workers > 1:
            with ProcessPoolExecutor(workers, initializer=one_thread) as pool:
                for batch, errors in zip(batches, pool.map(self._batch, batches)):
                    failed += errors
                    if progress:
                        progress(len(batch))
        else:
            with ThreadPoolExecutor(workers) as pool, torch_threads(1 if device.type == "cpu" else None):
                writes = []
                for batch, (ok, waves, errors) in zip(batches, ordered(pool, self._decode, batches, 2)):
                    failed += errors
                    if ok:
                        stems = self._separate(ok, waves, str(device))
                        writes.append(pool.submit(self._write, ok, stems))
                    if progress:
                        progress(len(batch))
                for w in writes:
                    w.result()
        raise_failed(failed)

    def _batch(self, jobs: list[Job]) -> list[str]:
        ok, waves, errors = self._decode(jobs)
        if ok:
            self._write(ok, self._separate(ok, waves, "cpu"))
        return errors

    def _decode(self, jobs: list[Job]) -> tuple[list[Job], list[np.ndarray], list[str]]:
        ok, waves, errors = [], [], []
        for job in jobs:
            try:
                waves.append(audio.load(job.src, self.sr, self.duration))
                ok.append(job)
            except audio.DecodeError as exc:
                errors.append(f"{job.src} ({exc})")
        return ok, waves, errors

    def _separate(self, jobs: list[Job], waves: list[np.ndarray], device: str) -> dict[str, np.ndarray]:
        from kit.separation.dsp import separate_batch

        accompaniment = any("accompaniment" in j.outs for j in jobs)
        vocals, accomp = separate_batch(np.stack(waves), self.sr, self.p, accompaniment=accompaniment, device=device)
        return {"vocals": vocals, "accompaniment": accomp}

    def _write(self, jobs: list[Job], stems: dict[str, np.ndarray]) -> None:
        for i, job in enumerate(jobs):
            for stem, out in job.outs.items():
                write_stem(out, stems[stem][i], self.sr)


def raise_failed(failed: list[str]) -> None:
    if failed:
        raise KitError(f"{len(failed)} clip(s) could not be decoded: {listing(failed)}")
