"""`kit train ARCH`: one model, recorded as a run in the registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kit.cli.ui import console, progress_bar, score_cells
from kit.config import load_params, override
from kit.errors import KitError


def train(
    arch: Annotated[
        Optional[str], typer.Argument(help="Zoo entry or timm:<name> (see `kit models`) (params: train.arch).")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adamw | sgd.")] = None,
    scheduler: Annotated[
        Optional[str], typer.Option(help="onecycle | cosine_restarts | plateau | multistep | none.")
    ] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing.")] = None,
    drop_rate: Annotated[Optional[float], typer.Option(help="Dropout before the head.")] = None,
    stem: Annotated[Optional[str], typer.Option(help="default | seed (3x3 stride-1 first conv, no max-pool).")] = None,
    pretrained: Annotated[Optional[str], typer.Option(help="true, or a local weights file.")] = None,
    balance: Annotated[Optional[str], typer.Option(help="none | weights | sampler.")] = None,
    mixup_alpha: Annotated[Optional[float], typer.Option(help="Mixup Beta(alpha, alpha); 0 = off.")] = None,
    mixup_epochs: Annotated[Optional[float], typer.Option(help="Fraction of epochs with mixup.")] = None,
    sum_mix: Annotated[
        Optional[float], typer.Option(help="Share of each batch summed with another clip (labels: sum_labels).")
    ] = None,
    sum_partner: Annotated[Optional[str], typer.Option(help="Sum mixing adds the partner's: clip | vocals.")] = None,
    filter_db: Annotated[Optional[float], typer.Option(help="Random EQ within ± this many dB; 0 = off.")] = None,
    freq_shift: Annotated[
        Optional[int], typer.Option(help="Shift along frequency by up to ± this many bins (logfreq: pitch); 0 = off.")
    ] = None,
    early_stop: Annotated[Optional[int], typer.Option(help="Patience in epochs; 0 = off.")] = None,
    keep: Annotated[Optional[str], typer.Option(help="Weights to keep: best (validation) or last epoch.")] = None,
    ema_epochs: Annotated[
        Optional[float], typer.Option(help="Moving average of the weights over ~this many epochs; 0 = off.")
    ] = None,
    pseudo_start: Annotated[
        Optional[float],
        typer.Option(help="Self-training from this fraction of the epochs on (validation / test audio); 0 = off."),
    ] = None,
    pseudo_threshold: Annotated[
        Optional[float], typer.Option(help="Self-training: least top-class probability for a pseudo-label.")
    ] = None,
    voice_weight: Annotated[
        Optional[float],
        typer.Option(help="The voice head's share of the run's probabilities (store voice embeddings); 0 = off."),
    ] = None,
    voice_c: Annotated[
        Optional[float], typer.Option(help="The voice head's inverse L2 strength; 0 = cross-validated.")
    ] = None,
    folds: Annotated[Optional[int], typer.Option(help="Stratified K-fold with K folds (OOF predictions).")] = None,
    holdout: Annotated[Optional[float], typer.Option(help="Stratified holdout with this validation fraction.")] = None,
    grouped: Annotated[Optional[bool], typer.Option("--grouped/--no-grouped", help="Keep groups on one side.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    compile: Annotated[
        Optional[bool],
        typer.Option(
            "--compile/--no-compile", help="torch.compile the model (on CUDA: steps replayed as CUDA graphs)."
        ),
    ] = None,
    precision: Annotated[
        Optional[str], typer.Option(help="auto | fp32 | bf16 (auto: bf16 on CUDA and CPUs with native bf16).")
    ] = None,
    channels: Annotated[
        Optional[str],
        typer.Option(help="The store's channels the model sees, comma-separated, e.g. mix:logfreq,vocals:logfreq."),
    ] = None,
    refit: Annotated[
        Optional[bool],
        typer.Option(
            "--refit/--no-refit",
            help="After the holdout, train on every train clip for the same epochs; it predicts the test clips.",
        ),
    ] = None,
    stack: Annotated[
        Optional[int],
        typer.Option(help="Train seeds seed..seed+N-1 at once as one wider model (GPU); N runs."),
    ] = None,
    features: Annotated[Optional[Path], typer.Option(help="Feature store (params: train.features).")] = None,
    runs: Annotated[Optional[Path], typer.Option(help="Runs folder (params: train.runs).")] = None,
    name: Annotated[
        Optional[str],
        typer.Option(help="Run id (default: arch-seed-hash of the params; with --stack: NAME-s<seed> each)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run of that id.")] = False,
    report: Annotated[
        Optional[Path], typer.Option(help="Also write DVC metrics / plots files (metrics.json, history, confusion).")
    ] = None,
) -> None:
    """Train one model; the run (weights, validation score, predictions) lands in the registry."""
    from kit.training.run import Callbacks
    from kit.training.run import train as run_train

    p = load_params().train
    if pretrained is not None:
        pretrained = {"true": True, "false": False}.get(pretrained.lower(), pretrained)
    p = override(
        p,
        arch=arch,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimizer=optimizer,
        scheduler=scheduler,
        label_smoothing=label_smoothing,
        drop_rate=drop_rate,
        stem=stem,
        pretrained=pretrained,
        balance=balance,
        early_stop=early_stop,
        keep=keep,
        ema_epochs=ema_epochs,
        device=device,
        compile=compile,
        precision=precision,
        refit=refit,
        channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None,
        stack=stack,
        features=features,
        runs=runs,
    )
    kind = "kfold" if folds is not None else "holdout" if holdout is not None else None
    split = override(p.split, kind=kind, folds=folds, fraction=holdout, grouped=grouped)
    p = dataclasses.replace(
        p,
        split=split,
        augment=override(
            p.augment,
            mixup_alpha=mixup_alpha,
            mixup_epochs=mixup_epochs,
            sum_mix=sum_mix,
            sum_partner=sum_partner,
            filter_db=filter_db,
            freq_shift=freq_shift,
        ),
        pseudo=override(p.pseudo, start=pseudo_start, threshold=pseudo_threshold),
        voice=override(p.voice, weight=voice_weight, c=voice_c),
    )

    if report is not None and p.stack > 1:
        raise KitError(f"--report writes one run's files: it does not combine with train.stack = {p.stack}")

    with progress_bar(f"train {p.arch}" + (f" x {p.stack}" if p.stack > 1 else ""), 0) as bar:

        def on_epoch(k: int, records: list[dict]) -> None:
            if len(records) > 1:
                return stack_line(k, records)
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

        outcome = run_train(p, name=name, force=force, cb=Callbacks(start=bar.total, batch=bar.advance, epoch=on_epoch))
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
        render_stack(outcome.runs)


def _where(k: int, record: dict) -> str:
    """The console label of an epoch: its fold, or the refit (every train clip, no validation)."""
    return f"fold {k}" if "val_accuracy" in record else "refit "


def stack_line(k: int, records: list[dict]) -> None:
    """One console line for an epoch of several stacked models."""
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


def render_stack(runs) -> None:
    table = Table(title=f"{len(runs)} runs trained at once as one stack")
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
    if "voice" in m:
        v = m["voice"]
        console.print(
            f"validation accuracy: network {v['network']['accuracy']:.4f}, voice head {v['head']['accuracy']:.4f}"
            f" (C {', '.join(f'{c:g}' for c in v['c'].values())}), the run ({1 - v['weight']:g} : {v['weight']:g})"
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


def predict(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    tta: Annotated[int, typer.Option(help="Average over this many circular time shifts of each clip.")] = 4,
    features: Annotated[Optional[Path], typer.Option(help="Feature store (params: train.features).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
) -> None:
    """Re-predict with a run's weights and test-time augmentation; registers <run>-tta<N>."""
    from kit.features.store import FeatureStore
    from kit.registry import runs as registry
    from kit.training.predict import tta_run
    from kit.training.run import resolve_device

    p = override(load_params().train, features=features, device=device)
    run = registry.find(Path(p.runs), run_id)
    with console.status(f"predicting {run.id} with {tta} time shifts…"):
        path = tta_run(run, FeatureStore.open(p.features), tta, resolve_device(p.device))
    new = registry.read_run(path)
    console.print(f"validation accuracy {run.meta['metrics']['accuracy']:.4f} → {new.metrics['accuracy']:.4f} with TTA")
    render_run(new)
