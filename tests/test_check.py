"""`kit data check`: decoding problems, odd-but-usable clips, and what the user sees."""

from __future__ import annotations

import numpy as np
from audio import contest, write_clip
from PIL import Image
from typer.testing import CliRunner

from kit.cli.app import app
from kit.data.check import check
from kit.data.layout import load_dataset

runner = CliRunner()


def _report(root, **kw):
    return check(load_dataset(root, num_classes=4), sr=22050, duration=3.0, **kw)


def test_clean_dataset_summary(tmp_path):
    report = _report(contest(tmp_path))
    assert report.ok and report.notes == []
    train = report.splits["train"]
    assert train.clips == 6 and train.classes == [1, 2, 2, 1]
    assert train.rates == {22050: 6} and train.channels == {1: 6}
    assert min(train.seconds) > 2.9 and report.splits["test"].classes is None


def test_undecodable_and_empty_clips_are_problems(tmp_path):
    contest(tmp_path)
    (tmp_path / "train_mp3s" / "2.mp3").write_bytes(b"this is not audio at all" * 50)
    (tmp_path / "test_mp3s" / "1.mp3").write_bytes(b"")
    problems = _report(tmp_path).problems
    assert any(p.startswith("train_mp3s/2.mp3: undecodable") for p in problems), problems
    assert "test_mp3s/1.mp3: empty file (0 bytes)" in problems


def test_odd_but_usable_clips_are_counted_not_refused(tmp_path):
    contest(tmp_path, labels=(0, 1, 2, 3, 1, 2), ext=".wav")
    write_clip(tmp_path / "train_mp3s" / "0.wav", channels=2)
    write_clip(tmp_path / "train_mp3s" / "1.wav", sr=48000)
    write_clip(tmp_path / "train_mp3s" / "2.wav", seconds=0.5)
    write_clip(tmp_path / "train_mp3s" / "3.wav", seconds=60.0, sr=8000)
    report = _report(tmp_path)
    assert report.ok, report.problems
    assert report.notes == [
        "1 multi-channel clip(s): mixed down to mono",
        "2 clip(s) not at 22050 Hz: resampled",
        "1 clip(s) shorter than 3 s: zero-padded",
        "1 clip(s) longer than 3 s: trimmed",
    ]
    assert report.splits["train"].rates == {22050: 4, 48000: 1, 8000: 1}


def test_cli_check_lists_every_problem_and_exits_1(tmp_path):
    contest(tmp_path)
    (tmp_path / "train_label.txt").write_text("0\n1\n2\n3\nfoo\n9\n")
    (tmp_path / "test_mp3s" / "0.mp3").write_bytes(b"garbage")
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())  # rich wraps long lines
    assert "train_label.txt line 5: label 'foo' is not an integer" in out
    assert "train_label.txt line 6: label 9 out of range 0..3" in out
    assert "test_mp3s/0.mp3: undecodable" in out
    assert "3 problem(s) found" in out


def test_cli_check_clean_dataset(tmp_path):
    contest(tmp_path)
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "contest layout, audio, 4 classes" in out and "no problems found" in out
    assert "0:1 1:2 2:2 3:1" in out


def test_images_check(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(4):
        (tmp_path / "train" / str(k)).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (32, 48), dtype=np.uint8)).save(tmp_path / "train" / str(k) / "a.png")
    (tmp_path / "train" / "2" / "b.png").write_bytes(b"not a png")
    report = _report(tmp_path)
    assert report.problems == [
        "train/2/b.png: undecodable (cannot identify image file '" + str(tmp_path / "train/2/b.png") + "')"
    ]
    assert report.splits["train"].rates == {"48x32": 4}
