"""Singer-disjoint check of kit's defaults on song4-dev: accuracy on voices training never heard.

    python bench/singers.py --data ../shared/data/song4-dev --store data/features
        [--folds 3] [--configs default,no-mixup,...] [--seeds 0,1,2] [--work bench-out/singers]
        [--tta N] [--report reports/singers.json] [--list]

song4-dev's train clips are re-split into --folds outer folds by singer (manifest.csv's `singers`
column, through `train.split.groups`' own member split: a duet is held out only with both its
singers, and a clip whose singers straddle a fold is left out of that fold). Each fold becomes a
feature store of its own (`kit.features.store.subset`, no re-extraction): train = the other
singers' clips, test = the held-out singers' clips, unlabelled as in a contest. For every
configuration (the shipped params.yaml train section plus the -S overrides in CONFIGS) and seed,
`kit.training.run.train` trains exactly as `kit train` would (its own validation split, refit,
voice head) and its test predictions are scored on the held-out singers.

Reported per configuration: accuracy on each fold, and the mean ± spread (standard deviation over
folds) of accuracy, log-loss and the share of one-voice clips (1, 2) predicted as several (3). For configurations with a voice head, also the network alone, the head
alone and the head at the old fixed weight 0.5 (each run's voice_parts.npz), and the weights auto
chose. For configurations with several seeds: the ensembles of their runs per fold (the shipped
`ensemble.method`, mean, and the best member by validation). Runs land in --work/runs and are
reused, so an interrupted bench resumes and a finished one re-reports in seconds. The
held-out singers' labels are the bench's alone: kit's runs never see them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

# name -> -S overrides of the shipped train section; "{groups}" is the manifest's singers column. The voice
# head needs no configuration of its own: its weights are re-checked from every run's voice_parts.npz.
CONFIGS = {
    "default": [],
    "grouped-val": ["train.split.grouped=true", "train.split.groups={groups}"],
    "epochs-24": ["train.epochs=24"],
    "epochs-48": ["train.epochs=48"],
    "no-mixup": ["train.augment.mixup_alpha=0"],
    "no-sum-mix": ["train.augment.sum_mix=0"],
    "no-filter": ["train.augment.filter_db=0"],
    "no-specaugment": ["train.augment.freq_masks=0", "train.augment.time_masks=0"],
    "ema": ["train.ema_epochs=2"],
    "no-refit": ["train.refit=false"],
    "mix-only": ["train.channels=[mix]"],
    "vocals-only": ["train.channels=[vocals]"],
}


def outer_folds(data: Path, store, folds: int, seed: int):
    """The singer-disjoint (train rows, held-out rows) of song4-dev's train clips."""
    from kit.params import SplitParams
    from kit.training.splits import make_split, split_groups

    p = SplitParams(kind="kfold", folds=folds, seed=seed, grouped=True, groups=f"{data / 'manifest.csv'}:singers")
    groups = split_groups(p, store.ids("train"), None)
    return make_split(store.labels("train"), p, groups), groups


def singers_of(groups, rows) -> list[str]:
    return sorted({s for i in rows for s in groups[i].replace("|", "+").split("+") if s})


def train_one(fold_store: Path, runs: Path, config: list[str], seed: int, groups_spec: str):
    from kit.params.load import apply, load_params, parse_set
    from kit.training.run import train

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    sets = [parse_set(s.replace("{groups}", groups_spec)) for s in config]
    sets += [
        parse_set(f"train.features={fold_store}"),
        parse_set(f"train.runs={runs}"),
        parse_set(f"train.seed={seed}"),
    ]
    return train(apply(params, sets).train).runs[0]


def scored(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, log-loss, and the main error on unseen singers: one voice (1, 2) heard as several (3)."""
    from kit.metrics import scores

    s = scores(probs, y)
    single = np.isin(y, (1, 2))
    several = float((probs[single].argmax(1) == 3).mean()) if single.any() else 0.0
    return {"accuracy": s["accuracy"], "log_loss": s["log_loss"], "one_as_several": several}


def run_scores(run, y: np.ndarray, tta: int, fold_store: Path) -> dict[str, dict]:
    """The run's test score; with a voice head its parts' and the old fixed 0.5 blend's; with
    tta > 1 that of `kit predict RUN --tta N` (time shifts, a run of its own)."""
    out = {"shipped": scored(np.load(run.path / "test_probs.npy"), y)}
    if tta > 1:
        import torch

        from kit.features.store import FeatureStore
        from kit.registry.runs import read_run
        from kit.training.predict import tta_run

        shifted = run.path.parent / f"{run.id}-tta{tta}"
        if not shifted.exists():
            tta_run(read_run(run.path), FeatureStore.open(fold_store), tta, torch.device("cpu"))
        out[f"tta-{tta}"] = scored(np.load(shifted / "test_probs.npy"), y)
    parts_file = run.path / "voice_parts.npz"
    if parts_file.exists():
        parts = np.load(parts_file)
        out["network"] = scored(parts["network_test"], y)
        out["head"] = scored(parts["head_test"], y)
        out["blend-0.5"] = scored(0.5 * parts["network_test"] + 0.5 * parts["head_test"], y)
        out["weight"] = run.meta["voice"]["weight"]
    return out


def ensembles(runs: list, val_y: np.ndarray, y: np.ndarray, method: str, metric: str) -> dict[str, dict]:
    """The fold's runs of one configuration combined: the shipped method, mean, best by validation."""
    from kit.ensemble.methods import combine

    val = [np.load(r.path / "val_probs.npy") for r in runs]
    test = [np.load(r.path / "test_probs.npy") for r in runs]
    best = max(range(len(runs)), key=lambda i: runs[i].meta["metrics"]["accuracy"])
    out = {"best-member": scored(test[best], y)}
    for m in dict.fromkeys([method, "mean", "hillclimb"]):
        out[f"ensemble-{m}"] = scored(combine(m, val, val_y, test, seed=0, metric=metric).test_probs, y)
    return out


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/song4-dev"))
    ap.add_argument("--store", type=Path, default=Path("data/features"), help="song4-dev's feature store")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--configs", default="default", help=f"comma-separated, of: {', '.join(CONFIGS)}; a+b applies both")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--work", type=Path, default=Path("bench-out/singers"))
    ap.add_argument("--tta", type=int, default=0, help="also score each run's `kit predict --tta N` copy")
    ap.add_argument("--report", type=Path, default=None, help="also write the table as JSON here")
    ap.add_argument("--list", action="store_true", help="only show the folds and their singers")
    args = ap.parse_args(argv)
    from kit.features.store import FeatureStore, subset
    from kit.params import EnsembleParams

    console = Console()
    store = FeatureStore.open(args.store)
    labels = store.labels("train")
    split, groups = outer_folds(args.data, store, args.folds, args.split_seed)
    for k, (t, v) in enumerate(split.folds):
        console.print(
            f"fold {k}: held out {', '.join(singers_of(groups, v))} ({len(v)} clips, labels "
            f"{np.bincount(labels[v], minlength=4).tolist()}); trains on {len(t)} clips, leaves out {split.left_out[k]}"
        )
    if args.list:
        return 0
    configs = args.configs.split(",")
    unknown = [part for c in configs for part in c.split("+") if part not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration {unknown[0]} (known: {', '.join(CONFIGS)})")
    seeds = [int(s) for s in args.seeds.split(",")]
    groups_spec = f"{args.data.resolve() / 'manifest.csv'}:singers"
    rows: dict[str, list[dict]] = {c: [] for c in configs}
    for k, (t, v) in enumerate(split.folds):
        fold_store = args.work / f"store-fold{k}"
        if not (fold_store / "meta.json").exists():
            subset(store, fold_store, {"train": t, "test": v})
    for c in configs:  # a configuration's folds one after another: an interrupted bench has whole rows
        overrides = [o for part in c.split("+") for o in CONFIGS[part]]
        for k, (_, v) in enumerate(split.folds):
            fold_store = args.work / f"store-fold{k}"
            runs = []
            for seed in seeds:
                console.print(f"fold {k}: {c}, seed {seed} …")
                run = train_one(fold_store.resolve(), (args.work / "runs").resolve(), overrides, seed, groups_spec)
                runs.append(run)
                scores = run_scores(run, labels[v], args.tta, fold_store)
                rows[c].append({"fold": k, "seed": seed, "run": run.id, **scores})
            if len(runs) > 1:
                val_y = FeatureStore.open(fold_store).labels("train")[np.load(runs[0].path / "val_index.npy")]
                ens = ensembles(runs, val_y, labels[v], EnsembleParams().method, EnsembleParams().metric)
                rows[c].append({"fold": k, "seed": "ensemble", **ens})
    report(console, rows)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(rows, indent=1))
    return 0


def report(console: Console, rows: dict[str, list[dict]]) -> None:
    table = Table(title="held-out singers: test accuracy (log-loss), mean ± spread over folds")
    for col in ("configuration", "what", "per fold", "accuracy", "log-loss", "1 voice as several"):
        table.add_column(col)
    for c, entries in rows.items():
        what = sorted({w for e in entries for w, s in e.items() if isinstance(s, dict)}, key=_order)
        for w in what:
            got = [e[w] for e in entries if w in e]
            per_fold = " ".join(f"{g['accuracy']:.3f}" for g in got)
            cells = [summary([g[m] for g in got]) for m in ("accuracy", "log_loss", "one_as_several")]
            table.add_row(c, w, per_fold, *cells)
        weights = [e["weight"] for e in entries if "weight" in e]
        if weights:
            table.add_row(c, "voice weight", " ".join(f"{w:g}" for w in weights), "", "", "")
    console.print(table)


def _order(what: str) -> tuple[int, str]:
    first = ("shipped", "network", "head", "blend-0.5", "best-member")
    return (first.index(what) if what in first else len(first), what)


if __name__ == "__main__":
    sys.exit(main())
