"""Content digests of a dataset: what every derived store (stems, features) depends on."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kit.data.layout import Dataset


def dataset_fingerprint(dataset: Dataset, workers: int) -> dict:
    """Per split: (id, label, blake2b of the file's bytes) for every clip."""
    with ThreadPoolExecutor(workers) as pool:
        return {
            split: list(
                zip([c.id for c in items], [c.label for c in items], pool.map(file_digest, [c.path for c in items]))
            )
            for split, items in dataset.splits.items()
        }


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()[:32]


def digest(obj) -> str:
    """sha256 of the canonical JSON of `obj`."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
