"""`kit features`: the feature store for train and test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kit.cli.options import with_params
from kit.cli.ui import console, progress_bar, status
from kit.params import Params


@with_params("features")
def features(
    params: Params,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if the store is up to date.")] = False,
) -> None:
    """Compute the front-end for every clip and write the feature store (skipped when up to date)."""
    from kit.data.layout import load_dataset
    from kit.features.extract import build, plan

    f = params.features
    ds = load_dataset(Path(params.data.root), params.data.num_classes, params.data.groups)
    with status("hashing inputs…"):
        p = plan(ds, f, Path(f.out), Path(params.separate.out))
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
