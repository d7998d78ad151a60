"""`kit train ARCH`: one model, recorded as a run in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.options import with_params
from kit.cli.ui import console, progress_bar, score_cells, status
from kit.errors import Interrupted, KitError
from kit.params import Params
from kit.params.load import check_name


@with_params("train", args=("train.arch",))
def train(
    params: Params,
    name: Annotated[
        Optional[str],
        typer.Option(help="Run id (default: arch-seed-hash of the params; with --pack: NAME-s<seed> each)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run of that id.")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Replace a run of that id only when its params differ (pipelines).")
    ] = False,
    report: Annotated[
        Optional[Path], typer.Option(help="Also write DVC metrics / plots files (metrics.json, history, confusion).")
    ] = None,
) -> None:
    """Train one model; the run (weights, validation score, predictions) lands in the registry."""
    from kit.training.run import Callbacks
    from kit.training.run import train as run_train

    p = params.train
    if name:
        check_name(name, "--name")  # before any work: a run id is one folder name
    if report is not None and p.pack > 1:
        raise KitError(f"--report writes one run's files: it does not combine with train.pack = {p.pack}")

    with progress_bar(f"train {p.arch}" + (f" x {p.pack}" if p.pack > 1 else ""), 0) as bar:
        last: list[str] = []  # the newest checkpoint: where an interrupted run resumes

        def on_epoch(k: int, records: list[dict]) -> None:
            last[:] = [f"{_where(k, records[0]).strip()} epoch {records[0]['epoch']}"]
            if len(records) > 1:
                return pack_line(k, records)
            r = records[0]
            val = ""
            if "val_accuracy" in r:
                val = f"  val acc {r['val_accuracy']:.4f}  F1 {r['val_macro_f1']:.4f}  log-loss {r['val_log_loss']:.4f}"
            console.print(
                f"{_where(k, r)}  epoch {r['epoch']:>3}  loss {r['train_loss']:.4f}{val}  lr {r['lr']:.2e}"
                + (f"  pseudo {r['pseudo_labels']}" if "pseudo_labels" in r else "")
                + f"  {r['seconds']:.1f}s",
                highlight=False,
            )

        replace = "always" if force else "stale" if refresh else "never"
        try:
            outcome = run_train(
                p, name=name, replace=replace, cb=Callbacks(start=bar.total, batch=bar.advance, epoch=on_epoch)
            )
        except KeyboardInterrupt:
            kept = f"the {last[0]} checkpoint is kept" if last else "no epoch had finished"
            raise Interrupted(f"interrupted: {kept}; run the same command to resume") from None
    ids = ", ".join(run.id for run in outcome.runs)
    if not outcome.trained:
        what = f"run {ids} already exists" if len(outcome.runs) == 1 else f"runs {ids} already exist"
        console.print(f"[green]✓[/] {what} with these params: nothing to do")
    elif any(outcome.resumed_from.values()):
        done = ", ".join(
            f"{'refit' if k == outcome.refit_fold else f'fold {k}'}: {n} epochs"
            for k, n in outcome.resumed_from.items()
            if n
        )
        console.print(f"resumed from checkpoints ({done})")
    if outcome.kept:
        console.print(f"{', '.join(outcome.kept)} already existed with these params: kept as they were")
    if report is not None:
        from kit.registry.report import write_report

        write_report(outcome.runs[0], report)
    if len(outcome.runs) == 1:
        render_run(outcome.runs[0])
    else:
        render_pack(outcome.runs)


def _where(k: int, record: dict) -> str:
    """The console label of an epoch: its fold, or the refit (every train clip, no validation)."""
    return f"fold {k}" if "val_accuracy" in record else "refit "


def pack_line(k: int, records: list[dict]) -> None:
    """One console line for an epoch of several packed models."""
    loss = sum(r["train_loss"] for r in records) / len(records)
    r = records[0]
    val = ""
    if "val_accuracy" in r:
        acc = [r["val_accuracy"] for r in records]
        val = f"  val acc mean {sum(acc) / len(acc):.4f} ({min(acc):.4f}–{max(acc):.4f})"
    console.print(
        f"{_where(k, r)}  epoch {r['epoch']:>3}  {len(records)} models  loss {loss:.4f}{val}  lr {r['lr']:.2e}  {r['seconds']:.1f}s",
        highlight=False,
    )


def render_pack(runs) -> None:
    table = Table(title=f"{len(runs)} runs trained at once, packed in one model")
    for col in ("run", "seed", "split", "accuracy", "macro-F1", "log-loss", "best epoch", "wall s", "device"):
        table.add_column(col)
    for run in runs:
        m = run.meta
        table.add_row(
            run.id,
            str(m["seed"]),
            m["split_id"],
            *score_cells(m["metrics"]),
            ",".join(map(str, m["best_epoch"])),
            f"{m['wall_seconds']:.0f}",
            m["device"],
        )
    console.print(table)


def render_run(run) -> None:
    m = run.meta
    table = Table(title=f"run {run.id}")
    for col in ("arch", "split", "accuracy", "macro-F1", "log-loss", "best epoch", "wall s", "device"):
        table.add_column(col)
    table.add_row(
        m["arch"],
        m["split_id"],
        *score_cells(m["metrics"]),
        ",".join(map(str, m["best_epoch"])),
        f"{m['wall_seconds']:.0f}",
        m["device"],
    )
    console.print(table)
    if "refit" in m:
        console.print(
            f"test predictions from the refit: {m['refit']['epochs']} epochs on all {m['refit']['clips']} train clips"
        )
    absent = [str(c) for c, row in zip(m["classes"], m["confusion"]) if sum(row) == 0]
    if absent:
        console.print(
            f"warning: the validation clips hold no class {', '.join(absent)}: the scores and what was chosen on them"
            " (best epoch, voice weight) cannot see it; with few groups use --folds K",
            style="yellow",
            highlight=False,
        )
    if m.get("left_out"):
        console.print(
            f"grouped by {m['split'].get('groups') or 'the store groups'}: clips whose members straddle the split"
            f" left out (per fold: {', '.join(map(str, m['left_out']))})",
            highlight=False,
        )
    if "voice" in m:
        v = m["voice"]
        console.print(
            f"validation accuracy: network {v['network']['accuracy']:.4f}, voice head {v['head']['accuracy']:.4f}"
            f" (C {', '.join(f'{c:g}' for c in v['c'].values())}), the run ({1 - v['weight']:g} : {v['weight']:g}{', auto' if 'auto' in v else ''})"
            f" {m['metrics']['accuracy']:.4f}",
            highlight=False,
        )
    cm = Table(title="validation confusion (rows: true, columns: predicted)")
    cm.add_column("")
    for c in m["classes"]:
        cm.add_column(str(c), justify="right")
    for c, row in zip(m["classes"], m["confusion"]):
        cm.add_row(str(c), *map(str, row))
    console.print(cm)


@with_params("train", only=("train.features", "train.runs", "train.device"))
def predict(
    params: Params,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    tta: Annotated[int, typer.Option(help="Average over this many circular time shifts of each clip.")] = 4,
) -> None:
    """Re-predict with a run's weights and test-time augmentation; registers <run>-tta<N>."""
    from kit.device import resolve_device
    from kit.features.store import FeatureStore
    from kit.registry import runs as registry
    from kit.training.predict import tta_run

    p = params.train
    run = registry.find(Path(p.runs), run_id)
    with status(f"predicting {run.id} with {tta} time shifts…"):
        path = tta_run(run, FeatureStore.open(p.features), tta, resolve_device(p.device))
    new = registry.read_run(path)
    console.print(f"validation accuracy {run.meta['metrics']['accuracy']:.4f} → {new.metrics['accuracy']:.4f} with TTA")
    render_run(new)
