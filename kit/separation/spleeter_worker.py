"""Runs inside spleeter's own venv (its pins clash with kit's): loads the 2-stem model once and
separates batches of clips on request. Standalone on purpose: imports spleeter and numpy only.

Protocol, one JSON object per line. Worker -> kit: {"ready": true} once the model is loaded.
kit -> worker: {"jobs": [[src_audio, out_npy], ...]}; worker -> kit: {"done": n} after writing
each clip's vocals as float32 (samples, 2) at 44.1 kHz, or {"error": "..."}. EOF on stdin: exit.
"""

import json
import os
import sys


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # replies; library chatter goes to stderr
    os.dup2(2, 1)
    import numpy as np
    from spleeter.audio.adapter import AudioAdapter
    from spleeter.separator import Separator

    separator = Separator("spleeter:2stems", multiprocess=False)
    adapter = AudioAdapter.default()
    separator.separate(np.zeros((44100, 2), np.float32))  # builds the graph, loads the weights
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        try:
            jobs = json.loads(line)["jobs"]
            for src, out in jobs:
                wave, _ = adapter.load(src, sample_rate=44100)
                vocals = separator.separate(wave)["vocals"].astype(np.float32)
                np.save(out, vocals)
            proto.write(json.dumps({"done": len(jobs)}) + "\n")
        except Exception as exc:  # report, keep serving: kit decides what to do
            proto.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")


if __name__ == "__main__":
    main()
