"""The sweep's driver: plan the trials, start (or join) Ray, send each store once, schedule one task
per trial with its resources, land the runs that come back, report progress as it goes.

A trial is exactly a `kit train`: the worker calls the same function with the same params, so a
swept run has the key and id the same run trained by hand has, and runs already in the registry
are not scheduled. A trial whose worker dies is started again by Ray (`sweep.retries`) and resumes
from its checkpoint on that node; one that raises is reported with its one-line error while the
others go on; Ctrl-C cancels what is running, and the same command later trains what is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kit.errors import Interrupted, KitError
from kit.params import SweepParams, TrainParams
from kit.training.run import Replace


@dataclass(frozen=True)
class Trial:
    label: str  # what the tables call it: the pipeline run's name, or the grid point
    params: TrainParams | None  # None: its command line was refused (error)
    name: str | None = None  # the run id to give it (`kit train --name`); None: arch-seed-hash
    error: str = ""
    replace: Replace = (
        "never"  # a run already under its id: never replaced, or "stale" (a pipeline's: when its params differ)
    )


@dataclass
class TrialState:
    trial: Trial
    state: str = "queued"  # exists | queued | running | done | failed | interrupted
    run_ids: list[str] = field(default_factory=list)
    epoch: str = ""  # "fold 0, epoch 3"
    val_accuracy: float | None = None
    node: str = ""
    error: str = ""
    pid: int | None = None  # its worker's process id, while it runs
    tries: int = 0  # workers started for it (more than one: Ray started it again after its worker died)
    trial_id: str = ""  # its first run key: names its folders on a node, the same on a retry
    store: tuple[str, Path] | None = None  # (feature hash, folder) of the store it trains on


def plan(trials: list[Trial]) -> list[TrialState]:
    """Each trial's state before anything runs: its runs already exist, it is to be trained, or its
    params cannot train (a one-line error, the other trials go on). Trials of one run key are one."""
    from kit.training.run import make_plan

    states, seen = [], set()
    for trial in trials:
        state = TrialState(trial)
        if trial.error:
            state.state, state.error = "failed", trial.error
            states.append(state)
            continue
        try:
            p = make_plan(trial.params, trial.name, trial.replace)
        except KitError as exc:
            state.state, state.error = "failed", str(exc)
        else:
            if tuple(p.keys) in seen:
                continue
            seen.add(tuple(p.keys))
            state.run_ids, state.trial_id = p.run_ids, p.keys[0]
            state.store = (p.store.feature_hash, p.store.path)  # opened once, here
            if all(p.done):
                state.state = "exists"
        states.append(state)
    return states


def run(states: list[TrialState], sp: SweepParams, runs_dir: Path, on_update: Callable[[], None]) -> None:
    """Train every queued trial on Ray and land its runs in `runs_dir`; states change in place."""
    queued = [s for s in states if s.state == "queued"]
    if not queued:
        return
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        _init(ray, sp)
    try:
        _schedule(ray, queued, sp, runs_dir, on_update)
    finally:
        if started_here:
            ray.shutdown()


def _init(ray, sp: SweepParams) -> None:
    import logging

    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if sp.address:
            ray.init(address=sp.address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count(), **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"sweep.address {sp.address}" if sp.address else "a local Ray"
        raise KitError(f"{where}: cannot start or join Ray ({str(exc).strip().splitlines()[0][:200]})") from None


def _schedule(ray, queued: list[TrialState], sp: SweepParams, runs_dir: Path, on_update) -> None:
    from kit.sweep.folders import pack
    from kit.sweep.progress import Progress
    from kit.sweep.worker import run_trial

    progress = Progress.remote()
    stores: dict[str, dict] = {}
    task = ray.remote(run_trial).options(
        num_cpus=sp.cpus_per_run, num_gpus=sp.gpus_per_run, max_retries=sp.retries, retry_exceptions=False
    )
    pending = {}
    for s in queued:
        feature_hash, path = s.store
        if feature_hash not in stores:  # each store crosses to the object store once
            stores[feature_hash] = {"hash": feature_hash, "ref": [ray.put(pack(path))]}
        ref = task.remote(s.trial_id, s.trial.params, s.trial.name, stores[feature_hash], progress)
        pending[ref] = (s, s.trial_id)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            _progress(ray, progress, {tid: s for s, tid in pending.values()})
            for ref in ready:
                s, _ = pending.pop(ref)
                _finish(ray, ref, s, runs_dir)
            on_update()
    except KeyboardInterrupt:
        for ref, (s, _) in pending.items():
            ray.cancel(ref, force=True)
            s.state = "interrupted"
        on_update()
        raise Interrupted(
            f"interrupted: {len(pending)} training(s) stopped; the runs that landed are kept, and the same"
            " command trains the rest (each resumes from its last checkpoint on its node)"
        ) from None


def _progress(ray, progress, by_id: dict[str, TrialState]) -> None:
    for trial_id, info in ray.get(progress.read.remote()).items():
        s = by_id.get(trial_id)
        if s is None or s.state in ("done", "failed"):
            continue
        s.state, s.node, s.tries, s.pid = "running", info["node"], info["starts"], info["pid"]
        if "epoch" in info:
            s.epoch, s.val_accuracy = info["epoch"], info["val_accuracy"]


def _finish(ray, ref, s: TrialState, runs_dir: Path) -> None:
    """Land a finished trial's runs, or record its one-line error."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        s.state, s.error = "failed", _one_line(cause)
        return
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.TaskCancelledError) as exc:
        s.state, s.error = "failed", f"its worker died {s.tries or 1} time(s): {type(exc).__name__}"
        return
    try:
        for run_id, files in result["runs"]:
            land(runs_dir, run_id, files, s.trial.params.features, replace=s.trial.replace != "never")
    except KitError as exc:
        s.state, s.error = "failed", str(exc)
        return
    s.state, s.node, s.run_ids = "done", result["node"], [run_id for run_id, _ in result["runs"]]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if isinstance(exc, KitError) and text else f"{type(exc).__name__}: {text[-1] if text else ''}"


def land(runs_dir: Path, run_id: str, files: dict[str, bytes], features: str, replace: bool = False) -> None:
    """A run folder that came back from a worker, written whole (temp folder, then rename) as
    `kit train` writes one; run.json names the driver's store and commit, not the worker's."""
    from kit.registry import runs as registry
    from kit.sweep.folders import unpack
    from kit.training.record import git

    def fill(tmp: Path) -> None:
        unpack(files, tmp)
        meta = json.loads((tmp / registry.RUN_JSON).read_text())
        meta |= {"features": str(features), "git": git(), "landed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / registry.RUN_JSON).write_text(json.dumps(meta, indent=1))

    registry.write(runs_dir, run_id, fill, replace=replace)
