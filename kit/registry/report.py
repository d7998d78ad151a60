"""A run's results as DVC metrics and plots: `metrics.json`, `history/*.tsv`, `confusion.json`.

The run folder is the pipeline's output, and DVC outputs cannot overlap, so the pipeline asks
`kit train --report DIR` for these small copies beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kit.atomic import atomic_dir
from kit.registry.runs import Run


def write_report(run: Run, out: Path) -> None:
    m = run.meta
    with atomic_dir(Path(out)) as tmp:
        summary = {k: m["metrics"][k] for k in ("accuracy", "macro_f1", "log_loss")}
        (tmp / "metrics.json").write_text(json.dumps({**summary, "best_epoch": m["best_epoch"]}, indent=1))
        history = run.path / "dvclive" / "plots" / "metrics"
        if history.is_dir():
            shutil.copytree(history, tmp / "history")
        classes = [str(c) for c in m["classes"]]
        pairs = [
            {"actual": classes[i], "predicted": classes[j]}
            for i, row in enumerate(m["confusion"])
            for j, n in enumerate(row)
            for _ in range(n)
        ]
        (tmp / "confusion.json").write_text(json.dumps(pairs))
