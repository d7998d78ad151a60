"""`kit ensemble`: combine registered runs into a submission."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.options import with_params
from kit.cli.ui import console, score_cells
from kit.params import Params


@with_params("ensemble")
def ensemble(
    params: Params,
    runs: Annotated[Optional[str], typer.Option("--runs", help="Exactly these run ids, comma-separated.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the manifest it wrote as JSON (stdout), no table.")
    ] = False,
) -> None:
    """Weighted or meta-learned ensemble of registered runs, written as submissions/<name>.csv + .json."""
    from kit.ensemble.build import build

    ids = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
    built = build(params.ensemble, params.train, run_ids=ids)
    if as_json:
        typer.echo(json.dumps(built.document(), indent=1))
        return
    render(built)


def render(built) -> None:
    r, m = built.result, built.manifest
    table = Table(title=f"{m['method']} ensemble of {len(m['members'])} run(s) (split {m['split_id']})")
    for col in ("member", "arch", "inputs", "weight", "val accuracy", "val macro-F1", "val log-loss"):
        table.add_column(col, justify="left" if col in ("member", "arch", "inputs") else "right")
    for mem in m["members"]:
        weight = "-" if mem["weight"] is None else f"{mem['weight']:.3f}"
        table.add_row(mem["run"], mem["arch"], mem["inputs"], weight, *score_cells(mem))
    table.add_section()
    for label, s, style in (
        ("best single member", m["best_member"], None),
        ("ensemble (honest estimate)", r.estimate, "bold"),
        ("ensemble (in-sample, optimistic)", r.in_sample, "dim"),
    ):
        table.add_row(label, "", "", "", *score_cells(s), style=style)
    console.print(table)
    if r.method != "mean":
        how = "songs (groups) kept whole" if r.details["grouped"] else "rows shuffled"
        console.print(f"honest estimate: {r.details['cv_folds']}-fold cross-validation on the validation rows, {how}")
    for run_id, why in built.members.skipped:
        console.print(f"[yellow]skipped {run_id}: {why}[/]", highlight=False)
    console.print(f"[green]✓[/] wrote {built.csv} and {built.csv.with_suffix('.json')}")
