"""Training state on disk without pickle: tensors in safetensors, the rest in JSON.

A checkpoint folder holds `state.safetensors` + `state.json` and is replaced atomically, so a
run killed at any moment resumes from the last complete checkpoint. The fit loop saves through a
`Writer`, which writes in the background while the next epoch trains.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from kit.atomic import atomic_dir, set_aside

TENSORS, META = "state.safetensors", "state.json"


class Writer:
    """Saves checkpoints in a background thread, at most one at a time, so training goes on while
    the last epoch's state reaches the disk (a pack of 20 ResNet34s checkpoints ~6 GiB per epoch).

    `save` waits for the previous write, copies the tensors to the CPU (the next steps change them
    in place) and returns; `wait` waits for the last one. A failed write raises in the call after
    it. As a context manager it waits on the way out; when the block raises, its error is the one
    reported (the write still finishes first, so no other writer meets it in the folder)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, folder: Path, tensors: dict[str, Any], meta: dict) -> None:
        self.wait()
        args = (folder, _snapshot(tensors), json.dumps(meta))
        self._thread = threading.Thread(target=self._run, args=args, name="kit-checkpoint")
        self._thread.start()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.wait()
        else:
            with contextlib.suppress(Exception):
                self.wait()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self, folder: Path, tensors: dict[str, Any], meta: str) -> None:
        try:
            _write(folder, tensors, meta)
        except BaseException as error:  # handed to the training thread
            self._error = error


def _snapshot(tensors: dict[str, Any]) -> dict[str, Any]:
    """Contiguous CPU copies (safetensors stores contiguous tensors)."""
    import torch

    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True) for k, v in tensors.items()}


def _write(folder: Path, tensors: dict[str, Any], meta: str) -> None:
    from safetensors.torch import save_file

    with atomic_dir(folder) as tmp:
        save_file(tensors, tmp / TENSORS)
        (tmp / META).write_text(meta)


def find(folder: Path) -> Path | None:
    """The folder holding the complete checkpoint: `folder`, or (a process killed while it replaced
    the checkpoint) the previous one it set aside; None when there is none."""
    if _complete(folder):
        return folder
    return next((f for f in set_aside(folder) if _complete(f)), None)


def _complete(folder: Path) -> bool:
    return (folder / META).exists() and (folder / TENSORS).exists()


def load(folder: Path) -> tuple[dict[str, Any], dict] | None:
    """(tensors, meta) of the checkpoint `find` finds, or None."""
    from safetensors.torch import load_file

    found = find(folder)
    if found is None:
        return None
    return load_file(found / TENSORS), json.loads((found / META).read_text())


def epoch(folder: Path) -> int | None:
    """The last epoch the checkpoint holds (its JSON only: the tensors stay on disk), or None."""
    found = find(folder)
    return None if found is None else json.loads((found / META).read_text())["epoch"]


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
