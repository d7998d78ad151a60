"""Submission CSVs: write them atomically, check them line by line, score them against answers.

Format: header `id,category`, then one `id,label` row per test clip, label an integer
class index 0..K-1. What `check_submission` accepts beyond that: a UTF-8 BOM (Excel adds one),
CRLF line ends, one final newline and CSV quoting. It refuses everything else: blank lines
(also at the end), whitespace around a field, extra or missing columns.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.atomic import atomic_write
from kit.errors import KitError
from kit.textfile import read_utf8

HEADER = ("id", "category")
_INT = re.compile(r"-?[0-9]+")


def write_submission(path: Path, ids: list[str], labels: np.ndarray, *, manifest: dict) -> Path:
    """Write `path` (`id,category`, rows in the order of `ids`) and its manifest `path.with_suffix('.json')`.

    The manifest is `manifest` plus `csv_sha256`, the hash of the CSV bytes. Each file is written
    under a temp name and renamed into place, the manifest first: a write cut short leaves the old
    pair, a manifest alone, or a CSV its manifest does not describe (`newest_submission` skips it).
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(ids) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"need one integer label per id: {len(ids)} ids, labels {labels.dtype}{labels.shape}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(zip(ids, labels.tolist()))
    data = buf.getvalue().encode()
    meta = {**manifest, "csv_sha256": hashlib.sha256(data).hexdigest()}
    atomic_write(path.with_suffix(".json"), (json.dumps(meta, indent=2, default=_plain) + "\n").encode())
    atomic_write(path, data)
    return path


def manifest_of(path: Path, digest: str | None = None) -> dict | None:
    """The manifest `write_submission` wrote beside the CSV at `path`, if it describes these CSV bytes
    (sha256 `digest`, computed when not given); None when there is none or it describes other bytes:
    a write cut short between the two files, or a CSV edited by hand."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.exists():
        return None
    try:
        manifest = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KitError(f"{sidecar}: manifest is not valid JSON ({e}); rewrite the submission") from None
    digest = digest or hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return manifest if isinstance(manifest, dict) and manifest.get("csv_sha256") == digest else None


def _plain(obj):
    """numpy scalars and arrays, as JSON can hold them."""
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"manifest value {obj!r} is not JSON-serializable")


class Problems(list):
    """The first `LIMIT` problems found (a list of one-line messages); `total` counts them all.

    A 3-million-row file of foreign ids is checked in seconds and reported in a screenful.
    """

    LIMIT = 20

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def append(self, problem: str, *, keep: bool = False) -> None:
        """Count `problem`; keep it while fewer than LIMIT are kept, or always with `keep`."""
        self.total += 1
        if keep or len(self) < self.LIMIT:
            super().append(problem)

    def more(self) -> int:
        """How many problems were counted but not kept."""
        return self.total - len(self)


@dataclass(frozen=True)
class Check:
    """What `check_for_dataset` found: the problems ([] = valid) and the test set it checked against."""

    problems: Problems
    test_ids: list[str]
    num_classes: int


def read_test_ids(data: Path, num_classes: int | None = None) -> tuple[list[str], int]:
    """The test clip ids and the number of classes of the dataset at `data` (any layout kit reads)."""
    from kit.data.layout import load_dataset

    ds = load_dataset(data, num_classes)
    return [c.id for c in ds.splits.get("test", [])], ds.num_classes


def check_for_dataset(path: Path, data: Path, num_classes: int | None = None) -> Check:
    """`check_submission` against the test clips of the dataset at `data`."""
    ids, k = read_test_ids(data, num_classes)
    return Check(check_submission(path, ids, k), ids, k)


def newest_submission(folder: Path) -> Path:
    """The most recently written CSV in `folder` that is whole: one `kit ensemble` wrote with its
    manifest, or one without a manifest (a user's). KitError when there is none."""
    cut = []
    for csv_path in sorted(Path(folder).glob("*.csv"), key=lambda p: p.stat().st_mtime, reverse=True):
        if csv_path.with_suffix(".json").exists() and manifest_of(csv_path) is None:
            cut.append(csv_path.name)  # its manifest describes other bytes: a write cut short (or an edit)
            continue
        return csv_path
    skipped = f" ({', '.join(cut)}: beside a manifest of other bytes, cut short or edited)" if cut else ""
    raise KitError(f"no submission in {folder}/{skipped}: make one with `kit ensemble`, or pass FILE")


def check_submission(path: Path, test_ids: list[str], num_classes: int | None) -> Problems:
    """The problems with the submission at `path` (the first `Problems.LIMIT`, and their `total`),
    each naming the file and line; empty = valid. `num_classes=None` accepts any label ≥ 0.
    """
    return _parse(Path(path), test_ids, num_classes)[0]


def _parse(path: Path, test_ids: list[str] | None, num_classes: int | None) -> tuple[Problems, dict[str, int]]:
    """(problems, {id: label} of the good rows). `test_ids=None` accepts any id and reports none missing."""
    problems = Problems()
    text, unreadable = _text(path)
    if unreadable:
        problems.append(unreadable)
        return problems, {}
    name = path.name
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":  # the final newline
        lines.pop()

    wanted = None if test_ids is None else set(test_ids)
    if tuple(lines[0].split(",")) != HEADER:
        hint = " (the header line is missing?)" if wanted and lines[0].split(",")[0] in wanted else ""
        problems.append(f"{name} line 1: header must be 'id,category', got {_short(lines[0])!r}{hint}")
    labels: dict[str, int] = {}
    first_line: dict[str, int] = {}
    for n, line in enumerate(lines[1:], start=2):
        where = f"{name} line {n}"
        if not line.strip():
            problems.append(f"{where}: blank line")
            continue
        fields = next(csv.reader([line])) if '"' in line else line.split(",")
        key = fields[0].strip()
        if wanted is not None and key not in wanted:
            problems.append(f"{where}: id {key!r} is not a test id")
            continue
        if key in first_line:
            problems.append(f"{where}: duplicate id {key!r} (first on line {first_line[key]})")
            continue
        first_line[key] = n
        if len(fields) != 2:
            problems.append(f"{where}: expected 2 columns (id,category), got {len(fields)}: {_short(line)!r}")
            continue
        if any(f != f.strip() for f in fields):
            problems.append(f"{where}: whitespace around a value in {line!r}")
        label = fields[1].strip()
        if not _INT.fullmatch(label):
            problems.append(f"{where}: category {_short(label)!r} is not an integer class index")
        elif int(label) < 0 or (num_classes is not None and int(label) >= num_classes):
            top = f"0..{num_classes - 1}" if num_classes is not None else "≥ 0"
            problems.append(f"{where}: category {int(label)} out of range {top}")
        else:
            labels[key] = int(label)
    if test_ids is not None:
        missing = [i for i in test_ids if i not in first_line]
        if missing:
            more = ", ..." if len(missing) > 5 else ""
            problems.append(
                f"{name}: {len(missing)} of {len(test_ids)} test ids missing (first: {', '.join(missing[:5])}{more})",
                keep=True,
            )
    return problems, labels


def _text(path: Path) -> tuple[str, str]:
    """(the file's text with a UTF-8 BOM dropped, "") or ("", why it has none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "", f"{path}: no such file"
    except OSError as e:
        return "", f"{path}: cannot read ({e.strerror or e})"
    name = path.name
    if b"\x00" in data:
        return "", f"{name}: binary file, not a CSV (it holds NUL bytes)"
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return "", f"{name} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8"
    if not text.strip():
        return "", f"{name}: empty file (expected the header 'id,category', then one row per test clip)"
    return text, ""


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def score_submission(path: Path, answers: Path, *, num_classes: int | None = None) -> dict:
    """accuracy, macro_f1, confusion (K x K, row = true class) and n of a valid submission.

    `answers` is a `test_label.txt` (line i = label of test clip i) or an `id,category` CSV.
    K is `num_classes`, or 1 + the largest label seen in the answers or the predictions.
    """
    from sklearn.metrics import f1_score

    from kit.metrics import confusion

    path, answers = Path(path), Path(answers)
    truth = _read_answers(answers)
    problems, pred = _parse(path, list(truth), num_classes)
    if problems:
        raise KitError(f"cannot score {path}: {problems[0]}{_more(problems)}")
    y_true = np.array(list(truth.values()))
    y_pred = np.array([pred[i] for i in truth])
    k = num_classes or int(max(y_true.max(), y_pred.max())) + 1
    if y_true.max() >= k:
        raise KitError(f"{answers}: label {int(y_true.max())} out of range 0..{k - 1} (num_classes={k})")
    return {
        "n": len(y_true),
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
        "confusion": confusion(y_true, y_pred, k).tolist(),
    }


def _more(problems: Problems) -> str:
    return f" (and {problems.total - 1:,} more problems)" if problems.total > 1 else ""


def _read_answers(path: Path) -> dict[str, int]:
    """{id: label} from a test_label.txt or an id,category CSV; any problem -> KitError naming the line."""
    if path.suffix.lower() == ".csv":
        problems, labels = _parse(path, None, None)
        if problems:
            raise KitError(f"answers file {problems[0]}{_more(problems)}")
    elif path.suffix.lower() == ".txt":
        labels = _label_lines(path)
    else:
        raise KitError(f"{path}: answers must be a test_label.txt (one label per line) or an id,category CSV")
    if not labels:
        raise KitError(f"{path}: no answers in the file")
    return labels


def _label_lines(path: Path) -> dict[str, int]:
    """test_label.txt: line i = label of clip i; trailing blank lines are ignored."""
    try:
        lines = read_utf8(path).splitlines()
    except FileNotFoundError:
        raise KitError(f"{path}: no such file") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = {}
    for i, line in enumerate(lines):
        if not re.fullmatch(r"[0-9]+", line.strip()):
            raise KitError(f"{path} line {i + 1}: label {_short(line)!r} is not an integer class index")
        labels[str(i)] = int(line)
    return labels
