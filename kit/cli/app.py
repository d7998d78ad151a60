"""The `kit` command: sub-apps joined here; commands only parse, delegate and render."""

from __future__ import annotations

from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from kit.cli import data, ensemble, features, models, params, registry, separate, submission, sweep, train
from kit.errors import KitError


class KitGroup(TyperGroup):
    """Turns a KitError anywhere below into one line on stderr and its exit status (1; 2 for parameters)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            from kit.cli.ui import err_console

            err_console.print(
                "interrupted: what was finished is kept, nothing half-written; run the same command to go on"
            )
            raise typer.Exit(130) from None
        except KitError as exc:
            _error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            from kit.atomic import disk_full

            if not disk_full(exc):
                raise
            where = f" while writing {exc.filename}" if getattr(exc, "filename", None) else ""
            _error(f"no space left on the device{where}: free some space and rerun")
            raise typer.Exit(1) from None


def _error(message: str) -> None:
    from rich.markup import escape

    from kit.cli.ui import err_console

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


app = typer.Typer(
    name="kit",
    cls=KitGroup,
    help="From raw contest audio to a ranked Kaggle submission, reproducibly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from kit import __version__

        typer.echo(f"kit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print kit's version and exit."),
    ] = None,
) -> None:
    """From raw contest audio to a ranked Kaggle submission, reproducibly."""


app.add_typer(data.app, name="data")
app.add_typer(separate.app, name="separate")
app.command("features")(features.features)
app.command("models")(models.models)
app.command("train")(train.train)
app.command("predict")(train.predict)
app.command("sweep")(sweep.sweep)
app.add_typer(registry.app, name="registry")
app.command("ensemble")(ensemble.ensemble)
app.add_typer(submission.app, name="submission")
app.add_typer(params.app, name="params")
app.command("score")(submission.score)
app.command("submit")(submission.submit)
app.command("submissions")(submission.submissions)


def main() -> None:
    import os
    import sys
    import warnings

    if not sys.warnoptions:  # -W or PYTHONWARNINGS: the user asked to see them
        # libraries' warnings (deprecations, audio back-ends) are not kit's words; kit says its own on
        # stderr. The processes kit starts (decoding workers, Ray, spleeter's venv) inherit this.
        warnings.simplefilter("ignore")
        os.environ["PYTHONWARNINGS"] = "ignore"
    app()
