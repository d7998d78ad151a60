"""`kit submission check`, `kit score`, `kit submit`, `kit submissions`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console
from kit.config import load_params
from kit.errors import KitError

app = typer.Typer(help="Check submission files.", no_args_is_help=True)

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Dataset with the test clips (params: data.root).")]


def _test_set(data: Path | None) -> tuple[list[str], int]:
    from kit.data.layout import load_dataset

    params = load_params().data
    ds = load_dataset(data or Path(params.root), params.num_classes)
    return [c.id for c in ds.splits.get("test", [])], ds.num_classes


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="Submission CSV.")], data: DataOpt = None) -> None:
    """Validate a submission against the test set (ids, header, labels)."""
    from kit.submission.files import check_submission

    ids, k = _test_set(data)
    problems = check_submission(file, ids, k)
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s) in {file}[/]")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {file} is a valid submission ({len(ids)} test ids, labels 0..{k - 1})")


def score(
    file: Annotated[Path, typer.Argument(help="Submission CSV.")],
    answers: Annotated[Path, typer.Option(help="test_label.txt (line i = label of clip i) or an id,category CSV.")],
) -> None:
    """Score a submission against known answers: accuracy, macro-F1, confusion matrix."""
    from kit.submission.files import score_submission

    s = score_submission(file, answers)
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
    from kit.submission.kaggle import submit as kaggle_submit
    from kit.submission.ledger import LEDGER

    params = load_params()
    slug = competition or params.data.competition
    if not slug:
        raise KitError("no competition slug: set data.competition in params.yaml, or pass --competition SLUG")
    file = file or _newest(Path(params.ensemble.out))
    ids, k = _test_set(data)
    with console.status(f"submitting {file} to {slug}…"):
        record = kaggle_submit(file, message or file.stem, slug, test_ids=ids, num_classes=k, ledger=LEDGER)
    console.print(f"[green]✓[/] submitted {file} to {slug} (ref {record.get('ref')}): {record.get('kaggle_message')}")
    console.print("scores appear with `kit submissions`")


def submissions(
    competition: Annotated[Optional[str], typer.Option(help="Kaggle slug (params: data.competition).")] = None,
    refresh: Annotated[bool, typer.Option("--refresh/--offline", help="Ask Kaggle for status and scores.")] = True,
    wait: Annotated[int, typer.Option(help="Poll pending submissions for up to this many seconds.")] = 0,
) -> None:
    """The ledger of submission attempts, joined with Kaggle's public / private scores."""
    from kit.submission.kaggle import refresh as kaggle_refresh
    from kit.submission.ledger import LEDGER, read_ledger

    slug = competition or load_params().data.competition
    records = read_ledger(LEDGER)
    if refresh and slug and records:
        deadline = time.monotonic() + wait
        with console.status("asking Kaggle for scores…"):
            records = kaggle_refresh(LEDGER, slug)
            # only attempts Kaggle knows (a ref) can still change: an upload interrupted before it
            # reached Kaggle stays pending without one, and waiting would not change that
            while (
                wait and any(r["status"] == "pending" and r.get("ref") for r in records) and time.monotonic() < deadline
            ):
                time.sleep(min(15, max(1, deadline - time.monotonic())))
                records = kaggle_refresh(LEDGER, slug)
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


def _newest(folder: Path) -> Path:
    csvs = sorted(folder.glob("*.csv"), key=lambda p: p.stat().st_mtime)
    if not csvs:
        raise KitError(f"no submission in {folder}/: make one with `kit ensemble`, or pass FILE")
    return csvs[-1]
