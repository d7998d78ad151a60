"""A command's parameter options, generated from the schema: `-S key=value` for every key the
command reads, and the flags the schema declares as aliases (`--epochs` is train.epochs).

    @with_params("train", args=("train.arch",))
    def train(params: Params, name: ..., force: ...): ...

The command receives `params` (params.yaml, then its flags and -S, validated as one) in place of
those options; bad values end as one line naming the option and key, exit status 2.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

import typer

from kit.errors import ParamError
from kit.params.identity import leaves, reads
from kit.params.load import Assignment, apply, load_params, parse_set
from kit.params.schema import READS, Params


@dataclass(frozen=True)
class Flag:
    """One schema field offered as a command-line option."""

    key: str  # dotted key, e.g. train.split.folds
    decl: str  # "--folds", or "--refit/--no-refit" for a boolean
    tp: Any  # the field's type
    meta: typing.Mapping

    @property
    def name(self) -> str:  # the Python parameter typer passes it as
        return "p_" + self.key.replace(".", "__")

    def option(self) -> inspect.Parameter:
        help = f"{self.meta['help']} (params: {self.key})"
        if self.tp is bool:
            annotation = Annotated[Optional[bool], typer.Option(self.decl, help=help, show_default=False)]
        else:
            annotation = Annotated[Optional[str], typer.Option(self.decl, help=help, metavar=_metavar(self.tp))]
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)

    def assignments(self, value: Any) -> list[Assignment]:
        source = self.decl.split("/")[0]
        if typing.get_origin(self.tp) is list:  # --channels a,b
            own = Assignment(self.key, [v.strip() for v in value.split(",") if v.strip()], source)
        else:
            own = Assignment(self.key, value, source, text=isinstance(value, str))
        parent = self.key.rsplit(".", 1)[0]
        return [own, *(Assignment(f"{parent}.{k}", v, source) for k, v in self.meta["implies"].items())]


def flags(command: str, only: tuple[str, ...] | None = None) -> list[Flag]:
    """The fields under what `command` reads (or `only` those keys) that declare a flag for it."""
    out = []
    for key, tp, f in leaves():
        if (only is not None and key not in only) or not reads(command, key):
            continue
        decl = f.metadata.get("flag")
        if isinstance(decl, dict):
            decl = decl.get(command)
        elif key.split(".")[0] != command:  # a plain flag belongs to its own section's command
            decl = None
        if decl:
            out.append(Flag(key, decl, tp, f.metadata))
    return out


def _metavar(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "[" + "|".join(map(str, typing.get_args(tp))) + "]"
    if typing.get_origin(tp) is list:
        return "A,B,..."
    return {int: "INT", float: "FLOAT"}.get(tp, "TEXT")


def with_params(command: str, *, args: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> Callable:
    """Give a command its parameter options (see the module's docstring). args: keys taken as
    optional positional arguments, in order (`kit train ARCH`)."""

    def wrap(fn: Callable) -> Callable:
        own = flags(command, only)
        hints = typing.get_type_hints(fn, include_extras=True)
        sig = inspect.signature(fn)
        kept = [p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.name != "params"]
        positional = [_argument(key) for key in args]
        set_ = inspect.Parameter(
            "set_",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Optional[list[str]],
                typer.Option("-S", "--set", help=_set_help(only or READS[command]), metavar="KEY=VALUE"),
            ],
        )
        parameters = [*positional, *kept, *(f.option() for f in own), set_]

        def resolve(kw: dict[str, Any], base: Params | None = None) -> Params:
            """params.yaml (or `base`) with the command line's values in `kw` applied (taken out of kw)."""
            assignments = [Assignment(key, kw.pop(_arg_name(key)), key.rsplit(".", 1)[-1].upper()) for key in args]
            assignments = [a for a in assignments if a.value is not None]
            for f in own:
                if (value := kw.pop(f.name)) is not None:
                    assignments += f.assignments(value)
            assignments += [parse_set(item) for item in kw.pop("set_") or []]
            return apply(base or load_params(), assignments, only or READS[command])

        @functools.wraps(fn)
        def command_fn(**kw: Any) -> Any:
            return fn(params=resolve(kw), **kw)

        command_fn.__signature__ = sig.replace(parameters=_ordered(parameters))
        command_fn.__annotations__ = {p.name: p.annotation for p in parameters}
        command_fn.resolve = resolve
        return command_fn

    return wrap


def _set_help(reads: tuple[str, ...]) -> str:
    keys = ", ".join(k if "." in k else f"{k}.*" for k in reads)
    return f"Set a parameter this command reads ({keys}) for this run: dotted key, YAML value; repeatable (docs/params.md)."


def _arg_name(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _argument(key: str) -> inspect.Parameter:
    from kit.params.load import locate

    f, _ = locate(key, key)
    help = f"{f.metadata['help']} (params: {key})"
    annotation = Annotated[Optional[str], typer.Argument(help=help, show_default=False)]
    return inspect.Parameter(
        _arg_name(key), inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation
    )


def _ordered(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Positional-or-keyword parameters first, as Python's signatures require."""
    kinds = [inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY]
    return sorted(parameters, key=lambda p: kinds.index(p.kind) if p.kind in kinds else 0)


def parse_argv(command_fn: Callable, argv: list[str], base: Params | None = None) -> tuple[Params, dict[str, Any]]:
    """What `kit <command> argv...` would run with (on `base` in place of params.yaml): its params,
    and its other options (e.g. name), for a command made by `with_params`; a bad option is
    refused as on the command line."""
    import click

    app = typer.Typer()
    app.command()(command_fn)
    cmd = typer.main.get_command(app)
    try:
        ctx = cmd.make_context(cmd.name or "kit", list(argv))
    except click.UsageError as exc:
        raise ParamError(f"command line: {' '.join(argv)}: {exc.format_message()}") from None
    kw = dict(ctx.params)
    return command_fn.resolve(kw, base), kw
