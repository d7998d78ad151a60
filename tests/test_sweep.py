"""`kit sweep` on real Ray: a local Ray kit starts itself, and a simulated two-node cluster."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from stores import tiny_store
from typer.testing import CliRunner

from kit.cli.app import app

runner = CliRunner()
TRAIN = "train:\n  epochs: 3\n  batch_size: 16\n  voice: {weight: 0.0}\n  augment: {sum_mix: 0.0, filter_db: 0.0}\n"


def _project(root: Path, runs: dict[str, str]) -> Path:
    tiny_store(root / "data" / "features", n=90)
    lines = "".join(
        f'    {name}: {{arch: cnn4, seed: {i}, args: "{args}"}}\n' for i, (name, args) in enumerate(runs.items())
    )
    (root / "params.yaml").write_text(TRAIN + "pipeline:\n  runs:\n" + lines)
    return root


def test_pipeline_runs_land_and_rank_a_bad_one_fails_alone_and_a_rerun_schedules_nothing(tmp_path, monkeypatch):
    import ray

    monkeypatch.chdir(_project(tmp_path, {"a": "--lr 0.01", "b": "--lr 0.02", "c": "--epochs 2", "bad": "--lr -1"}))
    monkeypatch.setenv("KIT_SWEEP_ROOT", str(tmp_path / "nodes"))
    first = runner.invoke(app, ["sweep", "--cpus-per-run", "1"], env={"COLUMNS": "250"})
    assert first.exit_code == 1, first.output  # the bad trial
    assert "failed: bad: command line: --lr (train.lr): must be > 0, got -1.0" in first.stderr
    assert not ray.is_initialized()  # kit started its own Ray, and stopped it
    runs = tmp_path / "artifacts" / "runs"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["a", "b", "c"]
    listing = runner.invoke(app, ["registry", "--json"])
    assert sorted(r["id"] for r in json.loads(listing.stdout)) == ["a", "b", "c"]
    meta = json.loads((runs / "a" / "run.json").read_text())
    assert meta["features"] == "data/features" and meta["params"]["lr"] == 0.01  # the driver's store, not a node's
    by_hand = runner.invoke(app, ["train", "cnn4", "--seed", "0", "--lr", "0.01", "--name", "a"])
    assert "run a already exists with these params: nothing to do" in by_hand.output  # the same key
    landed = {p.name: p.stat().st_mtime_ns for p in runs.glob("*/run.json")}
    again = runner.invoke(app, ["sweep"], env={"COLUMNS": "250"})
    assert again.exit_code == 1 and "exists" in again.stderr and "running" not in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*/run.json")} == landed  # nothing trained again
    assert not ray.is_initialized()  # nothing to schedule: Ray was not started


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two simulated nodes of one CPU each, each with its own local folder (nothing shared)."""
    import ray
    from ray.cluster_utils import Cluster

    roots = [tmp_path_factory.mktemp(f"node{i}") for i in range(2)]
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "env_vars": {"KIT_SWEEP_ROOT": str(roots[0])}})
    c.add_node(num_cpus=1, env_vars={"KIT_SWEEP_ROOT": str(roots[1])})
    c.roots = roots
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield c
    ray.shutdown()
    c.shutdown()


def _sweep(params_yaml: Path, runs_dir: Path, on_update=lambda states: None):
    from kit.cli.sweep import _trials
    from kit.params import load_params
    from kit.sweep.driver import plan, run

    params = load_params(params_yaml)
    states = plan(list(_trials(params, [], None)))
    run(states, params.sweep, runs_dir, lambda: on_update(states))
    return states


def test_on_two_nodes_runs_land_whole_and_a_killed_worker_is_retried_to_the_same_run(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path, {"a": "--lr 0.01", "b": "--lr 0.02", "c": "--epochs 30"}))
    states = _sweep(tmp_path / "params.yaml", tmp_path / "whole")
    assert [s.state for s in states] == ["done"] * 3 and len({s.node for s in states}) == 2  # both nodes worked
    for root in cluster.roots:  # each node fetched the store into its own folder, from the object store
        assert [p.name for p in (root / "stores").iterdir()] == ["tiny0000abcdef12"]
    killed = []

    def kill_c_once(states):
        c = next(s for s in states if s.trial.label == "c")
        if not killed and c.pid and c.epoch:  # it has trained an epoch: its checkpoint is on disk
            os.kill(c.pid, signal.SIGKILL)
            killed.append(c.pid)

    states = _sweep(tmp_path / "params.yaml", tmp_path / "killed", kill_c_once)
    c = next(s for s in states if s.trial.label == "c")
    assert killed and c.state == "done" and c.tries == 2, (killed, c)
    for name in ("val_probs.npy", "test_probs.npy"):
        assert np.load(tmp_path / "whole" / "c" / name).tobytes() == np.load(tmp_path / "killed" / "c" / name).tobytes()


def test_a_grid_times_seeds_makes_one_trial_per_point_and_a_bad_value_fails_alone(tmp_path, monkeypatch):
    from kit.cli.sweep import _trials
    from kit.params import load_params
    from kit.sweep.driver import plan

    monkeypatch.chdir(_project(tmp_path, {"a": ""}))
    params = load_params(tmp_path / "params.yaml")
    trials = list(_trials(params, ["train.lr=0.01,-1", "train.arch=cnn4,cnn4f"], 2))
    assert len(trials) == 8 and trials[0].label == "lr=0.01 arch=cnn4 seed=0"
    good = [t for t in trials if not t.error]
    assert {(t.params.lr, t.params.arch, t.params.seed) for t in good} == {
        (0.01, a, s) for a in ("cnn4", "cnn4f") for s in (0, 1)
    }
    assert all(t.params.epochs == 3 for t in good)  # params.yaml's train section, as `kit train` reads it
    bad = [t for t in trials if t.error]
    assert len(bad) == 4 and bad[0].error == "command line: -S train.lr: must be > 0, got -1.0"
    states = plan(trials + trials[:1])  # the same run twice is one trial
    assert [s.state for s in states].count("queued") == 4 and [s.state for s in states].count("failed") == 4
