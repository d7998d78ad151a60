"""`kit models`: the zoo, with parameter counts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kit.cli.ui import console


def models(
    num_classes: Annotated[int, typer.Option(help="Classes, for the head's size.")] = 4,
) -> None:
    """List the model zoo (any timm model also works as timm:<name>)."""
    import torch

    from kit.models import create_model, describe, list_models

    table = Table(title="model zoo (1-channel input)")
    for col in ("name", "parameters", "description"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for name in list_models():
        with torch.device("meta"):
            n = sum(p.numel() for p in create_model(name, num_classes=num_classes).parameters())
        table.add_row(name, f"{n / 1e6:.2f} M", describe(name))
    console.print(table)
    console.print("any timm model: timm:<name>, e.g. `kit train timm:efficientnet_b0`")
