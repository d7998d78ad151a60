"""The DVC pipeline for real: `dvc repro` on tiny demo data in a temp git repo, a no-op rerun,
param changes that re-run exactly the dependent stages, and push / pull through a local remote."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(*cmd: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_params(root: Path, **changes) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(root: Path, msg: str) -> None:
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg, cwd=root)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh project: kit's dvc.yaml, .dvc/ and params.yaml, shrunk to seconds of work."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    tiny = {"epochs": 1, "batch_size": 8}
    set_params(
        root,
        **{
            "data.demo.n_train": 64,
            "ensemble.cv_folds": 2,
            "data.demo.n_test": 8,
            "features.logmel.n_mels": 32,
            "train.eval_batch_size": 32,
            "pipeline.runs": {f"r{s}": {"arch": "cnn4", "seed": s, "args": "--epochs 1"} for s in (0, 1)},
            **{f"train.{k}": v for k, v in tiny.items()},
        },
    )
    (root / ".gitignore").write_text("/data/\n/artifacts/\n")
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "remote", "modify", "local", "url", str(root.parent / "remote"), cwd=root)
    commit(root, "project")
    return root


def test_repro_builds_everything_then_is_a_no_op(project):
    out = sh("dvc", "repro", cwd=project)
    assert ran(out) == {"data", "separate", "features", "sweep", "train@r0", "train@r1", "ensemble"}
    sub = project / "submissions" / "pipeline.csv"
    assert sub.read_text().splitlines()[0] == "id,category" and len(sub.read_text().splitlines()) == 9
    check = sh("kit", "submission", "check", str(sub), cwd=project)
    assert "valid" in check
    assert "r0" in sh("kit", "registry", cwd=project) and "r1" in sh("kit", "registry", cwd=project)
    metrics = sh("dvc", "metrics", "show", cwd=project)
    assert "reports/runs/r0/metrics.json" in metrics and "submissions/pipeline.json" in metrics
    plots = sh("dvc", "plots", "show", "-o", "plots", cwd=project)
    assert (project / "plots" / "index.html").exists(), plots
    again = sh("dvc", "repro", cwd=project)
    assert ran(again) == set() and "Data and pipelines are up to date" in again
    assert "up to date" in sh("dvc", "status", cwd=project)
    commit(project, "first run")


def test_param_changes_rerun_exactly_the_dependent_stages(project):
    set_params(project, **{"pipeline.runs.r1.args": "--epochs 2"})
    assert ran(sh("dvc", "repro", cwd=project)) == {"sweep", "train@r1", "ensemble"}  # serial: the sweep does nothing
    runs = yaml.safe_load((project / "params.yaml").read_text())["pipeline"]["runs"]
    set_params(project, **{"pipeline.runs": {**runs, "r2": {"arch": "cnn4", "seed": 2, "args": "--epochs 1"}}})
    assert ran(sh("dvc", "repro", cwd=project)) == {"sweep", "train@r2", "ensemble"}
    set_params(project, **{"features.logmel.n_mels": 24})
    assert ran(sh("dvc", "repro", cwd=project)) == {"features", "sweep", "train@r0", "train@r1", "train@r2", "ensemble"}
    set_params(project, **{"ensemble.method": "stack"})
    assert ran(sh("dvc", "repro", cwd=project)) == {"ensemble"}
    set_params(project, **{"train.eval_batch_size": 16, "features.workers": 1})  # how, not what: nothing re-runs
    assert ran(sh("dvc", "repro", cwd=project)) == set()
    set_params(project, **{"train.lr": 0.003})  # the trainings only, not the features
    assert ran(sh("dvc", "repro", cwd=project)) == {"sweep", "train@r0", "train@r1", "train@r2", "ensemble"}
    assert ran(sh("dvc", "repro", cwd=project)) == set()
    commit(project, "changes")


def test_the_ray_engine_trains_new_runs_in_the_sweep_stage_and_the_train_stages_keep_them(project):
    runs = yaml.safe_load((project / "params.yaml").read_text())["pipeline"]["runs"]
    new = {
        "r3": {"arch": "cnn4", "seed": 3, "args": "--epochs 1"},
        "r4": {"arch": "cnn4", "seed": 4, "args": "--epochs 1"},
    }
    set_params(project, **{"pipeline.engine": "ray", "pipeline.runs": {**runs, **new}})
    out = sh("dvc", "repro", cwd=project)
    assert {"sweep", "train@r3", "train@r4", "ensemble"} <= ran(out)
    report = yaml.safe_load((project / "reports" / "sweep.json").read_text())
    states = {t["trial"]: t["state"] for t in report["trials"]}
    assert states["r3"] == states["r4"] == "done" and states["r0"] == "exists"  # trained by the sweep, once
    assert "run r3 already exists with these params: nothing to do" in out  # its train stage kept it
    assert ran(sh("dvc", "repro", cwd=project)) == set()
    commit(project, "ray engine")


def test_push_then_pull_in_another_clone_restores_the_registry(project, tmp_path):
    sh("dvc", "push", cwd=project)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(project), str(clone), cwd=tmp_path)
    sh("dvc", "remote", "modify", "local", "url", str(project.parent / "remote"), cwd=clone)
    sh("dvc", "pull", cwd=clone)
    sh("kit", "registry", "reindex", cwd=clone)
    table = sh("kit", "registry", cwd=clone)
    assert table == sh("kit", "registry", cwd=project)
    assert "r2" in table and (clone / "submissions" / "pipeline.csv").exists()
    assert "up to date" in sh("dvc", "status", cwd=clone)
