"""Dataset layouts and every structural problem `kit data check` must name."""

from __future__ import annotations

import numpy as np
import pytest
from audio import contest, write_clip
from PIL import Image

from kit.data.layout import load_dataset
from kit.errors import KitError


def test_contest_layout_is_indexed(tmp_path):
    ds = load_dataset(contest(tmp_path))
    assert ds.layout == "contest" and ds.modality == "audio"
    assert [c.id for c in ds.splits["train"]] == ["0", "1", "2", "3", "4", "5"]
    assert [c.label for c in ds.splits["train"]] == [0, 1, 2, 3, 1, 2]
    assert [c.id for c in ds.splits["test"]] == ["0", "1", "2"]
    assert ds.problems == [] and ds.classes == ["0", "1", "2", "3"]


def test_ids_sort_numerically_and_wav_flac_work(tmp_path):
    contest(tmp_path, labels=list(range(4)) * 3, ext=".flac")
    ds = load_dataset(tmp_path)
    assert [c.id for c in ds.splits["train"]][:12] == [str(i) for i in range(12)]
    assert ds.splits["train"][10].path.name == "10.flac"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: (r / "train_label.txt").write_text("0\n1\n2\n3\n1\n"),
            "train_label.txt has 5 labels but train_mp3s/ has 6 clips",
        ),
        (lambda r: (r / "train_mp3s" / "3.mp3").unlink(), "train_mp3s/3.*: missing (train_label.txt line 4 labels it)"),
        (
            lambda r: (r / "train_label.txt").write_text("0\n1\ncat\n3\n1\n2\n"),
            "train_label.txt line 3: label 'cat' is not an integer",
        ),
        (
            lambda r: (r / "train_label.txt").write_text("0\n1\n2\n7\n1\n2\n"),
            "train_label.txt line 4: label 7 out of range 0..3",
        ),
        (
            lambda r: (r / "train_label.txt").write_text("0\n1\n2\n-1\n1\n2\n"),
            "train_label.txt line 4: label -1 out of range",
        ),
        (
            lambda r: (r / "train_label.txt").write_text("0\n1.5\n2\n3\n1\n2\n"),
            "train_label.txt line 2: label '1.5' is not an integer",
        ),
        (lambda r: write_clip(r / "train_mp3s" / "03.mp3"), "train_mp3s/: duplicate id 3 (03.mp3, 3.mp3)"),
        (lambda r: write_clip(r / "train_mp3s" / "2.wav"), "train_mp3s/: duplicate id 2"),
        (
            lambda r: (r / "sample_submission.csv").write_text("id,category\n0,0\n1,0\n1,0\n2,0\n"),
            "sample_submission.csv line 4: duplicate id 1",
        ),
        (
            lambda r: (r / "sample_submission.csv").write_text("id,category\n0,0\n1,0\n2,0\n3,0\n"),
            "test_mp3s/3.*: missing (sample_submission.csv line 5 lists it)",
        ),
        (lambda r: (r / "test_mp3s" / "1.mp3").unlink(), "test_mp3s/1.*: missing"),
        (lambda r: write_clip(r / "train_mp3s" / "six.mp3"), "train_mp3s/six.mp3: name is not an integer id"),
        (lambda r: (r / "sample_submission.csv").unlink(), "sample_submission.csv is missing"),
    ],
)
def test_contest_problems_are_named(tmp_path, mutate, expected):
    contest(tmp_path)
    mutate(tmp_path)
    problems = load_dataset(tmp_path, num_classes=4).problems
    assert any(expected in p for p in problems), problems


def test_dataset_with_problems_is_refused_with_the_first_one(tmp_path):
    contest(tmp_path)
    (tmp_path / "train_label.txt").write_text("0\n1\n9\n3\n1\n2\n")
    with pytest.raises(KitError, match=r"line 3: label 9 out of range.*kit data check"):
        load_dataset(tmp_path, num_classes=4).require_clean()


def test_num_classes_none_infers_from_labels(tmp_path):
    contest(tmp_path, labels=(0, 5, 2, 5))
    ds = load_dataset(tmp_path, num_classes=None)
    assert ds.num_classes == 6 and ds.problems == []


def test_not_a_dataset(tmp_path):
    with pytest.raises(KitError, match="no dataset found"):
        load_dataset(tmp_path)
    with pytest.raises(KitError, match="no such file"):
        load_dataset(tmp_path / "nope")


def test_manifest_with_groups_names_and_test_rows(tmp_path):
    for name in ("a", "b", "c", "d", "t"):
        write_clip(tmp_path / "clips" / f"{name}.wav")
    (tmp_path / "manifest.csv").write_text(
        "path,label,group\nclips/a.wav,dog,s1\nclips/b.wav,cat,s1\nclips/c.wav,dog,s2\nclips/d.wav,bird,s3\nclips/t.wav,,\n"
    )
    ds = load_dataset(tmp_path, num_classes=None)
    assert ds.layout == "manifest" and ds.problems == []
    assert ds.classes == ["bird", "cat", "dog"]
    assert [(c.label, c.group) for c in ds.splits["train"]] == [(2, "s1"), (1, "s1"), (2, "s2"), (0, "s3")]
    assert [c.id for c in ds.splits["test"]] == ["clips/t.wav"]


def test_manifest_problems(tmp_path):
    write_clip(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("path,label\na.wav,1\na.wav,2\nmissing.wav,0\nb.wav,x\n")
    problems = load_dataset(tmp_path / "m.csv", num_classes=4).problems
    assert "m.csv line 3: duplicate id 'a.wav' (first on line 2)" in problems
    assert "m.csv line 4: missing.wav: missing" in problems
    with pytest.raises(KitError, match=r"m.csv line 1: a manifest needs columns path,label"):
        (tmp_path / "m.csv").write_text("file,y\na.wav,1\n")
        load_dataset(tmp_path / "m.csv")


@pytest.mark.parametrize("where", ["train_mp3s/6.mp3", "images", "manifest"])
def test_a_dangling_symlink_among_the_clips_is_a_named_problem(tmp_path, where):
    if where == "images":
        (tmp_path / "train" / "a").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "train" / "a" / "0.png")
        (tmp_path / "train" / "a" / "1.png").symlink_to(tmp_path / "gone.png")
        expected, root = f"train/a/1.png: a symbolic link to {tmp_path}/gone.png", tmp_path
    elif where == "manifest":
        write_clip(tmp_path / "a.wav")
        (tmp_path / "b.wav").symlink_to(tmp_path / "gone.wav")
        (tmp_path / "m.csv").write_text("path,label\na.wav,0\nb.wav,1\n")
        expected, root = f"m.csv line 3: b.wav: a symbolic link to {tmp_path}/gone.wav", tmp_path / "m.csv"
    else:
        root = contest(tmp_path)
        (root / where).symlink_to(tmp_path / "gone.mp3")
        expected = f"{where}: a symbolic link to {tmp_path}/gone.mp3"
    ds = load_dataset(root, num_classes=None)
    assert f"{expected}, which does not exist" in ds.problems
    with pytest.raises(KitError, match="symbolic link to .*, which does not exist") as refused:
        ds.require_clean()
    assert refused.value.exit_code == 2


def test_kit_features_refuses_a_dangling_symlink_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kit.cli.app import app

    monkeypatch.chdir(tmp_path)
    root = contest(tmp_path / "data")
    (root / "train_mp3s" / "2.mp3").unlink()
    (root / "train_mp3s" / "2.mp3").symlink_to(tmp_path / "gone.mp3")
    result = CliRunner().invoke(app, ["features", "--data", "data", "--no-voice"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and not (tmp_path / "data" / "features").exists()
    assert result.output.startswith(f"error: data: train_mp3s/2.mp3: a symbolic link to {tmp_path}/gone.mp3, which")
    assert len(result.output.splitlines()) == 1


@pytest.mark.parametrize("name", ["manifest.csv", "train_label.txt", "sample_submission.csv", "groups.csv"])
def test_a_file_that_is_not_utf8_is_refused_naming_its_line(tmp_path, name):
    root = contest(tmp_path / "data")
    groups = None
    if name == "manifest.csv":
        write_clip(tmp_path / "m" / "a.wav")
        root = tmp_path / "m"
        (root / name).write_bytes("path,label\na.wav,0\n# caf\xe9\n".encode("latin-1"))
    elif name == "groups.csv":
        groups = tmp_path / name
        groups.write_bytes("id,group\n0,a\n1,Jos\xe9\n".encode("latin-1"))
    else:
        text = (root / name).read_text().replace("\n", "\n\xe9", 2).replace("\xe9", "", 1)
        (root / name).write_bytes(text.encode("latin-1"))
    with pytest.raises(KitError, match=rf"{name} line 3: not UTF-8 text \(byte 0xe9\); save it as UTF-8$") as refused:
        load_dataset(root, 4, groups)
    assert refused.value.exit_code == 2


def test_image_folders_24_classes(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(24):
        for j in range(2):
            d = tmp_path / "train" / f"speaker{k}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)).save(d / f"{j}.png")
    (tmp_path / "test").mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)).save(tmp_path / "test" / "x.png")
    ds = load_dataset(tmp_path, num_classes=None)
    assert ds.layout == "images" and ds.modality == "image" and ds.num_classes == 24
    assert ds.classes[:3] == ["speaker0", "speaker1", "speaker2"] and ds.classes[10] == "speaker10"
    assert len(ds.splits["train"]) == 48 and ds.splits["test"][0].id == "x"
    assert "24 class folders but data.num_classes=4" in load_dataset(tmp_path, num_classes=4).problems[0]


def test_data_fetch_copies_a_local_dataset_path(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kit.cli.app import app

    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    contest(tmp_path / "elsewhere" / "song4")
    (tmp_path / "params.yaml").write_text("data:\n  source: path\n  path: elsewhere/song4\n")
    result = runner.invoke(app, ["data", "fetch"])
    assert result.exit_code == 0, result.output
    assert "contest layout, 6 train, 3 test clips" in result.output
    assert (tmp_path / "data/raw/train_mp3s/5.mp3").read_bytes() == (
        tmp_path / "elsewhere/song4/train_mp3s/5.mp3"
    ).read_bytes()
    (tmp_path / "params.yaml").write_text("data:\n  source: path\n")
    empty = runner.invoke(app, ["data", "fetch"])
    assert empty.exit_code == 1 and "data.source is path, but data.path is empty" in empty.output
    (tmp_path / "params.yaml").write_text("data:\n  source: path\n  path: data\n")
    overlap = runner.invoke(app, ["data", "fetch"])
    assert overlap.exit_code == 1 and "overlap" in overlap.output


def test_groups_csv_gives_contest_clips_their_groups(tmp_path):
    root = contest(tmp_path / "data")
    groups = tmp_path / "groups.csv"
    groups.write_text("id,group\n0,songA\n1,songA\n2,songB\n003,songB\n4,songC\n5,songC\n")
    ds = load_dataset(root, 4, groups)
    assert [c.group for c in ds.splits["train"]] == ["songA", "songA", "songB", "songB", "songC", "songC"]
    assert [c.label for c in ds.splits["train"]] == [0, 1, 2, 3, 1, 2] and ds.problems == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id,group\n0,a\n1,a\n2,b\n3,b\n4,c\n", "groups.csv: 1 train clip(s) without a group (first: id 5)"),
        ("id,group\n0,a\n1,a\n2,b\n3,b\n4,c\n5,c\n9,d\n", "groups.csv line 8: id '9' is not a train clip"),
        ("id,group\n0,a\n1,a\n2,b\n3,b\n4,c\n5,c\n5,d\n", "groups.csv line 8: duplicate id '5'"),
        ("id,group\n0,a\n1,\n2,b\n3,b\n4,c\n5,c\n", "groups.csv line 3: empty group for id '1'"),
    ],
)
def test_bad_groups_csv_is_a_problem_naming_the_line(tmp_path, text, expected):
    root = contest(tmp_path / "data")
    (tmp_path / "groups.csv").write_text(text)
    ds = load_dataset(root, 4, tmp_path / "groups.csv")
    assert ds.problems == [expected]
    with pytest.raises(KitError, match="run `kit data check"):
        ds.require_clean()


def test_groups_csv_without_columns_or_file_is_refused(tmp_path):
    root = contest(tmp_path / "data")
    (tmp_path / "g.csv").write_text("clip,song\n0,a\n")
    with pytest.raises(KitError, match=r"g.csv line 1: data.groups needs columns id,group; got \['clip', 'song'\]"):
        load_dataset(root, 4, tmp_path / "g.csv")
    with pytest.raises(KitError, match="data.groups: .*nope.csv: no such file"):
        load_dataset(root, 4, tmp_path / "nope.csv")
