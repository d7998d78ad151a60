"""Rich rendering shared by the command modules: console, progress bars, errors."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Off a terminal (CI logs, pipes) rich would wrap at 80 columns and split one-line messages.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


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
    """A rich progress bar; yields a `Bar` (callable as `advance(n)`)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("•"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield Bar(progress, progress.add_task(description, total=total or None))
