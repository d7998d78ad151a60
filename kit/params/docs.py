"""docs/params.md, generated from the schema (`kit params docs`); a test fails when it is stale."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from kit.params.load import describe_range, pattern_words
from kit.params.schema import READS, Params

HEADER = """# Parameters

Generated from `kit/params/schema.py` by `kit params docs`: do not edit by hand.

Every parameter lives in `params.yaml` under its dotted key. Any `kit` command that reads a key
takes `-S key=value` (repeatable; the value is read as YAML, as `dvc exp run -S` does), e.g.
`kit train cnn4f -S train.lr=0.003 -S train.augment.mixup_alpha=0`; the flags below are aliases of
the same keys. A value of the wrong type or outside its range is refused with one line naming the
key, before any work starts (exit status 2). **identity**: part of what the stage makes: a run's
key for `train.*` (`kit train` finds an existing run by it); the rest (paths, workers, devices)
changes how, not what.

Commands read: {reads}.
"""


def render() -> str:
    reads = "; ".join(f"`kit {cmd}` {', '.join(f'`{k}`' for k in keys)}" for cmd, keys in READS.items())
    out = [HEADER.format(reads=reads)]
    for f in dataclasses.fields(Params):
        out += _section(typing.get_type_hints(Params)[f.name], f, f.name)
    return "\n".join(out).rstrip() + "\n"


def _section(cls: type, f: dataclasses.Field, prefix: str) -> list[str]:
    lines = [f"## `{prefix}`", "", f.metadata.get("help", ""), ""]
    rows, subs = [], []
    hints, defaults = typing.get_type_hints(cls), cls()
    for g in dataclasses.fields(cls):
        tp = hints[g.name]
        if dataclasses.is_dataclass(tp):
            subs.append((tp, g, f"{prefix}.{g.name}"))
        else:
            rows.append(_row(f"{prefix}.{g.name}", tp, g, getattr(defaults, g.name)))
    if rows:
        lines += [
            "| key | type | default | allowed | identity | flag | what it does |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += rows
        lines.append("")
    for sub in subs:
        lines += _section(*sub)
    return lines


def _row(key: str, tp: Any, f: dataclasses.Field, default: Any) -> str:
    m = f.metadata
    flag = m.get("flag")
    if isinstance(flag, dict):
        flag = ", ".join(f"`{v}` (kit {k})" for k, v in flag.items())
    elif flag:
        flag = f"`{flag}`"
    allowed = " \\| ".join(map(str, typing.get_args(tp))) if typing.get_origin(tp) is Literal else describe_range(m)
    if m.get("pattern"):
        allowed = (m.get("pattern_help") or pattern_words(m["pattern"])).replace("|", "\\|")
    cells = [f"`{key}`", _type(tp), f"`{_yaml(default)}`", allowed, "yes" if m.get("identity", True) else "",
             flag or "", m.get("help", "").replace("|", "\\|")]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def _type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "choice"
    if origin is not None:
        args = [_type(a) for a in typing.get_args(tp)]
        name = {list: "list", dict: "map"}.get(origin)
        return f"{name}[{', '.join(args)}]" if name else " or ".join(args)
    return {type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _yaml(value: Any) -> str:
    import json

    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict) and value and all(dataclasses.is_dataclass(v) for v in value.values()):
        value = {k: dataclasses.asdict(v) for k, v in value.items()}
    return "null" if value is None else json.dumps(value) if not isinstance(value, str) else (value or '""')
