"""`kit submission check`, `kit score`, `kit submit`, `kit submissions`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console, err_console, status
from kit.errors import KitError
from kit.params import load_params

app = typer.Typer(help="Check submission files.", no_args_is_help=True)

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Dataset with the test clips (params: data.root).")]


def _data(data: Path | None) -> tuple[Path, int | None]:
    """The dataset folder and class count (params: data.root, data.num_classes)."""
    params = load_params().data
    return data or Path(params.root), params.num_classes


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="Submission CSV.")], data: DataOpt = None) -> None:
    """Validate a submission against the test set (ids, header, labels)."""
    from kit.submission.files import check_for_dataset

    found = check_for_dataset(file, *_data(data))
    for problem in found.problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    if found.problems.more():
        console.print(f"[red]problem:[/] ... and {found.problems.more():,} more", highlight=False)
    if found.problems:
        console.print(f"[bold red]{found.problems.total:,} problem(s) in {file}[/]")
        raise typer.Exit(1)
    k = found.num_classes
    console.print(f"[green]✓[/] {file} is a valid submission ({len(found.test_ids)} test ids, labels 0..{k - 1})")


def score(
    file: Annotated[Path, typer.Argument(help="Submission CSV.")],
    answers: Annotated[Path, typer.Option(help="test_label.txt (line i = label of clip i) or an id,category CSV.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON (stdout), no table.")] = False,
) -> None:
    """Score a submission against known answers: accuracy, macro-F1, confusion matrix."""
    from kit.submission.files import score_submission

    s = score_submission(file, answers)
    if as_json:
        typer.echo(json.dumps({"file": str(file), "answers": str(answers), **s}, indent=1))
        return
    console.print(f"{file}: accuracy [bold]{s['accuracy']:.4f}[/], macro-F1 {s['macro_f1']:.4f} on {s['n']} clips")
    table = Table(title="confusion (rows: true, columns: predicted)")
    table.add_column("")
    for k in range(len(s["confusion"])):
        table.add_column(str(k), justify="right")
    for k, row in enumerate(s["confusion"]):
        table.add_row(str(k), *map(str, row))
    console.print(table)


def submit(
    file: Annotated[
        Optional[Path], typer.Argument(help="Submission CSV (default: the newest in submissions/).")
    ] = None,
    message: Annotated[str, typer.Option("-m", "--message", help="Submission description.")] = "",
    competition: Annotated[Optional[str], typer.Option(help="Kaggle slug (params: data.competition).")] = None,
    data: DataOpt = None,
) -> None:
    """Validate, then submit to Kaggle; every attempt is recorded in submissions/ledger.jsonl."""
    from kit.submission.files import newest_submission
    from kit.submission.kaggle import submit_for_dataset
    from kit.submission.ledger import LEDGER

    params = load_params()
    slug = competition or params.data.competition
    if not slug:
        raise KitError("no competition slug: set data.competition in params.yaml, or pass --competition SLUG")
    file = file or newest_submission(Path(params.ensemble.out))
    root, k = _data(data)
    with status(f"submitting {file} to {slug}…"):
        record = submit_for_dataset(file, message or file.stem, slug, data=root, num_classes=k, ledger=LEDGER)
    console.print(f"[green]✓[/] submitted {file} to {slug} (ref {record.get('ref')}): {record.get('kaggle_message')}")
    console.print("scores appear with `kit submissions`")


def submissions(
    competition: Annotated[Optional[str], typer.Option(help="Kaggle slug (params: data.competition).")] = None,
    refresh: Annotated[bool, typer.Option("--refresh/--offline", help="Ask Kaggle for status and scores.")] = True,
    wait: Annotated[int, typer.Option(help="Poll pending submissions for up to this many seconds.")] = 0,
) -> None:
    """The ledger of submission attempts, joined with Kaggle's public / private scores."""
    from kit.submission.kaggle import attempts
    from kit.submission.ledger import LEDGER, torn_line

    if (torn := torn_line(LEDGER)) is not None:
        err_console.print(
            f"[yellow]{LEDGER} line {torn} was cut off by a crash mid-write: skipped (removed at the next append)[/]",
            highlight=False,
        )
    slug = (competition or load_params().data.competition) if refresh else None
    with status("asking Kaggle for scores…" if slug else "reading the ledger…"):
        records = attempts(LEDGER, slug or None, wait=wait)
    table = Table(title=f"{len(records)} submission attempt(s) ({LEDGER})")
    for col in ("time", "file", "method", "estimate", "status", "public", "private", "message"):
        table.add_column(col, justify="right" if col in ("estimate", "public", "private") else "left")
    for r in records:
        manifest = r.get("manifest") or {}
        estimate = (manifest.get("estimate") or {}).get("accuracy")
        table.add_row(
            r["time"][:16],
            Path(r["file"]).name,
            manifest.get("method") or "-",
            "-" if estimate is None else f"{estimate:.4f}",
            r["status"],
            _fmt(r.get("public_score")),
            _fmt(r.get("private_score")),
            r.get("error") or r.get("message") or "",
        )
    console.print(table)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.5f}" if isinstance(x, float) else str(x)
