"""The learning-rate schedule, stepped per batch or per epoch, and replayable on resume."""

from __future__ import annotations

import re
import warnings

import torch

from kit.params import TrainParams


class Schedule:
    """The learning-rate schedule, stepped per batch or per epoch, and replayable on resume."""

    def __init__(self, opt, p: TrainParams, steps: int):
        total = p.epochs * steps
        self.kind, self.steps = ("none" if p.scheduler == "onecycle" and total < 4 else p.scheduler), steps
        if self.kind == "onecycle":  # warm up over a quarter of the steps (at least 2)
            self.s = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=p.lr, total_steps=total, pct_start=min(0.5, max(0.25, 2 / total))
            )
        elif self.kind == "cosine_restarts":
            self.s = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=max(1, p.restart_epochs))
        elif self.kind == "plateau":
            mode = "min" if p.metric == "log_loss" else "max"
            self.s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=p.gamma, patience=p.patience)
        elif self.kind == "multistep":
            self.s = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=p.milestones, gamma=p.gamma)
        else:
            self.s = None

    def batch_end(self, epoch: int, i: int) -> None:
        if self.kind == "onecycle":
            self.s.step()
        elif self.kind == "cosine_restarts":
            self.s.step(epoch + (i + 1) / self.steps)

    def epoch_end(self, metric: float) -> None:
        if self.kind == "plateau":
            self.s.step(metric)
        elif self.kind == "multistep":
            self.s.step()

    def replay(self, history: list[dict], metric: str) -> None:
        """Step through the finished epochs again, on an optimizer that has not stepped (torch warns
        about exactly that, which is the point here)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"), UserWarning)
            for record in history:
                for i in range(self.steps):
                    self.batch_end(record["epoch"], i)
                self.epoch_end(record.get(f"val_{metric}"))
