"""`param()`: how the schema declares one parameter (a dataclass field whose metadata says the rest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any


def param(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    pattern: str | None = None,
    pattern_help: str | None = None,
    identity: bool = True,
    flag: str | dict[str, str] | None = None,
    implies: dict[str, Any] | None = None,
    key_omit: Callable[[Any], bool] | None = None,
    key_as: str | None = None,
    key_values: dict | None = None,
) -> Any:
    """One parameter (a dataclass field whose metadata says everything else about it).

    ge / gt / le / lt: the allowed range (None is always allowed where the type says `| None`);
    pattern: a regular expression a string must match whole (pattern_help: it in words). identity: part of the run key (train)
    or of the stored artefact's hash (features, separate); False for paths, speed and logging knobs.
    flag: the command-line alias (a section's own command), or {command: flag} for other commands;
    "--on/--off" for booleans. implies: sibling values the flag also sets (--folds: kind kfold).
    key_omit / key_as / key_values: how the run key spells the value, so that runs trained before a
    parameter existed or was renamed keep their keys (omitted at this value, the old name, old values).
    """
    meta = dict(help=help, ge=ge, gt=gt, le=le, lt=lt, pattern=pattern, pattern_help=pattern_help, identity=identity)
    meta |= dict(flag=flag)
    meta |= dict(implies=implies or {}, key_omit=key_omit, key_as=key_as, key_values=key_values or {})
    if isinstance(default, list | dict):
        return field(default_factory=lambda: _copy(default), metadata=meta)
    if isinstance(default, type):  # a section
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def section(cls: type, help: str, **kw: Any) -> Any:
    """A nested group of parameters (params.yaml mapping)."""
    return param(cls, help, **kw)
