"""`kit params`: the parameters in effect, and their generated reference (docs/params.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from kit.cli.ui import console
from kit.errors import KitError

app = typer.Typer(help="Parameters: what is in effect, and their reference.", no_args_is_help=True)


@app.command()
def show(
    key: Annotated[Optional[str], typer.Argument(help="A section or dotted key (default: everything).")] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("-S", "--set", help="Apply key=value first, as a command would.")
    ] = None,
) -> None:
    """Print params.yaml as validated, with -S overrides applied, as YAML."""
    import yaml

    from kit.params import apply, load_params, parse_set
    from kit.params.load import locate

    params = apply(load_params(), [parse_set(item) for item in set_ or []])
    value = dataclasses.asdict(params)
    if key:
        locate(key, key)  # an unknown key: one line naming the known ones
        for part in key.split("."):
            value = value[part]
    typer.echo(yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip())


@app.command()
def docs(
    out: Annotated[Path, typer.Option(help="Where to write the reference.")] = Path("docs/params.md"),
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether the file is up to date (exit 1 if not).")
    ] = False,
) -> None:
    """Write the parameter reference generated from the schema (docs/params.md)."""
    from kit.atomic import atomic_write
    from kit.params.docs import render

    text = render()
    if check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            raise KitError(f"{out} is stale: run `kit params docs` to regenerate it from kit/params/schema.py")
        console.print(f"[green]✓[/] {out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text.encode())
    console.print(f"[green]✓[/] wrote {out}")
