"""Dataset layouts: detect, read and index a dataset without decoding any clip.

Three layouts, any number of classes:
- contest: `train_mp3s/{i}.mp3`, `test_mp3s/{i}.mp3`, `train_label.txt` (line i = label of
  clip i), `sample_submission.csv` (`id,category`), optional `test_label.txt`. wav / flac / ogg
  clips work too.
- manifest: a CSV with columns `path,label[,group][,split][,id]` (paths relative to the CSV);
  rows without a label, or with split=test, are test clips. Labels are integers, or class
  names (sorted to indices).
- images: `train/<class>/*.png|jpg` and optional `test/*.png|jpg` (ready-made spectrograms).

Any layout can take its train clips' groups (song, speaker, recording) from a separate CSV,
`id,group` (`data.groups`), so that grouped splits keep a song on one side.

Reading never stops at the first problem: every structural problem is collected (with the
file and line) so `kit data check` can list them all; later stages refuse a dataset that has any.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kit.data.audio import AUDIO_EXTS
from kit.errors import InputError, KitError
from kit.textfile import read_utf8

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Clip:
    id: str
    path: Path
    label: int | None = None
    group: str | None = None


@dataclass
class Dataset:
    root: Path
    layout: Literal["contest", "manifest", "images"]
    modality: Literal["audio", "image"]
    splits: dict[str, list[Clip]]
    classes: list[str]
    problems: list[str] = field(default_factory=list)
    test_labels: dict[str, int] | None = None  # contest test_label.txt, for local scoring only

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def check_out(self, out: Path, marker: str, what: str) -> None:
        """Refuse an output folder that overlaps the clips, or whose replacement would destroy
        something other than an earlier output (one holding `marker`)."""
        target, data = Path(out).resolve(), self.root.resolve()
        if self.layout == "manifest":  # the CSV may sit at a project root: only its clips matter
            overlap = any(c.path.resolve().is_relative_to(target) for items in self.splits.values() for c in items)
        else:
            overlap = data.is_relative_to(target) or target.is_relative_to(data)
        if overlap:
            raise KitError(f"--out {out} overlaps the dataset at {self.root}: choose a folder outside it")
        if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / marker).exists())):
            raise KitError(f"--out {out} exists and is not {what}: refusing to replace it; choose another folder")

    def require_clean(self) -> None:
        """Refuse a dataset with problems: one line naming the first, and how many more."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise InputError(f"{self.root}: {self.problems[0]}{more}; run `kit data check {self.root}`")


def load_dataset(path: str | Path, num_classes: int | None = None, groups: str | Path | None = None) -> Dataset:
    """Detect the layout at `path` and index it; `groups`: an `id,group` CSV for the train clips.
    Not a dataset -> KitError."""
    dataset = _detect(Path(path), num_classes)
    if groups:
        _apply_groups(dataset, Path(groups))
    return dataset


def _detect(path: Path, num_classes: int | None) -> Dataset:
    if not path.exists():
        raise KitError(f"{path}: no such file or directory (run `kit data demo` or `kit data download`)")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return _manifest(path, num_classes)
        raise KitError(f"{path}: not a dataset folder or manifest CSV")
    if _audio_dir(path, "train") is not None or (path / "train_label.txt").exists():
        return _contest(path, num_classes)
    if (path / "manifest.csv").exists():
        return _manifest(path / "manifest.csv", num_classes)
    if (path / "train").is_dir():
        return _images(path, num_classes)
    raise KitError(
        f"{path}: no dataset found: expected train_mp3s/ + train_label.txt (contest layout), "
        "manifest.csv (path,label[,group]) or train/<class>/*.png (images)"
    )


def _apply_groups(dataset: Dataset, csv_path: Path) -> None:
    """Give every train clip its group from `csv_path` (`id,group`); problems name the line."""
    if not csv_path.is_file():
        raise KitError(f"data.groups: {csv_path}: no such file (an id,group CSV for the train clips)")
    if any(c.group for c in dataset.splits.get("train", [])):
        raise KitError(f"data.groups: {csv_path} given, but {dataset.root} already has a group column: use one")
    name, problems = csv_path.name, dataset.problems
    rows = _csv_rows(csv_path, ("id", "group"), "data.groups needs columns id,group")
    train = {c.id: c for c in dataset.splits.get("train", [])}
    group_of: dict[str, str] = {}
    listed: set[str] = set()
    for row, lineno in rows:
        clip_id = row["id"]
        if dataset.layout == "contest" and re.fullmatch(r"\d+", clip_id):
            clip_id = str(int(clip_id))
        if clip_id not in train:
            problems.append(f"{name} line {lineno}: id {clip_id!r} is not a train clip")
        elif clip_id in listed:
            problems.append(f"{name} line {lineno}: duplicate id {clip_id!r}")
        elif not row["group"]:
            problems.append(f"{name} line {lineno}: empty group for id {clip_id!r}")
        else:
            group_of[clip_id] = row["group"]
        listed.add(clip_id)
    missing = [i for i in train if i not in listed]
    if missing:
        problems.append(f"{name}: {len(missing)} train clip(s) without a group (first: id {missing[0]})")
    dataset.splits["train"] = [Clip(c.id, c.path, c.label, group_of.get(c.id)) for c in train.values()]


def _csv_rows(csv_path: Path, required: tuple[str, ...], need: str) -> list[tuple[dict[str, str], int]]:
    """(stripped row, line number) for every data row; a header without `required` -> KitError(`need`)."""
    reader = csv.DictReader(io.StringIO(read_utf8(csv_path), newline=""))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if any(c not in cols for c in required):
        raise KitError(f"{csv_path} line 1: {need}; got {cols}")
    return [({k.strip(): (v or "").strip() for k, v in r.items() if k}, n) for n, r in enumerate(reader, 2)]


# --- contest layout ---------------------------------------------------------------------------


def _audio_dir(root: Path, split: str) -> Path | None:
    for name in (f"{split}_mp3s", f"{split}_audio", f"{split}_wavs", f"{split}_flacs"):
        if (root / name).is_dir():
            return root / name
    return None


def _contest(root: Path, num_classes: int | None) -> Dataset:
    problems: list[str] = []
    splits: dict[str, list[Clip]] = {}
    labels: dict[str, dict[str, tuple[str, str]]] = {}
    for split in SPLITS:
        folder = _audio_dir(root, split)
        files = _id_files(folder, root, problems) if folder else {}
        if folder is None:
            if split == "train":
                problems.append("train_mp3s/ is missing")
            else:
                problems.append("test_mp3s/ is missing")
        label_file = root / f"{split}_label.txt"
        if label_file.exists():
            labels[split] = _label_lines(label_file)
            _match(files, labels[split], folder, label_file, root, problems)
        elif split == "train":
            problems.append("train_label.txt is missing")
        if split == "test":
            _match_submission(root, files, folder, problems)
        splits[split] = [Clip(i, p) for i, p in _sorted_ids(files)]
    classes, train_labels = _int_labels(labels.get("train", {}), num_classes, problems)
    test_labels = None
    if "test" in labels:
        test_labels = _int_labels(labels["test"], len(classes), problems)[1]
    splits["train"] = [Clip(c.id, c.path, train_labels.get(c.id)) for c in splits["train"] if c.id in train_labels]
    return Dataset(root, "contest", "audio", splits, classes, problems, test_labels)


def _id_files(folder: Path, root: Path, problems: list[str]) -> dict[str, Path]:
    """Integer-named audio files by id; reports non-integer names and duplicate ids."""
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        rel = p.relative_to(root)
        if not p.exists():
            problems.append(_dangling(p, rel))
            continue
        if p.suffix.lower() not in AUDIO_EXTS:
            problems.append(f"{rel}: not an audio file ({', '.join(AUDIO_EXTS)})")
            continue
        if not re.fullmatch(r"\d+", p.stem):
            problems.append(f"{rel}: name is not an integer id")
            continue
        key = str(int(p.stem))
        if key in files:
            problems.append(f"{folder.name}/: duplicate id {key} ({files[key].name}, {p.name})")
            continue
        files[key] = p
    return files


def _label_lines(path: Path) -> dict[str, tuple[str, str]]:
    """{clip id: (label text, "file line n")}: line i labels clip i; trailing blank lines ignored."""
    lines = read_utf8(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return {str(i): (line.strip(), f"{path.name} line {i + 1}") for i, line in enumerate(lines)}


def _match(files, labels, folder, label_file, root, problems) -> None:
    name = folder.name if folder else "clips"
    if len(labels) != len(files):
        problems.append(f"{label_file.name} has {len(labels)} labels but {name}/ has {len(files)} clips")
    for i in labels:
        if i not in files:
            problems.append(f"{name}/{i}.*: missing ({label_file.name} line {int(i) + 1} labels it)")
    for i in files:
        if i not in labels:
            problems.append(f"{files[i].relative_to(root)}: no label in {label_file.name}")


def _match_submission(root: Path, files: dict[str, Path], folder: Path | None, problems) -> None:
    sub = root / "sample_submission.csv"
    if not sub.exists():
        problems.append("sample_submission.csv is missing")
        return
    seen: Counter[str] = Counter()
    reader = csv.reader(io.StringIO(read_utf8(sub), newline=""))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:1]] != ["id"]:
        problems.append(f"sample_submission.csv line 1: expected header 'id,category', got {header}")
        return
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        key = row[0].strip()
        if not re.fullmatch(r"\d+", key):
            problems.append(f"sample_submission.csv line {lineno}: id {key!r} is not an integer")
            continue
        key = str(int(key))
        seen[key] += 1
        if seen[key] == 2:
            problems.append(f"sample_submission.csv line {lineno}: duplicate id {key}")
        if seen[key] == 1 and key not in files and folder is not None:
            problems.append(f"{folder.name}/{key}.*: missing (sample_submission.csv line {lineno} lists it)")
    for key in files:
        if key not in seen:
            problems.append(f"{files[key].relative_to(root)}: not listed in sample_submission.csv")


def _sorted_ids(files: dict[str, Path]):
    return sorted(files.items(), key=lambda kv: int(kv[0]))


# --- labels -----------------------------------------------------------------------------------


def _int_labels(raw: dict, num_classes: int | None, problems: list[str]):
    """{key: (text, where)} -> (class names, {key: int label}); problems name `where`."""
    ints: dict = {}
    for key, (text, where) in raw.items():
        if not re.fullmatch(r"-?\d+", text):
            problems.append(f"{where}: label {text!r} is not an integer")
            continue
        value = int(text)
        if value < 0 or (num_classes is not None and value >= num_classes):
            top = f"0..{num_classes - 1} (data.num_classes={num_classes})" if num_classes else "≥ 0"
            problems.append(f"{where}: label {value} out of range {top}")
            continue
        ints[key] = value
    n = num_classes if num_classes is not None else (max(ints.values()) + 1 if ints else 0)
    return [str(i) for i in range(n)], ints


# --- manifest CSV -----------------------------------------------------------------------------


def _manifest(csv_path: Path, num_classes: int | None) -> Dataset:
    root = csv_path.parent
    problems: list[str] = []
    name = csv_path.name
    rows = _csv_rows(csv_path, ("path", "label"), "a manifest needs columns path,label[,group][,split][,id]")
    seen_ids: dict[str, int] = {}
    entries: list[tuple[str, str, Path, str, str | None, int]] = []
    for row, lineno in rows:
        rel = row["path"]
        if not rel:
            problems.append(f"{name} line {lineno}: empty path")
            continue
        clip_id = row.get("id") or rel
        if clip_id in seen_ids:
            problems.append(f"{name} line {lineno}: duplicate id {clip_id!r} (first on line {seen_ids[clip_id]})")
            continue
        seen_ids[clip_id] = lineno
        split = (row.get("split") or ("train" if row["label"] else "test")).lower()
        if split not in SPLITS:
            problems.append(f"{name} line {lineno}: split {split!r} is not train or test")
            continue
        path = (root / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
        if not path.exists():
            link = root / rel  # as written: resolve() followed the link
            gone = _dangling(link, rel) if link.is_symlink() else f"{rel}: missing"
            problems.append(f"{name} line {lineno}: {gone}")
            continue
        if split == "train" and not row["label"]:
            problems.append(f"{name} line {lineno}: train clip without a label")
            continue
        entries.append((split, clip_id, path, row["label"], row.get("group") or None, lineno))
    train_raw = [e[3] for e in entries if e[0] == "train"]
    if train_raw and not any(re.fullmatch(r"-?\d+", t) for t in train_raw):
        classes = sorted(set(train_raw))  # class names, sorted to indices
        if num_classes is not None and num_classes != len(classes):
            problems.append(f"{name}: {len(classes)} class names but data.num_classes={num_classes}")
        index = {c: i for i, c in enumerate(classes)}
        label_of = {e[5]: index[e[3]] for e in entries if e[0] == "train"}
    else:
        raw = {e[5]: (e[3], f"{name} line {e[5]}") for e in entries if e[0] == "train"}
        classes, label_of = _int_labels(raw, num_classes, problems)
    splits: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for split, clip_id, path, _, group, lineno in entries:
        if split == "train" and lineno not in label_of:
            continue
        splits[split].append(Clip(clip_id, path, label_of.get(lineno) if split == "train" else None, group))
    modality = "image" if entries and all(e[2].suffix.lower() in IMAGE_EXTS for e in entries) else "audio"
    return Dataset(root, "manifest", modality, splits, classes, problems)


# --- image folders ----------------------------------------------------------------------------


def _images(root: Path, num_classes: int | None) -> Dataset:
    problems: list[str] = []
    class_dirs = sorted((d for d in (root / "train").iterdir() if d.is_dir()), key=_natural)
    if not class_dirs:
        raise KitError(f"{root}/train: expected one sub-folder per class (train/<class>/*.png)")
    classes = [d.name for d in class_dirs]
    if num_classes is not None and num_classes != len(classes):
        problems.append(f"train/ has {len(classes)} class folders but data.num_classes={num_classes}")
    splits: dict[str, list[Clip]] = {"train": [], "test": []}
    for label, d in enumerate(class_dirs):
        for p in _image_files(d, root, problems):
            splits["train"].append(Clip(f"{d.name}/{p.stem}", p, label))
    if (root / "test").is_dir():
        seen: dict[str, Path] = {}
        for p in _image_files(root / "test", root, problems):
            if p.stem in seen:
                problems.append(f"test/: duplicate id {p.stem} ({seen[p.stem].name}, {p.name})")
                continue
            seen[p.stem] = p
            splits["test"].append(Clip(p.stem, p))
    return Dataset(root, "images", "image", splits, classes, problems)


def _image_files(folder: Path, root: Path, problems: list[str]) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir(), key=_natural):
        if p.name.startswith(".") or p.is_dir():
            continue
        if not p.exists():
            problems.append(_dangling(p, p.relative_to(root)))
            continue
        if p.suffix.lower() not in IMAGE_EXTS:
            problems.append(f"{p.relative_to(root)}: not an image ({', '.join(IMAGE_EXTS)})")
            continue
        out.append(p)
    return out


def _dangling(link: Path, rel) -> str:
    """The problem of a symbolic link whose target is gone."""
    return f"{rel}: a symbolic link to {os.readlink(link)}, which does not exist"


def _natural(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]
