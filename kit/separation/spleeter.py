"""The spleeter backend: a worker in spleeter's own venv, fed batches over a pipe.

spleeter 2.4.2 pins tensorflow 2.12.1, numpy<2, pandas<2 and typer<0.4, so it cannot share
kit's environment. Its weights are not downloaded here: they must sit in the model folder
(`2stems/` under --model-dir / $MODEL_PATH). With an empty folder spleeter silently returns
vocals equal to half of the mix; kit refuses such a folder up front and checks the output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kit.data import audio
from kit.errors import KitError
from kit.params import SpleeterParams
from kit.separation.stems import Job, write_stem

SPLEETER = "spleeter==2.4.2"
WEIGHTS_URL = "https://github.com/deezer/spleeter/releases/download/v1.4.0/2stems.tar.gz"
GARBAGE = 0.05  # vocals within 5% of half the mix: the model never loaded


def model_dir(p: SpleeterParams) -> Path:
    return Path(p.model_dir or os.environ.get("MODEL_PATH") or "pretrained_models")


def check_model_dir(root: Path) -> list[Path]:
    """The 2stems checkpoint files, or a KitError that says how to get them."""
    stems = root / "2stems"
    files = sorted(f for f in stems.glob("*") if f.is_file() and f.stat().st_size > 0) if stems.is_dir() else []
    names = {f.name for f in files}
    if "checkpoint" not in names or not any(n.endswith(".index") for n in names):
        state = "is missing" if not stems.is_dir() else "has no checkpoint" if files else "is empty"
        raise KitError(
            f"spleeter model folder {stems} {state}: download {WEIGHTS_URL}, extract it into {stems} "
            "(or point --model-dir / $MODEL_PATH at a folder holding 2stems/)"
        )
    return files


def env_python(p: SpleeterParams) -> Path:
    return Path(p.env) / "bin" / "python"


def setup(p: SpleeterParams, log: Callable[[str], None]) -> Path:
    """Create spleeter's venv (idempotent). Needs the package index and ffmpeg."""
    python = env_python(p)
    if python.exists() and _has_spleeter(python):
        log(f"spleeter environment ready at {p.env}")
        return python
    base = shutil.which(p.python)
    if base is None:
        raise KitError(f"separate.spleeter.python: {p.python} not found (spleeter 2.4.2 needs Python 3.8-3.11)")
    log(f"creating {p.env} with {p.python} and installing {SPLEETER} (tensorflow: a few minutes)")
    _call([base, "-m", "venv", str(p.env)], "venv creation")
    _call([str(python), "-m", "pip", "install", "-q", SPLEETER], f"pip install {SPLEETER}")
    return python


def _has_spleeter(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import spleeter"], capture_output=True).returncode == 0


def _call(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise KitError(f"spleeter setup: {what} failed: {last[-1] if last else done.returncode}")


class SpleeterBackend:
    def __init__(self, p: SpleeterParams, sr: int, duration: float):
        self.p, self.sr, self.duration = p, sr, duration
        self.root = model_dir(p)
        self.files = check_model_dir(self.root)  # before anything slow: the silent-garbage guard
        if shutil.which("ffmpeg") is None:
            raise KitError("spleeter needs ffmpeg on PATH (e.g. apt install ffmpeg)")

    def describe(self) -> dict:
        weights = {f.name: f.stat().st_size for f in self.files}
        return {"name": "spleeter", "package": SPLEETER, "model": "2stems", "weights": weights}

    def run(self, jobs: list[Job], workers: int, progress: Callable[[int], None] | None) -> None:
        python = setup(self.p, lambda msg: print(msg, file=sys.stderr))
        # run from inside the env: beside this module, `import spleeter` would find kit's spleeter.py
        worker = Path(self.p.env) / "kit_spleeter_worker.py"
        shutil.copyfile(Path(__file__).with_name("spleeter_worker.py"), worker)
        env = {**os.environ, "MODEL_PATH": str(self.root.resolve()), "TF_CPP_MIN_LOG_LEVEL": "2"}
        with (
            tempfile.TemporaryDirectory(prefix="kit-spleeter-") as tmp,
            subprocess.Popen(
                [str(python), str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
            ) as proc,
        ):
            _expect(proc, "ready")
            for start in range(0, len(jobs), max(1, self.p.batch_size)):
                batch = jobs[start : start + self.p.batch_size]
                raw = [Path(tmp) / f"{start + i}.npy" for i in range(len(batch))]
                proc.stdin.write(json.dumps({"jobs": [[str(j.src), str(r)] for j, r in zip(batch, raw)]}) + "\n")
                proc.stdin.flush()
                _expect(proc, "done")
                self._convert(batch, raw)
                if progress:
                    progress(len(batch))
            proc.stdin.close()

    def _convert(self, batch: list[Job], raw: list[Path]) -> None:
        """44.1 kHz stereo worker output -> mono stems at the front-end's rate, after the garbage check."""
        vocals = [audio.fit(np.load(r).mean(axis=1, dtype=np.float32), round(self.duration * 44100)) for r in raw]
        mixes = [audio.load(j.src, 44100, self.duration) for j in batch]
        check_not_half_mix(vocals, mixes, self.root)
        for job, v, m in zip(batch, vocals, mixes):
            for stem, y in (("vocals", v), ("accompaniment", m - v)):
                if stem in job.outs:
                    write_stem(job.outs[stem], audio.resample(y, 44100, self.sr), self.sr)


def check_not_half_mix(vocals: list[np.ndarray], mixes: list[np.ndarray], root: Path) -> None:
    """Spleeter with no usable weights returns mix / 2 as 'vocals': refuse it."""
    num = sum(float(np.sum((v - 0.5 * m) ** 2)) for v, m in zip(vocals, mixes))
    den = sum(float(np.sum((0.5 * m) ** 2)) for m in mixes)
    if den > 0 and (num / den) ** 0.5 < GARBAGE:
        raise KitError(
            f"spleeter returned vocals equal to half of the mix: the weights in {root / '2stems'} were not "
            f"loaded (spleeter's silent failure). Replace them with a fresh copy of {WEIGHTS_URL}"
        )


def _expect(proc: subprocess.Popen, key: str) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise KitError(f"the spleeter worker exited (status {proc.wait()}); its messages are above")
    msg = json.loads(line)
    if "error" in msg:
        raise KitError(f"spleeter worker: {msg['error']}")
    if key not in msg:
        raise KitError(f"spleeter worker: expected {key!r}, got {line.strip()}")
    return msg
