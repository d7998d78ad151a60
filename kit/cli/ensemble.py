"""`kit ensemble`: combine registered runs into a submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console
from kit.config import load_params, override


def ensemble(
    top: Annotated[
        Optional[int], typer.Option(help="Combine the best N comparable runs (params: ensemble.top).")
    ] = None,
    method: Annotated[
        Optional[str], typer.Option(help="mean | weighted | hillclimb | stack (params: ensemble.method).")
    ] = None,
    runs: Annotated[Optional[str], typer.Option("--runs", help="Exactly these run ids, comma-separated.")] = None,
    geometric: Annotated[
        Optional[bool], typer.Option("--geometric/--arithmetic", help="Blend geometric means.")
    ] = None,
    bagging: Annotated[Optional[int], typer.Option(help="hillclimb: bags of half the members.")] = None,
    n_init: Annotated[Optional[int], typer.Option(help="hillclimb: start from the best N.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Submission name (params: ensemble.name).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Submissions folder (params: ensemble.out).")] = None,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (params: train.runs).")] = None,
) -> None:
    """Weighted or meta-learned ensemble of registered runs, written as submissions/<name>.csv + .json."""
    from kit.ensemble.build import build

    params = load_params()
    p = override(
        params.ensemble,
        top=top,
        method=method,
        geometric=geometric,
        bagging=bagging,
        n_init=n_init,
        name=name,
        out=out,
    )
    train = override(params.train, runs=runs_dir)
    built = build(p, train, run_ids=[r.strip() for r in runs.split(",") if r.strip()] if runs else None)
    render(built)


def render(built) -> None:
    r, m = built.result, built.manifest
    table = Table(title=f"{m['method']} ensemble of {len(m['members'])} run(s) (split {m['split_id']})")
    for col in ("member", "arch", "weight", "val accuracy", "val macro-F1", "val log-loss"):
        table.add_column(col, justify="left" if col in ("member", "arch") else "right")
    for mem in m["members"]:
        weight = "-" if mem["weight"] is None else f"{mem['weight']:.3f}"
        table.add_row(
            mem["run"],
            mem["arch"],
            weight,
            f"{mem['accuracy']:.4f}",
            f"{mem['macro_f1']:.4f}",
            f"{mem['log_loss']:.4f}",
        )
    best = m["best_member"]
    table.add_section()
    table.add_row(
        "best single member", "", "", f"{best['accuracy']:.4f}", f"{best['macro_f1']:.4f}", f"{best['log_loss']:.4f}"
    )
    table.add_row(
        "ensemble (honest estimate)",
        "",
        "",
        f"{r.estimate['accuracy']:.4f}",
        f"{r.estimate['macro_f1']:.4f}",
        f"{r.estimate['log_loss']:.4f}",
        style="bold",
    )
    table.add_row(
        "ensemble (in-sample, optimistic)",
        "",
        "",
        f"{r.in_sample['accuracy']:.4f}",
        f"{r.in_sample['macro_f1']:.4f}",
        f"{r.in_sample['log_loss']:.4f}",
        style="dim",
    )
    console.print(table)
    if r.method != "mean":
        how = "songs (groups) kept whole" if r.details["grouped"] else "rows shuffled"
        console.print(f"honest estimate: {r.details['cv_folds']}-fold cross-validation on the validation rows, {how}")
    for run_id, why in built.members.skipped:
        console.print(f"[yellow]skipped {run_id}: {why}[/]", highlight=False)
    console.print(f"[green]✓[/] wrote {built.csv} and {built.csv.with_suffix('.json')}")
