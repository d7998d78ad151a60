"""Training state on disk without pickle: tensors in safetensors, the rest in JSON.

A checkpoint folder holds `state.safetensors` + `state.json` and is replaced atomically, so a
run killed at any moment resumes from the last complete epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kit.atomic import atomic_dir

TENSORS, META = "state.safetensors", "state.json"


def save(folder: Path, tensors: dict[str, Any], meta: dict) -> None:
    from safetensors.torch import save_file

    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp / TENSORS)
        (tmp / META).write_text(json.dumps(meta))


def load(folder: Path) -> tuple[dict[str, Any], dict] | None:
    """(tensors, meta), or None when there is no complete checkpoint."""
    from safetensors.torch import load_file

    if not (folder / META).exists() or not (folder / TENSORS).exists():
        return None
    return load_file(folder / TENSORS), json.loads((folder / META).read_text())


def flatten_optimizer(state: dict) -> tuple[dict[str, Any], dict]:
    """optimizer.state_dict() -> (tensors, JSON-able rest)."""
    import torch

    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer(opt, tensors: dict[str, Any], rest: dict) -> None:
    """Restore an optimizer from `flatten_optimizer`'s parts, each per-parameter tensor laid out
    like its parameter (stored tensors are contiguous; fused CUDA optimizers refuse state whose
    layout differs from a channels_last weight's)."""
    import torch

    opt.load_state_dict(unflatten_optimizer(tensors, rest))
    for group in opt.param_groups:
        for param in group["params"]:
            state = opt.state.get(param, {})
            for name, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape == param.shape:
                    state[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def unflatten_optimizer(tensors: dict[str, Any], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in rest["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def prefixed(prefix: str, tensors: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, Any]) -> dict[str, Any]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
