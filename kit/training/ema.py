"""An exponential moving average of the weights (train.ema_epochs)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def moving_average(model, ema_epochs: float, steps: int):
    """An exponential moving average of the weights and BatchNorm buffers, updated every step with
    a time constant of `ema_epochs` epochs; None when off."""
    if ema_epochs <= 0:
        return None
    return MovingAverage(model, decay=1.0 - 1.0 / max(1.0, ema_epochs * steps))


class MovingAverage(AveragedModel):
    """torch's AveragedModel with its EMA arithmetic (get_ema_multi_avg_fn; its state_dict is the
    checkpoint's), updated without copying its step count to the device: torch's own update does
    that every step, a blocking copy that makes each CUDA step wait for the GPU. The count stays on
    the CPU (AveragedModel puts it there), so reading it costs nothing."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model, use_buffers=True)
        self.decay = decay

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [t.detach() for t in (*model.parameters(), *model.buffers())]
        if self.n_averaged.item() == 0:  # the first step starts the average at the weights
            for m, t in zip(mine, theirs, strict=True):
                m.copy_(t)
        else:
            averaged, latest = [], []  # the floating-point tensors, lerped together
            for m, t in zip(mine, theirs, strict=True):
                if m.is_floating_point():
                    averaged.append(m)
                    latest.append(t)
                else:  # BatchNorm's batch counts
                    m.copy_(m * self.decay + t * (1 - self.decay))
            if averaged:
                torch._foreach_lerp_(averaged, latest, 1 - self.decay)
        self.n_averaged += 1
