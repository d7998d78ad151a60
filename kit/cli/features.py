"""`kit features`: the feature store for train and test."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console, progress_bar
from kit.config import load_params, override


def features(
    data: Annotated[Optional[Path], typer.Option(help="Dataset folder or manifest CSV (params: data.root).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Feature store folder (params: features.out).")] = None,
    frontend: Annotated[
        Optional[str], typer.Option(help="logmel | logfreq | fbank | logmel+logfreq (params: features.frontend).")
    ] = None,
    input: Annotated[
        Optional[str], typer.Option(help="mix | vocals | mix+vocals channels (params: features.input).")
    ] = None,
    stems: Annotated[
        Optional[Path], typer.Option(help="Vocal stems from `kit separate` (params: separate.out).")
    ] = None,
    on_error: Annotated[
        Optional[str], typer.Option(help="Undecodable clips: fail or silence (params: features.on_error).")
    ] = None,
    voice: Annotated[
        Optional[bool],
        typer.Option(
            "--voice/--no-voice", help="Also store each input's voice embedding (params: features.voice.embed)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if the store is up to date.")] = False,
) -> None:
    """Compute the front-end for every clip and write the feature store (skipped when up to date)."""
    from kit.data.layout import load_dataset
    from kit.features.extract import build, plan

    params = load_params()
    f = override(params.features, frontend=frontend, on_error=on_error, input=input)
    f = dataclasses.replace(f, voice=override(f.voice, embed=voice))
    ds = load_dataset(data or Path(params.data.root), params.data.num_classes, params.data.groups)
    with console.status("hashing inputs…"):
        p = plan(ds, f, Path(out or f.out), Path(stems or params.separate.out))
    if p.up_to_date and not force:
        console.print(f"[green]✓[/] {p.out} is up to date (feature hash {p.feature_hash}): nothing to do")
        return
    channels = "+".join(p.frontend.channels) + (" + voice embeddings" if p.frontend.voice else "")
    with progress_bar(f"features ({p.frontend.describe()['name']}, {channels})", p.clips) as advance:
        result = build(p, advance)
    store = result.store
    table = Table(title=f"feature store → {store.path}")
    v = store.meta.get("voice")
    voice = [f"{len(v['inputs'])}×{v['dim']} float32"] if v else []  # the same for every split
    for col in ("split", "clips", "shape", "dtype", "MB", *(["voice embeddings"] if v else [])):
        table.add_column(col)
    for split in store.splits:
        arr = store.array(split)
        shape = "×".join(map(str, arr.shape[1:]))
        table.add_row(split, str(arr.shape[0]), shape, str(arr.dtype), f"{arr.nbytes / 1e6:.1f}", *voice)
    console.print(table)
    console.print(
        f"{result.clips} clips in {result.seconds:.1f} s ({result.clips / result.seconds:.0f} clips/s), feature hash {store.feature_hash}"
    )
    if result.silenced:
        console.print(f"[yellow]{len(result.silenced)} undecodable clip(s) replaced by silence (listed in meta.json)")
