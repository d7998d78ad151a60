"""`kit registry`: ranked runs; `show`, `rm`, `best`, `reindex`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console, err_console, score_cells
from kit.params import load_params

app = typer.Typer(help="List, inspect and manage registered runs.", invoke_without_command=True)

RunsOpt = Annotated[Optional[Path], typer.Option("--runs", help="Runs folder (params: train.runs).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the ranked runs as JSON (stdout), no table.")]


def _runs_dir(ctx: typer.Context, runs: Path | None) -> Path:
    """The runs folder: the subcommand's --runs, else the group's (`kit registry --runs DIR rm ID`), else params."""
    return runs or (ctx.obj or {}).get("runs") or Path(load_params().train.runs)


def _metric(metric: str) -> str:
    from kit.metrics import HIGHER_IS_BETTER

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
    as_json: JsonOpt = False,
) -> None:
    """Runs ranked by validation score (best first)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"runs": runs}
        return
    from kit.registry import runs as registry

    runs_dir = _runs_dir(ctx, runs)
    found = registry.ranked(runs_dir, _metric(metric), arch=arch, split=split, feature_hash=feature_hash)
    _warn_broken(found.broken)
    rows = [{"rank": i, **r.summary()} for i, r in enumerate(found.runs[:limit], 1)]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    console.print(ranked_table(rows, f"{len(found.runs)} run(s) in {runs_dir}, ranked by validation {metric}"))


def ranked_table(rows: list[dict], title: str) -> Table:
    """The ranked runs as `kit registry` shows them (rows: `Run.summary()` with a rank)."""
    table = Table(title=title)
    for col in ("#", "run", "arch", "inputs", "voice", "accuracy", "macro-F1", "log-loss"):
        table.add_column(col, justify="left" if col in ("run", "arch", "inputs") else "right")
    for col in ("split", "features", "epochs", "wall s", "created"):
        table.add_column(col, justify="right" if col == "wall s" else "left")
    for row in rows:
        table.add_row(
            str(row["rank"]),
            row["id"],
            row["arch"],
            row["inputs"],
            row["voice"],
            *score_cells(row["metrics"]),
            row["split_id"],
            row["feature_hash"][:8],
            ",".join(map(str, row["epochs_run"])),
            f"{row['wall_seconds']:.0f}",
            row["created"][:16],
        )
    return table


def _warn_broken(broken: list[tuple[str, str]]) -> None:
    for name, why in broken:
        err_console.print(f"[yellow]broken run folder {name}: {why}[/]", highlight=False)


@app.command()
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    runs: RunsOpt = None,
) -> None:
    """Everything recorded about one run."""
    from kit.cli.train import render_run
    from kit.registry import runs as registry

    run = registry.find(_runs_dir(ctx, runs), run_id)
    render_run(run)
    console.print_json(json.dumps({k: run.meta[k] for k in ("params", "git", "feature_hash", "features", "created")}))
    console.print(f"folder: {run.path}")


@app.command()
def rm(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    runs: RunsOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
) -> None:
    """Delete a run folder (asks first unless --yes)."""
    from kit.registry import runs as registry

    runs_dir = _runs_dir(ctx, runs)
    if not yes:
        typer.confirm(f"delete run {run_id} from {runs_dir}?", abort=True, err=True)
    removed = registry.remove(runs_dir, run_id)
    console.print(f"removed run {removed} from {runs_dir}")


@app.command()
def best(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option(help="accuracy | macro_f1 | log_loss.")] = "accuracy",
    arch: Annotated[Optional[str], typer.Option(help="Only this architecture.")] = None,
    runs: RunsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON, not its id.")] = False,
) -> None:
    """Print the id of the best run (for scripts: stdout holds the id alone)."""
    from kit.registry import runs as registry

    run = registry.best(_runs_dir(ctx, runs), _metric(metric), arch=arch)
    typer.echo(json.dumps(run.summary(), indent=1) if as_json else run.id)


@app.command()
def reindex(ctx: typer.Context, runs: RunsOpt = None) -> None:
    """Rebuild the registry index from the run folders."""
    from kit.registry import runs as registry

    runs_dir = _runs_dir(ctx, runs)
    found = registry.reindex(runs_dir)
    console.print(f"indexed {len(found.runs)} run(s) from {runs_dir} → {registry.index_path(runs_dir)}")
    _warn_broken(found.broken)
