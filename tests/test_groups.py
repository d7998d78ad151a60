"""Grouped validation by any column of a manifest (train.split.groups FILE:COLUMN): singers or songs
kept on one side, duets included."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from stores import tiny_store
from typer.testing import CliRunner

from kit.cli.app import app
from kit.errors import KitError
from kit.params import SplitParams
from kit.training.splits import make_split, members, split_groups

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "16", "--sum-mix", "0", "--filter-db", "0", "--mixup-alpha", "0"]
SINGERS = ["ann", "bob", "cat", "dan", "eve", "fay"]


def singers(n: int) -> list[str]:
    """Each clip's singers: mostly one, every fifth a duet of neighbours in SINGERS (every way of
    dealing 6 singers to 3 folds splits some pair), every seventh none (no voice)."""
    out = []
    for i in range(n):
        one = SINGERS[i % len(SINGERS)]
        out.append("" if i % 7 == 0 else f"{one}+{SINGERS[(i + 1) % len(SINGERS)]}" if i % 5 == 0 else one)
    return out


def names(groups: list[str], rows) -> set[str]:
    return {m for i in rows for m in members(np.asarray(groups))[i] if not m.startswith("\0")}


@pytest.mark.parametrize("kind", ["kfold", "holdout"])
def test_no_singer_is_heard_on_both_sides_and_straddling_duets_are_left_out(kind):
    labels = np.arange(120) % 4
    groups = singers(120)
    p = SplitParams(kind=kind, folds=3, fraction=1 / 3, grouped=True, groups="m.csv:singers")
    split = make_split(labels, p, groups)
    assert len(split.folds) == (3 if kind == "kfold" else 1) and "-grouped-" in split.id
    for k, (t, v) in enumerate(split.folds):
        assert not names(groups, t) & names(groups, v) and len(v) > 0
        rest = set(range(120)) - set(t) - set(v)
        assert all(names(groups, [i]) & names(groups, v) and names(groups, [i]) - names(groups, v) for i in rest)
        assert split.left_out[k] == len(rest) > 0  # duets of a held-out and a training singer
        assert {i for i in range(120) if groups[i] == ""} & set(v)  # no-voice clips are validated too
    if kind == "kfold":
        index = split.val_index()
        assert len(index) == len(set(index)) == sum(len(v) for _, v in split.folds) < 120
    assert make_split(labels, p, groups).id == split.id  # deterministic
    assert (
        make_split(labels, SplitParams(**{**p.__dict__, "seed": 1}), groups).folds[0][1].tolist()
        != split.folds[0][1].tolist()
    )


def test_fewer_singers_than_folds_is_one_line():
    with pytest.raises(KitError, match=r"train.split.groups: the groups name .* fewer than the 5 folds"):
        make_split(np.arange(40) % 2, SplitParams(kind="kfold", folds=5, grouped=True), ["a+b", "c"] * 20)


def _manifest(path, ids, column="singers", values=None):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "id", column])
        for i in range(3):
            w.writerow(["test", str(i), "zed"])  # test rows share ids with train rows: never read
        for i, value in zip(ids, values or singers(len(ids))):
            w.writerow(["train", i, value])
    return path


def test_groups_from_a_manifest_column_match_train_rows_by_id_and_refuse_bad_input(tmp_path):
    ids = [str(i) for i in range(10)]
    m = _manifest(tmp_path / "m.csv", ids)
    p = SplitParams(grouped=True, groups=f"{m}:singers")
    assert split_groups(p, ids, None) == singers(10)
    assert split_groups(SplitParams(grouped=True), ids, ["s"] * 10) == ["s"] * 10  # "": the store's
    assert split_groups(SplitParams(), ids, ["s"] * 10) is None
    for spec, why in [
        ("m.csv", "expected FILE:COLUMN"),
        (f"{tmp_path}/none.csv:singers", "none.csv: no such file"),
        (f"{m}:song", r"needs columns id and song \(it has split, id, singers\)"),
    ]:
        with pytest.raises(KitError, match=why):
            split_groups(SplitParams(grouped=True, groups=spec), ids, None)
    with pytest.raises(KitError, match=r"has no row for 1 train clip\(s\) \(first: id 10\)"):
        split_groups(p, [*ids, "10"], None)
    (tmp_path / "latin.csv").write_bytes("id,singers\n0,Jos\xe9\n".encode("latin-1"))
    with pytest.raises(KitError, match="latin.csv line 2: not UTF-8 text"):
        split_groups(SplitParams(grouped=True, groups=f"{tmp_path}/latin.csv:singers"), ["0"], None)


def test_kit_train_groups_validation_by_a_manifest_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_store(tmp_path / "data" / "features", n=90)
    groups = singers(90)
    _manifest(tmp_path / "manifest.csv", [str(i) for i in range(90)])
    bare = runner.invoke(app, ["train", "cnn4", *FAST, "-S", "train.split.groups=manifest.csv:singers"])
    assert bare.exit_code == 2 and "contradicts train.split.grouped false" in " ".join(bare.output.split())
    args = ["train", "cnn4", *FAST, "--groups", "manifest.csv:singers", "--voice-weight", "0"]
    result = runner.invoke(app, [*args, "--holdout", "0.25", "--name", "g"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "artifacts" / "runs" / "g" / "run.json").read_text())
    val = np.load(tmp_path / "artifacts" / "runs" / "g" / "val_index.npy")
    assert "-grouped-" in meta["split_id"] and meta["split"]["groups"] == "manifest.csv:singers"
    straddle = [i for i in set(range(90)) - set(val) if names(groups, [i]) & names(groups, val)]
    assert meta["left_out"] == [len(straddle)] and all(names(groups, [i]) - names(groups, val) for i in straddle)
    assert f"left out (per fold: {len(straddle)})" in " ".join(result.output.split())
    assert "warning: the validation clips hold no class" not in result.output
    kfold = runner.invoke(app, [*args, "--folds", "3", "--name", "k"])
    assert kfold.exit_code == 0, kfold.output
    run = tmp_path / "artifacts" / "runs" / "k"
    index = np.load(run / "val_index.npy")
    assert len(index) == len(set(index)) == len(np.load(run / "val_probs.npy")) < 90  # straddling duets: in no fold
    tta = runner.invoke(app, ["predict", "k", "--tta", "1"])  # the folds rebuilt from the manifest
    assert tta.exit_code == 0, tta.output
    assert np.allclose(np.load(run.parent / "k-tta1" / "val_probs.npy"), np.load(run / "val_probs.npy"), atol=1e-5)


def test_a_grouped_validation_without_some_class_is_pointed_out(tmp_path, monkeypatch):
    """Six singers who each sing one class: a third of them holds at most two of the three classes."""
    monkeypatch.chdir(tmp_path)
    store = tiny_store(tmp_path / "data" / "features", n=90)
    labels = json.loads((store / "meta.json").read_text())["splits"]["train"]["labels"]
    values = [f"s{y}-{i % 2}" for i, y in enumerate(labels)]
    _manifest(tmp_path / "manifest.csv", [str(i) for i in range(90)], values=values)
    args = ["train", "cnn4", *FAST, "--groups", "manifest.csv:singers", "--holdout", "0.333", "--voice-weight", "0"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "warning: the validation clips hold no class" in " ".join(result.output.split())
    assert "with few groups use --folds K" in " ".join(result.output.split())


def test_a_subset_store_re_splits_train_clips_without_extracting_again(tmp_path):
    from kit.features.store import FeatureStore, subset

    full = FeatureStore.open(tiny_store(tmp_path / "full", n=30, voice=True, groups=True))
    part = subset(full, tmp_path / "part", {"train": np.arange(0, 20), "test": np.arange(20, 30)})
    assert np.array_equal(part.array("train"), full.array("train")[:20])
    assert np.array_equal(part.voice("test"), full.voice("train")[20:])
    assert part.ids("test") == full.ids("train")[20:] and part.labels("test") is None  # unlabelled, as a contest's
    assert part.labels("train").tolist() == full.labels("train")[:20].tolist()
    assert part.meta["splits"]["train"]["groups"] == full.meta["splits"]["train"]["groups"][:20]
    assert part.feature_hash != full.feature_hash and part.meta["subset_of"] == full.feature_hash
    other = subset(full, tmp_path / "other", {"train": np.arange(10, 30), "test": np.arange(0, 10)})
    assert other.feature_hash != part.feature_hash  # runs on two re-splits never compare
