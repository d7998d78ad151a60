"""params.yaml and `-S key=value` overrides -> a validated `Params`, checked against the schema.

Every refusal is one line naming the file or option, the dotted key and what is allowed, e.g.
``params.yaml: train.lr: must be > 0, got -1.0`` or ``command line: -S train.epochs: expected an
integer, got 'abc'``; nothing runs before the whole set of params has passed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kit.errors import ParamError
from kit.params.schema import NAME, NAME_HELP, RENAMED, Params

PARAMS_FILE = "params.yaml"


def load_params(path: str | os.PathLike | None = None) -> Params:
    """Read params.yaml (default: ./params.yaml, or $KIT_PARAMS); defaults where absent."""
    path = Path(path or os.environ.get("KIT_PARAMS", PARAMS_FILE))
    if not path.exists():
        return Params()
    import yaml

    from kit.textfile import read_utf8

    try:
        raw = yaml.safe_load(read_utf8(path, error=ParamError)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ParamError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    params = parse(Params, raw, str(path), "")
    check(params, str(path))
    return params


def parse(cls: type, raw: Any, file: str, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, checking every key, type and range."""
    if not isinstance(raw, dict):
        raise ParamError(f"{file}: {prefix or 'top level'}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in raw:
        if name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            raise ParamError(f"{file}: {_unknown(key, sorted(fields))}")
    return cls(**{name: coerce(hints[name], fields[name], v, file, _join(prefix, name)) for name, v in raw.items()})


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _unknown(key: str, known: list[str]) -> str:
    if key in RENAMED:
        return f"unknown key '{key}': it is now '{RENAMED[key]}'"
    return f"unknown key '{key}' (known: {', '.join(known)})"


def coerce(tp: Any, f: dataclasses.Field | None, value: Any, file: str, key: str) -> Any:
    """`value` as type `tp`, within field f's declared range; else a ParamError naming file and key."""
    value = _typed(tp, value, file, key)
    if f is not None and value is not None:
        _check_range(f.metadata, value, file, key)
    return value


def _typed(tp: Any, value: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value if value is not None else {}, file, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        expected = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _typed(arg, value, file, key)
            except ParamError as exc:  # "file: key: expected X, got V": say every X
                expected.append(str(exc).rsplit(": expected ", 1)[-1].rsplit(", got ", 1)[0])
        raise ParamError(f"{file}: {key}: expected {' or '.join(expected)}, got {value!r}")
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ParamError(f"{file}: {key}: expected a mapping, got {value!r}")
        return {str(k): _typed(item, v, file, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ParamError(f"{file}: {key}: expected a list, got {value!r}")
        return [_typed(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ParamError(f"{file}: {key}: expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    expect = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }
    if tp not in ok:
        raise TypeError(f"unsupported parameter type {tp!r} at {key}")
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
        try:
            return float(value)
        except ValueError:
            pass
    if not ok[tp]:
        raise ParamError(f"{file}: {key}: expected {expect[tp]}, got {value!r}")
    return float(value) if tp is float else value


def _check_range(meta: typing.Mapping, value: Any, file: str, key: str) -> None:
    if meta.get("pattern") and isinstance(value, str) and not re.fullmatch(meta["pattern"], value):
        words = meta.get("pattern_help") or pattern_words(meta["pattern"])
        raise ParamError(f"{file}: {key}: expected {words}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if (why := bounds_error(meta, value)) is not None:
        raise ParamError(f"{file}: {key}: must be {why}, got {value!r}")


def check_name(name: str, where: str) -> str:
    """A run or submission name given on the command line: one file name, never a path."""
    if not re.fullmatch(NAME, name):
        raise ParamError(f"command line: {where}: expected {NAME_HELP}, got {name!r}")
    return name


def pattern_words(pattern: str) -> str:
    """A pattern as users read it: auto | cpu | cuda | cuda:N."""
    return pattern.replace("|", " | ").replace(r"\d+", "N")


def bounds_error(meta: typing.Mapping, value: float) -> str | None:
    """The declared range when `value` is outside it (e.g. "in [0, 1)"), else None."""
    lo = (meta["ge"], "[") if meta.get("ge") is not None else (meta["gt"], "(") if meta.get("gt") is not None else None
    hi = (meta["le"], "]") if meta.get("le") is not None else (meta["lt"], ")") if meta.get("lt") is not None else None
    low_ok = lo is None or (value >= lo[0] if lo[1] == "[" else value > lo[0])
    high_ok = hi is None or (value <= hi[0] if hi[1] == "]" else value < hi[0])
    if low_ok and high_ok:
        return None
    return describe_range(meta)


def describe_range(meta: typing.Mapping) -> str:
    """The declared range in words: "≥ 1", "> 0", "in [0, 1)", or "" when unbounded."""
    lo = ("≥", meta["ge"]) if meta.get("ge") is not None else (">", meta["gt"]) if meta.get("gt") is not None else None
    hi = ("≤", meta["le"]) if meta.get("le") is not None else ("<", meta["lt"]) if meta.get("lt") is not None else None
    if lo and hi:
        return f"in {'[' if lo[0] == '≥' else '('}{lo[1]:g}, {hi[1]:g}{']' if hi[0] == '≤' else ')'}"
    if lo or hi:
        sign, bound = lo or hi
        return f"{sign} {bound:g}"
    return ""


# ── overrides ────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Assignment:
    """One command-line setting of a dotted key: from `-S key=value`, a flag, or a flag's implication."""

    key: str  # dotted, e.g. train.split.folds
    value: Any  # already typed (a flag), or text to read as YAML (-S)
    source: str  # how the user said it: "-S train.lr", "--folds"
    text: bool = False  # value is -S text: read it as YAML (a string field keeps it verbatim)


def parse_set(item: str) -> Assignment:
    """`key=value` (dvc exp run -S syntax; an optional `params.yaml:` prefix) -> an Assignment."""
    key, sep, value = item.partition("=")
    key = key.strip().removeprefix(f"{PARAMS_FILE}:")
    if not sep or not key:
        raise ParamError(f"command line: -S {item!r}: expected key=value, e.g. -S train.lr=0.003")
    return Assignment(key, value, f"-S {key}", text=True)


def apply(params: Params, assignments: list[Assignment], allowed: tuple[str, ...] | None = None) -> Params:
    """params with the command line's assignments applied, each checked like params.yaml; two that
    set one key to different values are refused, naming both. allowed: the keys (sections, or
    single keys) the command reads; others are refused, naming the command's keys."""
    chosen: dict[str, tuple[Assignment, Any]] = {}
    for a in assignments:
        if allowed is not None and not any(a.key == k or a.key.startswith(k + ".") for k in allowed):
            raise ParamError(
                f"command line: {a.source}: this command does not read {a.key} (it reads {', '.join(allowed)})"
            )
        f, tp = locate(a.key, a.source)
        value = _value(tp, f, a)
        if a.key in chosen and chosen[a.key][1] != value:
            first = chosen[a.key][0]
            raise ParamError(
                f"command line: {first.source} and {a.source} contradict each other ({a.key}: {chosen[a.key][1]!r} vs {value!r})"
            )
        chosen[a.key] = (a, value)
    for key, (_, value) in chosen.items():
        params = _replace(params, key.split("."), value)
    check(params, "command line")
    return params


def _value(tp: Any, f: dataclasses.Field | None, a: Assignment) -> Any:
    where = a.source if a.source.startswith("-S") else f"{a.source} ({a.key})"
    if not a.text:
        return coerce(tp, f, a.value, "command line", where)
    import yaml

    try:
        value = yaml.safe_load(a.value) if a.value.strip() else ""
    except yaml.YAMLError:
        value = a.value
    try:
        return coerce(tp, f, value, "command line", where)
    except ParamError:
        if value != a.value and _takes_str(tp):  # e.g. -S data.root=2024 is the folder "2024"
            return coerce(tp, f, a.value, "command line", where)
        raise


def _takes_str(tp: Any) -> bool:
    return tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in typing.get_args(tp))


def locate(key: str, source: str) -> tuple[dataclasses.Field | None, Any]:
    """The schema field of a dotted key and its type (None for an entry of a mapping, e.g. one of
    pipeline.runs); an unknown key is refused naming the keys known at that level."""
    cls: Any = Params
    f = None
    parts = key.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        if dataclasses.is_dataclass(cls):
            fields = {x.name: x for x in dataclasses.fields(cls)}
            if part not in fields:
                raise ParamError(f"command line: {source}: {_unknown(here, sorted(fields))}")
            f, cls = fields[part], typing.get_type_hints(cls)[part]
        elif typing.get_origin(cls) is dict:
            f, cls = None, typing.get_args(cls)[1]
        else:
            raise ParamError(f"command line: {source}: {'.'.join(parts[:i])} has no keys below it")
    return f, cls


def _replace(obj: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    if isinstance(obj, dict):
        if rest and head not in obj:
            raise ParamError(f"command line: no entry '{head}' to set {'.'.join(rest)} of")
        return {**obj, head: _replace(obj[head], rest, value) if rest else value}
    return dataclasses.replace(obj, **{head: _replace(getattr(obj, head), rest, value) if rest else value})


# ── combinations ─────────────────────────────────────────────────────────────────────────────────
def check(params: Params, where: str) -> None:
    """Refuse values that contradict each other, naming both keys."""
    t = params.train
    if t.split.groups and not t.split.grouped:
        raise ParamError(
            f"{where}: train.split.groups {t.split.groups!r} contradicts train.split.grouped false (set it true, or"
            " pass --groups, which does)"
        )
    if t.pseudo.start > 0 and pseudo_start(t.pseudo.start, t.epochs) >= t.epochs:
        raise ParamError(
            f"{where}: train.pseudo.start {t.pseudo.start:g} of train.epochs {t.epochs} leaves no epoch to self-train"
        )
    if t.pack > 1:
        for key, on in (
            ("train.pseudo.start", t.pseudo.start > 0),
            ("train.scheduler", t.scheduler == "plateau"),
            ("train.early_stop", t.early_stop > 0),
        ):
            if on:
                raise ParamError(
                    f"{where}: train.pack {t.pack} contradicts {key} {_get(params, key)!r}: packed models would"
                    " disagree on what to do (train them one by one, or turn it off)"
                )


def pseudo_start(start: float, epochs: int) -> int:
    """The first epoch that trains on pseudo-labels (at least one epoch comes before it)."""
    return max(1, round(start * epochs))


def _get(params: Params, key: str) -> Any:
    obj: Any = params
    for part in key.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj
