"""`kit sweep`: every run of pipeline.runs, or a grid over any train parameter, as Ray tasks."""

from __future__ import annotations

import dataclasses
import itertools
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from kit.cli.options import parse_argv, with_params
from kit.cli.ui import console, err_console
from kit.errors import KitError
from kit.params import Params


@with_params("sweep")
def sweep(
    params: Params,
    grid: Annotated[
        Optional[list[str]],
        typer.Option("--grid", help="A train key and its values, e.g. train.lr=0.001,0.003 (repeatable: a product)."),
    ] = None,
    seeds: Annotated[
        Optional[int], typer.Option(help="Seeds train.seed..+N-1 of the train section (for each --grid point).")
    ] = None,
    stage: Annotated[
        Optional[Path],
        typer.Option(help="As dvc.yaml's sweep stage: pipeline.runs when pipeline.engine is ray, and a report here."),
    ] = None,
) -> None:
    """Train many runs at once on Ray: pipeline.runs, or --grid / --seeds over params.yaml's train section.
    Each is exactly `kit train` (same key, same run); runs already in the registry are skipped."""
    from kit.sweep.driver import plan, run

    if stage is not None and params.pipeline.engine != "ray":
        _write_report(stage, [], params.pipeline.engine)
        console.print("pipeline.engine is serial: the pipeline's train stages train the runs one after another")
        return
    states = plan(_trials(params, grid or [], seeds, stage is not None))
    with Live(_table(states), console=err_console, refresh_per_second=2, transient=False) as live:
        run(states, params.sweep, Path(params.train.runs), lambda: live.update(_table(states)))
    if stage is not None:
        _write_report(stage, states, "ray")
    _report(states, Path(params.train.runs))


def _trials(params: Params, grid: list[str], seeds: int | None, pipeline_stage: bool = False):
    """The trials, each parsed as `kit train` parses its command line, on the sweep's params (its -S included)."""
    from kit.cli.train import train

    if not grid and seeds is None:
        entries = params.pipeline.runs.items()
        if not entries:
            raise KitError("pipeline.runs is empty: give --grid KEY=V1,V2 or --seeds N, or add runs to params.yaml")
        for label, r in entries:
            argv = [r.arch, "--seed", str(r.seed), "--name", label, *shlex.split(r.args)]
            trial = _trial(train, label, argv, params)
            yield dataclasses.replace(trial, replace="stale") if pipeline_stage else trial  # as its train@ stage
        return
    axes = [_axis(item) for item in grid]
    base = params.train.seed
    for point in itertools.product(*(values for _, values in axes), range(base, base + (seeds or 1))):
        *values, seed = point
        label = " ".join(f"{key.rsplit('.', 1)[-1]}={v}" for (key, _), v in zip(axes, values)) + f" seed={seed}"
        argv = [*(a for (key, _), v in zip(axes, values) for a in ("-S", f"{key}={v}")), "--seed", str(seed)]
        yield _trial(train, label.strip(), argv, params)


def _axis(item: str) -> tuple[str, list[str]]:
    key, sep, values = item.partition("=")
    if not sep or not key.startswith("train.") or not values:
        raise KitError(f"--grid {item!r}: expected train.KEY=V1,V2,... (e.g. train.lr=0.001,0.003)")
    return key, [v.strip() for v in values.split(",")]


def _trial(train, label: str, argv: list[str], base: Params):
    from kit.sweep.driver import Trial

    try:
        p, kw = parse_argv(train, argv, base)
    except KitError as exc:
        return Trial(label, None, error=str(exc))
    return Trial(label, p.train, kw.get("name"))


def _write_report(path: Path, states, engine: str) -> None:
    """The stage's output: what the sweep did with each pipeline run (DVC tracks this file)."""
    import json

    from kit.atomic import atomic_write

    rows = [{"trial": s.trial.label, "state": s.state, "runs": s.run_ids, "error": s.error} for s in states]
    atomic_write(path, (json.dumps({"engine": engine, "trials": rows}, indent=1) + "\n").encode())


def _table(states) -> Table:
    table = Table(title=f"kit sweep: {len(states)} trial(s)")
    for col in ("trial", "state", "epoch", "val acc", "node", "runs / error"):
        table.add_column(col, overflow="fold")
    for s in states:
        acc = f"{s.val_accuracy:.4f}" if s.val_accuracy is not None else ""
        tries = f" (start {s.tries})" if s.tries > 1 else ""
        table.add_row(s.trial.label, s.state + tries, s.epoch, acc, s.node, s.error or ", ".join(s.run_ids))
    return table


def _report(states, runs_dir: Path) -> None:
    from kit.cli.registry import ranked_table
    from kit.registry import runs as registry

    ids = {run_id for s in states if s.state in ("done", "exists") for run_id in s.run_ids}
    rows = [r.summary() for r in registry.ranked(runs_dir).runs if r.id in ids]
    rows = [{"rank": i, **row} for i, row in enumerate(rows, 1)]
    console.print(ranked_table(rows, f"{len(rows)} run(s) of this sweep, ranked by validation accuracy"))
    failed = [s for s in states if s.state == "failed"]
    for s in failed:
        err_console.print(f"[red]failed:[/] {s.trial.label}: {s.error}", highlight=False)
    if failed:
        raise typer.Exit(1)
