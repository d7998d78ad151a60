"""What a Ray worker runs for one trial: the feature store put on its node by content hash, `kit
train`'s own function (same key, same run), and the finished run folders sent back as values.

Nothing is read from the driver's filesystem: a node keeps what it received under a local folder
(`NODE_ROOT`), stores by feature hash, runs and their work folders (checkpoints) by run key, so a
trial started again on the node after its worker died resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kit.params import TrainParams

NODE_ROOT = Path(os.environ.get("KIT_SWEEP_ROOT", Path(tempfile.gettempdir()) / "kit-sweep"))


def materialise(feature_hash: str, store_ref: list) -> Path:
    """The store of this feature hash on this node, fetched from the object store the first time."""
    from kit.atomic import atomic_dir
    from kit.sweep.folders import unpack

    path = NODE_ROOT / "stores" / feature_hash
    if not (path / "meta.json").exists():
        import ray

        files = ray.get(store_ref[0])  # wrapped in a list: Ray fetches it only here, when the node lacks it
        try:
            with atomic_dir(path, replace=False) as tmp:
                unpack(files, tmp)
        except FileExistsError:
            pass  # another trial on this node landed it first: the same bytes
    return path


def run_trial(trial_id: str, p: TrainParams, name: str | None, store: dict, progress: Any) -> dict:
    """Train one trial here; {"runs": [(run_id, files)], "trained": bool, "node": its id, "pid": pid}."""
    import ray
    import torch

    from kit.sweep.folders import pack
    from kit.training.run import Callbacks, train

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    node = ray.get_runtime_context().get_node_id()[:8]
    progress.started.remote(trial_id, node, os.getpid())

    def on_epoch(fold: int, records: list[dict]) -> None:
        r = records[0]
        progress.epoch.remote(trial_id, fold, r["epoch"], r.get("val_accuracy"))

    runs = NODE_ROOT / "trials" / trial_id / "runs"  # trial_id: its first run key, the same on a retry
    local = dataclasses.replace(p, features=str(materialise(store["hash"], store["ref"])), runs=str(runs))
    outcome = train(local, name=name, cb=Callbacks(epoch=on_epoch))
    folders = [(run.id, pack(run.path)) for run in outcome.runs]
    shutil.rmtree(runs.parent, ignore_errors=True)  # the runs travel back whole; the driver lands them
    return {"runs": folders, "trained": outcome.trained, "node": node, "pid": os.getpid()}
