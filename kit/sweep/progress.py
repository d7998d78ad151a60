"""A Ray actor the trials report to (node, epoch, validation accuracy) and the driver reads."""

from __future__ import annotations

import ray


@ray.remote(num_cpus=0)
class Progress:
    def __init__(self) -> None:
        self.trials: dict[str, dict] = {}

    def started(self, trial_id: str, node: str, pid: int) -> None:
        info = self.trials.setdefault(trial_id, {"starts": 0})
        info.update(starts=info["starts"] + 1, node=node, pid=pid)

    def epoch(self, trial_id: str, fold: int, epoch: int, val_accuracy: float | None) -> None:
        where = f"fold {fold}" if val_accuracy is not None else "refit"
        self.trials[trial_id].update(epoch=f"{where}, epoch {epoch + 1}", val_accuracy=val_accuracy)

    def read(self) -> dict[str, dict]:
        return self.trials
