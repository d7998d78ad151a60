"""kit.submission.files: writing, checking and scoring submission CSVs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from kit.errors import KitError
from kit.submission.files import check_submission, score_submission, write_submission

IDS = [str(i) for i in range(6)]
K = 4


def csv_file(tmp_path, content: str | bytes, name: str = "sub.csv"):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def valid_text(labels=(0, 1, 2, 3, 0, 1)) -> str:
    return "id,category\n" + "".join(f"{i},{label}\n" for i, label in zip(IDS, labels))


# --------------------------------------------------------------------------- write


def test_write_round_trip_with_manifest(tmp_path):
    manifest = {"method": "mean", "members": ["run-a", "run-b"], "estimate": np.float32(0.75)}
    path = write_submission(tmp_path / "subs" / "sub.csv", IDS, np.array([0, 1, 2, 3, 0, 1]), manifest=manifest)

    assert path == tmp_path / "subs" / "sub.csv"
    assert path.read_text() == valid_text()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta == {
        "method": "mean",
        "members": ["run-a", "run-b"],
        "estimate": 0.75,
        "csv_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    assert check_submission(path, IDS, K) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["sub.csv", "sub.json"]  # no temp files left


def test_write_keeps_given_order_and_replaces(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, IDS, np.zeros(6, dtype=int), manifest={})
    write_submission(path, IDS[::-1], np.arange(6) % K, manifest={"method": "x"})
    assert path.read_text().splitlines()[:3] == ["id,category", "5,0", "4,1"]
    assert json.loads(path.with_suffix(".json").read_text())["method"] == "x"


def test_a_write_cut_between_its_two_files_is_never_taken_for_a_submission(tmp_path, monkeypatch):
    import kit.submission.files as files

    calls = []

    def killed_after_one_file(path, data):  # the process dies between the two files' renames
        calls.append(path)
        if len(calls) % 2 == 0:
            raise SystemExit(137)
        real_write(path, data)

    real_write = files.atomic_write
    old = write_submission(tmp_path / "old.csv", IDS, np.zeros(6, dtype=int), manifest={"method": "mean"})
    monkeypatch.setattr(files, "atomic_write", killed_after_one_file)
    with pytest.raises(SystemExit):  # a first write cut short: a manifest, no CSV
        write_submission(tmp_path / "new.csv", IDS, np.ones(6, dtype=int), manifest={"method": "x"})
    assert not (tmp_path / "new.csv").exists() and files.newest_submission(tmp_path) == old
    with pytest.raises(SystemExit):  # a rewrite cut short: the old CSV beside the new manifest
        write_submission(old, IDS, np.ones(6, dtype=int), manifest={"method": "x"})
    assert files.manifest_of(old) is None and old.read_text().splitlines()[1] == "0,0"
    with pytest.raises(KitError, match=r"no submission in .* \(old.csv: beside a manifest of other bytes"):
        files.newest_submission(tmp_path)
    monkeypatch.setattr(files, "atomic_write", real_write)
    write_submission(old, IDS, np.ones(6, dtype=int), manifest={"method": "x"})  # the rerun
    assert files.newest_submission(tmp_path) == old and files.manifest_of(old)["method"] == "x"


def test_write_refuses_mismatched_labels(tmp_path):
    with pytest.raises(ValueError):
        write_submission(tmp_path / "sub.csv", IDS, np.zeros(5, dtype=int), manifest={})
    with pytest.raises(ValueError):  # probabilities, not labels
        write_submission(tmp_path / "sub.csv", IDS, np.zeros(6), manifest={})
    assert not (tmp_path / "sub.csv").exists()


# --------------------------------------------------------------------------- check: tolerated


@pytest.mark.parametrize(
    "content",
    [
        valid_text(),
        valid_text().rstrip("\n"),  # no final newline
        "\ufeff" + valid_text(),  # UTF-8 BOM (Excel)
        valid_text().replace("\n", "\r\n"),  # Windows line ends
        'id,category\n"0","0"\n1,1\n2,2\n3,3\n4,0\n5,1\n',  # CSV quoting
        "id,category\n5,1\n4,0\n3,3\n2,2\n1,1\n0,0\n",  # any row order
    ],
    ids=["plain", "no-final-newline", "bom", "crlf", "quoted", "reordered"],
)
def test_check_accepts(tmp_path, content):
    assert check_submission(csv_file(tmp_path, content), IDS, K) == []


# --------------------------------------------------------------------------- check: malformed

MALFORMED = {
    "missing-file": (None, ["sub.csv: no such file"]),
    "binary": (b"PK\x03\x04\x00\x00binary", ["sub.csv: binary file, not a CSV (it holds NUL bytes)"]),
    "latin-1": (
        valid_text().encode() + "6,caf\xe9\n".encode("latin-1"),
        ["sub.csv line 8: not UTF-8 text (byte 0xe9); save the file as UTF-8"],
    ),
    "empty": ("", ["sub.csv: empty file (expected the header 'id,category', then one row per test clip)"]),
    "wrong-header": (
        valid_text().replace("id,category", "id,label"),
        ["sub.csv line 1: header must be 'id,category', got 'id,label'"],
    ),
    "no-header": (
        valid_text().replace("id,category\n", ""),
        [
            "sub.csv line 1: header must be 'id,category', got '0,0' (the header line is missing?)",
            "sub.csv: 1 of 6 test ids missing (first: 0)",
        ],
    ),
    "three-columns": (
        valid_text().replace("2,2\n", "2,2,0.9\n"),
        ["sub.csv line 4: expected 2 columns (id,category), got 3: '2,2,0.9'"],
    ),
    "one-column": (
        valid_text().replace("2,2\n", "2\n"),
        ["sub.csv line 4: expected 2 columns (id,category), got 1: '2'"],
    ),
    "unknown-id": (valid_text() + "17,0\n", ["sub.csv line 8: id '17' is not a test id"]),
    "duplicate-id": (valid_text() + "3,1\n", ["sub.csv line 8: duplicate id '3' (first on line 5)"]),
    "missing-ids": (
        "id,category\n0,0\n",
        ["sub.csv: 5 of 6 test ids missing (first: 1, 2, 3, 4, 5)"],
    ),
    "label-not-int": (
        valid_text().replace("1,1\n", "1,rock\n").replace("4,0\n", "4,2.0\n"),
        [
            "sub.csv line 3: category 'rock' is not an integer class index",
            "sub.csv line 6: category '2.0' is not an integer class index",
        ],
    ),
    "label-out-of-range": (
        valid_text().replace("1,1\n", "1,4\n").replace("4,0\n", "4,-1\n"),
        ["sub.csv line 3: category 4 out of range 0..3", "sub.csv line 6: category -1 out of range 0..3"],
    ),
    "blank-line-middle": (valid_text().replace("2,2\n", "2,2\n\n"), ["sub.csv line 5: blank line"]),
    "blank-lines-end": (valid_text() + "\n\n", ["sub.csv line 8: blank line", "sub.csv line 9: blank line"]),
    "whitespace": (
        valid_text().replace("2,2\n", "2, 2\n").replace("3,3\n", "3,3 \n"),
        ["sub.csv line 4: whitespace around a value in '2, 2'", "sub.csv line 5: whitespace around a value in '3,3 '"],
    ),
    "label-missing": (
        valid_text().replace("5,1\n", "5,\n"),
        ["sub.csv line 7: category '' is not an integer class index"],
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_check_reports_every_problem_with_its_line(tmp_path, case):
    content, expected = MALFORMED[case]
    path = tmp_path / "sub.csv" if content is None else csv_file(tmp_path, content)
    problems = check_submission(path, IDS, K)
    if case == "missing-file":
        assert problems == [f"{path}: no such file"]
    else:
        assert problems == expected


def test_check_lists_many_problems_at_once(tmp_path):
    text = "id,category\n0,0\n0,1\n9,1\n2,x\n\n3,7\n"
    problems = check_submission(csv_file(tmp_path, text), IDS, K)
    assert problems == [
        "sub.csv line 3: duplicate id '0' (first on line 2)",
        "sub.csv line 4: id '9' is not a test id",
        "sub.csv line 5: category 'x' is not an integer class index",
        "sub.csv line 6: blank line",
        "sub.csv line 7: category 7 out of range 0..3",
        "sub.csv: 3 of 6 test ids missing (first: 1, 4, 5)",
    ]


def test_check_missing_ids_lists_first_five(tmp_path):
    ids = [str(i) for i in range(20)]
    problems = check_submission(csv_file(tmp_path, "id,category\n0,0\n"), ids, K)
    assert problems == ["sub.csv: 19 of 20 test ids missing (first: 1, 2, 3, 4, 5, ...)"]


# --------------------------------------------------------------------------- score

ANSWERS = [0, 1, 2, 3, 0, 1]
PRED = [0, 1, 2, 0, 0, 2]  # 4 of 6 right


def expected_scores() -> dict:
    return {
        "n": 6,
        "accuracy": 4 / 6,
        "macro_f1": pytest.approx(8 / 15),  # per-class F1 4/5, 2/3, 2/3, 0
        "confusion": [[2, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]],
    }


def test_score_against_test_label_txt(tmp_path):
    sub = csv_file(tmp_path, valid_text(PRED))
    answers = csv_file(tmp_path, "".join(f"{y}\n" for y in ANSWERS) + "\n", "test_label.txt")
    result = score_submission(sub, answers)
    assert result == expected_scores()


def test_score_against_csv_answers_in_another_order(tmp_path):
    sub = csv_file(tmp_path, valid_text(PRED))
    rows = list(zip(IDS, ANSWERS))[::-1]
    answers = csv_file(tmp_path, "id,category\n" + "".join(f"{i},{y}\n" for i, y in rows), "answers.csv")
    assert score_submission(sub, answers) == expected_scores()


def test_score_with_num_classes_sizes_confusion(tmp_path):
    sub = csv_file(tmp_path, valid_text(PRED))
    answers = csv_file(tmp_path, "".join(f"{y}\n" for y in ANSWERS), "test_label.txt")
    result = score_submission(sub, answers, num_classes=6)
    assert len(result["confusion"]) == 6 and all(len(row) == 6 for row in result["confusion"])
    assert result["accuracy"] == 4 / 6


def test_score_perfect(tmp_path):
    sub = csv_file(tmp_path, valid_text())
    answers = csv_file(tmp_path, "0\n1\n2\n3\n0\n1\n", "test_label.txt")
    result = score_submission(sub, answers)
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("test_label.txt", "0\n1\ntwo\n3\n0\n1\n", "test_label.txt line 3: label 'two' is not an integer class index"),
        ("test_label.txt", "0\n1\n\n3\n0\n1\n", "test_label.txt line 3: label '' is not an integer class index"),
        ("test_label.txt", b"\xff\xfe0\x001\x00", "test_label.txt line 1: not UTF-8 text"),
        ("test_label.txt", "\n\n", "test_label.txt: no answers in the file"),
        ("answers.csv", "id,label\n0,0\n", "answers file answers.csv line 1: header must be 'id,category'"),
        (
            "answers.csv",
            "id,category\n0,0\n0,1\n",
            "answers file answers.csv line 3: duplicate id '0' (first on line 2)",
        ),
        ("answers.json", "{}", "answers must be a test_label.txt (one label per line) or an id,category CSV"),
    ],
)
def test_score_bad_answers_file(tmp_path, name, content, expected):
    sub = csv_file(tmp_path, valid_text())
    with pytest.raises(KitError) as err:
        score_submission(sub, csv_file(tmp_path, content, name))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_score_missing_answers_file(tmp_path):
    with pytest.raises(KitError, match="test_label.txt: no such file"):
        score_submission(csv_file(tmp_path, valid_text()), tmp_path / "test_label.txt")


def test_score_answers_label_beyond_num_classes(tmp_path):
    answers = csv_file(tmp_path, "0\n1\n2\n3\n0\n5\n", "test_label.txt")
    with pytest.raises(KitError, match=r"test_label.txt: label 5 out of range 0..3 \(num_classes=4\)"):
        score_submission(csv_file(tmp_path, valid_text()), answers, num_classes=4)


def test_score_refuses_invalid_submission(tmp_path):
    answers = csv_file(tmp_path, "0\n1\n2\n3\n0\n1\n0\n", "test_label.txt")  # 7 answers, 6 rows
    with pytest.raises(KitError) as err:
        score_submission(csv_file(tmp_path, valid_text()), answers)
    assert str(err.value) == f"cannot score {tmp_path / 'sub.csv'}: sub.csv: 1 of 7 test ids missing (first: 6)"
