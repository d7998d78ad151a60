"""A section's identity: the fields the schema marks as part of what a run (or store) is, spelled
as the run key has always spelled them, so runs trained before a parameter existed or was renamed
keep their keys."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Hashable, Iterator
from typing import Any

from kit.params.schema import READS, Params


def identity(obj: Any) -> dict:
    """The identity fields of a params dataclass, nested sections as dicts."""
    out = {}
    for f in dataclasses.fields(obj):
        meta, value = f.metadata, getattr(obj, f.name)
        if not meta.get("identity", True) or (meta.get("key_omit") and meta["key_omit"](value)):
            continue
        if dataclasses.is_dataclass(value):
            value = identity(value)
        else:
            value = _plain(value)
            if isinstance(value, Hashable) and not isinstance(value, float):
                value = meta.get("key_values", {}).get(value, value)
        out[meta.get("key_as") or f.name] = value
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def run_key(p: Any, feature_hash: str, split_id: str, pack_seeds: list[int] | None = None) -> str:
    """A run's key: its identity params with the store's feature hash and the split's id (and, for
    packed models, the seeds trained together: a member trains as its pack does)."""
    parts = [identity(p), feature_hash, split_id, *([pack_seeds] if pack_seeds else [])]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def recorded(cls: type, name: str, value: Any) -> Any:
    """A value as a run record of an earlier version spelled it, in today's spelling (stem: seed ->
    stride1): the inverse of the field's key_values."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    legacy = {old: new for new, old in f.metadata.get("key_values", {}).items() if isinstance(old, str)}
    return legacy.get(value, value)


def leaves(cls: type = Params, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """(dotted key, type, field) of every parameter under a params dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from leaves(hints[f.name], key)
        else:
            yield key, hints[f.name], f


def reads(command: str, key: str) -> bool:
    """Whether `command` reads `key` (its section, or the key itself, is in READS)."""
    return any(key == k or key.startswith(k + ".") for k in READS[command])


def stage_params(command: str) -> list[str]:
    """The params a command's DVC stage depends on: the identity keys it reads (not paths, workers,
    devices: those change how a stage runs, not what it makes)."""
    return [key for key, _, f in leaves() if reads(command, key) and f.metadata.get("identity", True)]
