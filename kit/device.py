"""Where torch work runs and in what precision: one rule for training, separation and features."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kit.errors import KitError


def resolve_device(name: str, key: str = "train.device"):
    """auto: the first CUDA device when there is one, else the CPU; `key` names the setting in errors."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KitError(f"{key}: {name} requested but CUDA is not available")
    return dev


def autocast_dtype(precision: str, device):
    """The dtype work autocasts to, None for fp32. auto: bf16 on CUDA and on CPUs with native bf16
    (oneDNN's bf16 kernels: a cnn4f epoch ~1.6x fp32, the voice encoder's LSTM ~3x); fp32 on other
    CPUs, where bf16 is emulated and slower."""
    import torch

    if precision == "fp32":
        return None
    cpu = [getattr(torch.cpu, f, lambda: False) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    native = device.type == "cuda" or any(check() for check in cpu)  # (torch < 2.5 lacks both checks)
    return torch.bfloat16 if precision == "bf16" or native else None


def precision_name(precision: str, device) -> str:
    """ "bf16" or "fp32": what `precision` (auto | fp32 | bf16) resolves to on `device`."""
    return "bf16" if autocast_dtype(precision, device) is not None else "fp32"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch ops on `n` threads (None: as they are): where decoding threads need the other
    cores, torch's OpenMP pool spinning against them is ~7x slower on a 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread() -> None:
    """A worker process's torch runs on one thread: the other workers have the other cores."""
    import torch

    torch.set_num_threads(1)
