"""`kit registry`: ranked runs; `show`, `rm`, `best`, `reindex`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console, err_console, score_cells
from kit.config import load_params

app = typer.Typer(help="List, inspect and manage registered runs.", invoke_without_command=True)

RunsOpt = Annotated[Optional[Path], typer.Option("--runs", help="Runs folder (params: train.runs).")]


def _runs_dir(runs: Path | None) -> Path:
    return runs or Path(load_params().train.runs)


def _metric(metric: str) -> str:
    from kit.training.metrics import HIGHER_IS_BETTER

    if metric not in HIGHER_IS_BETTER:
        raise typer.BadParameter(f"expected one of {', '.join(HIGHER_IS_BETTER)}", param_hint="--metric")
    return metric


@app.callback()
def listing(
    ctx: typer.Context,
    arch: Annotated[Optional[str], typer.Option(help="Only this architecture.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only runs whose split id starts with this.")] = None,
    feature_hash: Annotated[Optional[str], typer.Option(help="Only runs on this feature hash (prefix).")] = None,
    metric: Annotated[str, typer.Option(help="accuracy | macro_f1 | log_loss.")] = "accuracy",
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50,
    runs: RunsOpt = None,
) -> None:
    """Runs ranked by validation score (best first)."""
    if ctx.invoked_subcommand is not None:
        return
    from kit.registry import runs as registry

    runs_dir = _runs_dir(runs)
    found = registry.load(runs_dir)
    ranked = registry.rank(found.runs, _metric(metric), arch=arch, split=split, feature_hash=feature_hash)
    table = Table(title=f"{len(ranked)} run(s) in {runs_dir}, ranked by validation {metric}")
    for col in (
        "#",
        "run",
        "arch",
        "inputs",
        "accuracy",
        "macro-F1",
        "log-loss",
        "split",
        "features",
        "epochs",
        "wall s",
        "created",
    ):
        table.add_column(col, justify="right" if col in ("#", "accuracy", "macro-F1", "log-loss", "wall s") else "left")
    for i, r in enumerate(ranked[:limit], 1):
        m = r.meta
        table.add_row(
            str(i),
            r.id,
            m["arch"],
            r.inputs,
            *score_cells(m["metrics"]),
            m["split_id"],
            m["feature_hash"][:8],
            ",".join(map(str, m["epochs_run"])),
            f"{m['wall_seconds']:.0f}",
            m["created"][:16],
        )
    console.print(table)
    for name, why in found.broken:
        err_console.print(f"[yellow]broken run folder {name}: {why}[/]", highlight=False)


@app.command()
def show(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")], runs: RunsOpt = None) -> None:
    """Everything recorded about one run."""
    from kit.cli.train import render_run
    from kit.registry import runs as registry

    run = registry.find(_runs_dir(runs), run_id)
    render_run(run)
    console.print_json(json.dumps({k: run.meta[k] for k in ("params", "git", "feature_hash", "features", "created")}))
    console.print(f"folder: {run.path}")


@app.command()
def rm(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")], runs: RunsOpt = None) -> None:
    """Delete a run folder."""
    from kit.registry import runs as registry

    removed = registry.remove(_runs_dir(runs), run_id)
    console.print(f"removed run {removed}")


@app.command()
def best(
    metric: Annotated[str, typer.Option(help="accuracy | macro_f1 | log_loss.")] = "accuracy",
    arch: Annotated[Optional[str], typer.Option(help="Only this architecture.")] = None,
    runs: RunsOpt = None,
) -> None:
    """Print the id of the best run (for scripts)."""
    from kit.errors import KitError
    from kit.registry import runs as registry

    ranked = registry.rank(registry.load(_runs_dir(runs)).runs, _metric(metric), arch=arch)
    if not ranked:
        raise KitError(f"no runs in {_runs_dir(runs)} (train one with `kit train`)")
    print(ranked[0].id)


@app.command()
def reindex(runs: RunsOpt = None) -> None:
    """Rebuild the registry index from the run folders."""
    from kit.registry import runs as registry

    runs_dir = _runs_dir(runs)
    found = registry.reindex(runs_dir)
    console.print(f"indexed {len(found.runs)} run(s) from {runs_dir} → {registry.index_path(runs_dir)}")
    for name, why in found.broken:
        err_console.print(f"[yellow]broken run folder {name}: {why}[/]", highlight=False)
