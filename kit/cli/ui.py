"""Rich rendering shared by the command modules: console, progress bars, errors."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _width(stream) -> int | None:
    """Off a terminal (CI logs, pipes) rich would wrap at 80 columns and split one-line messages."""
    return None if stream.isatty() or os.environ.get("COLUMNS") else 160


class _ResultConsole(Console):
    """stdout: results (tables, final lines, --json). Its `status` spinners go to stderr, so
    `kit ... | other` and `kit ... > file` receive results only."""

    def status(self, *args, **kwargs):
        return err_console.status(*args, **kwargs)


console = _ResultConsole(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))  # errors, warnings, progress bars, spinners
status = err_console.status  # `with status("working…"):` a spinner on stderr


def score_cells(s: dict) -> tuple[str, str, str]:
    """Accuracy, macro-F1 and log-loss as table cells."""
    return f"{s['accuracy']:.4f}", f"{s['macro_f1']:.4f}", f"{s['log_loss']:.4f}"


class Bar:
    """Handle on a running progress bar: `advance(n)`, and `total(n)` once it is known."""

    def __init__(self, progress: Progress, task):
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def total(self, n: int) -> None:
        self._progress.update(self._task, total=n)

    __call__ = advance


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Bar]:
    """A rich progress bar on stderr; yields a `Bar` (callable as `advance(n)`)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("•"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    # Lines printed on stdout meanwhile go above the bar where both share a terminal, else to stdout.
    with Progress(*columns, console=err_console, transient=False, redirect_stdout=sys.stdout.isatty()) as progress:
        yield Bar(progress, progress.add_task(description, total=total or None))
