"""`kit data demo | download | check`."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console, progress_bar, status
from kit.errors import KitError
from kit.params import load_params

app = typer.Typer(help="Get and validate datasets.", no_args_is_help=True)


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option(help="Where to write it (params: data.root).")] = None,
    n_train: Annotated[Optional[int], typer.Option(help="Train clips (params: data.demo.n_train).")] = None,
    n_test: Annotated[Optional[int], typer.Option(help="Test clips (params: data.demo.n_test).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (params: data.demo.seed).")] = None,
) -> None:
    """Write the built-in synthetic dataset (contest layout, offline, deterministic)."""
    from kit.data.demo import make_demo

    p = load_params().data
    out = out or Path(p.root)
    n_train = p.demo.n_train if n_train is None else n_train
    n_test = p.demo.n_test if n_test is None else n_test
    with progress_bar("demo clips", n_train + n_test) as advance:
        summary = make_demo(
            out, n_train=n_train, n_test=n_test, seed=p.demo.seed if seed is None else seed, progress=advance
        )
    table = Table(title=f"demo dataset → {summary.out}")
    table.add_column("split")
    table.add_column("clips", justify="right")
    for k in range(4):
        table.add_column(f"class {k}", justify="right")
    for split, counts in summary.class_counts.items():
        table.add_row(split, str(sum(counts)), *map(str, counts))
    console.print(table)
    console.print(f"written in {summary.seconds:.1f} s")


@app.command()
def download(
    competition: Annotated[Optional[str], typer.Option(help="Kaggle slug (params: data.competition).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to put it (params: data.root).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace data already at --out.")] = False,
) -> None:
    """Download a competition's data with the Kaggle API, extract it safely, detect its layout."""
    from kit.data.download import download_competition
    from kit.data.layout import load_dataset

    p = load_params().data
    slug = competition or p.competition
    if not slug:
        raise KitError("no competition slug: set data.competition in params.yaml, or pass --competition SLUG")
    with status(f"downloading {slug} from Kaggle…"):
        root = download_competition(slug, out or Path(p.root), force=force)
    ds = load_dataset(root, p.num_classes)
    counts = ", ".join(f"{len(v)} {k}" for k, v in ds.splits.items())
    console.print(f"[green]✓[/] {slug} → {root}: {ds.layout} layout, {counts} clips, {ds.num_classes} classes")
    if ds.problems:
        console.print(f"[yellow]{len(ds.problems)} problem(s): run `kit data check {root}`")


@app.command()
def fetch(force: Annotated[bool, typer.Option("--force", help="Replace data already at data.root.")] = False) -> None:
    """Put the dataset params.yaml names at data.root: the demo, the Kaggle download or a copy of data.path."""
    p = load_params().data
    if p.source == "demo":
        return demo()
    if p.source == "kaggle":
        return download(force=force)
    from kit.data.layout import load_dataset
    from kit.data.paths import copy_dataset

    if not p.path:
        raise KitError("params.yaml: data.source is path, but data.path is empty: set it to a dataset folder")
    with status(f"copying {p.path} → {p.root}…"):
        files = copy_dataset(Path(p.path), Path(p.root))
    ds = load_dataset(Path(p.root), p.num_classes)
    counts = ", ".join(f"{len(v)} {k}" for k, v in ds.splits.items())
    console.print(f"[green]✓[/] {p.path} → {p.root}: {files} files, {ds.layout} layout, {counts} clips")


@app.command()
def check(
    path: Annotated[Optional[Path], typer.Argument(help="Dataset folder or manifest CSV (params: data.root).")] = None,
) -> None:
    """Validate a dataset: counts, class histogram, audio statistics and every problem found."""
    from kit.data.check import check as run_check
    from kit.data.layout import load_dataset

    params = load_params()
    f = params.features
    ds = load_dataset(path or Path(params.data.root), params.data.num_classes, params.data.groups)
    total = sum(len(v) for v in ds.splits.values())
    with progress_bar("decoding", total) as advance:
        report = run_check(ds, sr=f.sr, duration=f.duration, workers=f.workers, progress=advance)
    _render(report)
    if not report.ok:
        raise typer.Exit(1)


def _render(report) -> None:
    ds = report.dataset
    table = Table(title=f"{ds.root} — {ds.layout} layout, {ds.modality}, {ds.num_classes} classes")
    for col in (
        "split",
        "clips",
        "per class",
        "duration s (min/median/max)",
        "sample rate" if ds.modality == "audio" else "size",
        "channels" if ds.modality == "audio" else "mode",
    ):
        table.add_column(col)
    for split, s in report.splits.items():
        hist = (
            " ".join(f"{ds.classes[k]}:{n}" for k, n in enumerate(s.classes)) if s.classes is not None else "unlabelled"
        )
        dur = f"{min(s.seconds):.2f} / {statistics.median(s.seconds):.2f} / {max(s.seconds):.2f}" if s.seconds else "-"
        table.add_row(split, str(s.clips), hist, dur, _counter(s.rates), _counter(s.channels))
    console.print(table)
    for note in report.notes:
        console.print(f"[cyan]note:[/] {note}")
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    if report.ok:
        console.print("[green]✓ no problems found[/]")
    else:
        console.print(f"[bold red]{len(report.problems)} problem(s) found in {ds.root}[/]")


def _counter(c) -> str:
    return ", ".join(f"{k}×{n}" for k, n in c.most_common(4)) + (" …" if len(c) > 4 else "")
