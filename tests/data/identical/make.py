"""Regenerate tests/test_training_identical.py's references (run from the repo root):

    python tests/data/identical/make.py

The committed ones were made by the training code of kit at git commit a1e5d6b (which gives 9fcd2da's
bytes: that was the version before the training loop was rewritten as named steps over a state
object) on the demo store that this version's `kit separate` + `kit features` build: the batched
dsp separation moves stems by float32 rounding, and a store that moves changes every float after.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from test_training_identical import CONFIGS, demo_store, environment, train_cli  # noqa: E402

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        store = demo_store(Path(tmp))
        for name, args in CONFIGS.items():
            for kind, probs in train_cli(store, Path(tmp) / name, args).items():
                np.save(HERE / f"{name}.{kind}.npy", probs)
    (HERE / "env.json").write_text(json.dumps(environment(), indent=1) + "\n")
