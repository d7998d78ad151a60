"""`kit separate`: vocal stems for the front-end; `kit separate setup spleeter`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kit.cli.options import with_params
from kit.cli.ui import console, progress_bar, status
from kit.params import Params, load_params

app = typer.Typer(help="Separate vocals from the mix before the front-end.", invoke_without_command=True)


@app.callback()
@with_params("separate")
def separate(
    params: Params,
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Separate again even if the stems are up to date.")] = False,
) -> None:
    """Write the vocal stem of every clip at the front-end's sample rate (skipped when up to date)."""
    if ctx.invoked_subcommand is not None:
        return
    from kit.data.layout import load_dataset
    from kit.separation.stems import build, plan, write_none

    s = params.separate
    if s.backend == "none":
        write_none(Path(s.out))
        console.print(f"separate.backend is none: {s.out} holds no stems (features.input must be mix)")
        return
    f = params.features
    ds = load_dataset(Path(params.data.root), params.data.num_classes)
    with status(f"checking {s.backend} and hashing inputs…"):
        p = plan(ds, s, f.sr, f.duration, Path(s.out))
    if p.up_to_date and not force:
        console.print(f"[green]✓[/] {p.out} is up to date (stems hash {p.stems_hash}): nothing to do")
        return
    with progress_bar(f"separate ({s.backend})", p.clips) as advance:
        seconds = build(p, advance)
    console.print(
        f"{p.clips} clips separated with {s.backend} in {seconds:.1f} s ({p.clips / seconds:.1f} clips/s) "
        f"→ {p.out} at {f.sr} Hz, stems hash {p.stems_hash}"
    )


@app.command()
def setup(backend: Annotated[str, typer.Argument(help="The backend whose environment to create: spleeter.")]) -> None:
    """Create a backend's own environment (spleeter: a Python 3.11 venv with spleeter 2.4.2)."""
    from kit.errors import KitError
    from kit.separation import spleeter

    if backend != "spleeter":
        raise KitError(f"setup: only spleeter has its own environment, not {backend!r}")
    python = spleeter.setup(load_params().separate.spleeter, console.print)
    console.print(f"[green]✓[/] {python}")
