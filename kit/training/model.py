"""The network as kit trains it: input standardisation in front of a zoo model, the precision its
forward pass runs in, batched prediction, and one member's weights out of a packed model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kit.training.checkpoint import prefixed

FREQ_DIM, TIME_DIM = 2, 3  # models and augmentation take (B, C, freq, time) batches


class Standardised(nn.Module):
    """A model with fixed input standardisation in front (saved with its weights)."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def input_stats(x, idx: np.ndarray, mode: str, freq_dim: int):
    """Mean / std of the training fold per channel: per frequency band, global, or identity."""
    shape = [1] * x.dim()
    if mode == "none":
        return torch.zeros(shape), torch.ones(shape)
    total, total_sq, count = 0.0, 0.0, 0
    keep = (1, freq_dim) if mode == "band" else (1,)
    dims = tuple(d for d in range(x.dim()) if d not in keep)
    for chunk in np.array_split(idx, max(1, len(idx) // 512)):
        xb = x[torch.as_tensor(chunk, device=x.device)].double()
        total = total + xb.sum(dims, keepdim=True)
        total_sq = total_sq + (xb * xb).sum(dims, keepdim=True)
        count += xb.numel() // int(np.prod([xb.shape[d] for d in keep]))
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-8).sqrt()
    return mean.float().cpu(), std.float().cpu()


def member_weights(model, g: int) -> dict:
    """Member g's state_dict (copies), as its own single model's."""
    from kit.models.pack import Packed, member_state

    if not isinstance(model.net, Packed):
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    stats = {"mean": model.mean.clone(), "std": model.std.clone()}
    return stats | prefixed("net", member_state(model.net, g))


def member_key(name: str, g: int) -> str:
    """Checkpoint name of member g's `name` (member 0: as a single run's checkpoint has it)."""
    return name if g == 0 else f"{name}{g}"


def predict(model, x, idx: np.ndarray, device, batch_size: int, amp: torch.dtype | None) -> np.ndarray:
    """Softmax probabilities (len(idx), K) float32, in idx order ((len(idx), G, K) from G packed
    members); amp: the autocast dtype (None: fp32)."""
    model.eval()
    out = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        for start in range(0, len(idx), batch_size):
            sel = torch.as_tensor(idx[start : start + batch_size], device=x.device)
            xb = x[sel].to(device).float().contiguous(memory_format=torch.channels_last)
            out.append(torch.softmax(model(xb).float(), dim=-1).cpu())
    return torch.cat(out).numpy()
