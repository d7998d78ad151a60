"""The synthetic demo dataset: layout, determinism, atomicity, argument checks, and that
it is a real task (level/bandwidth say nothing about the class; voices do)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from kit.data import demo
from kit.data.demo import DemoSummary, make_demo
from kit.errors import KitError

SR = 22050


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "small"
    calls: list[int] = []
    summary = make_demo(out, n_train=24, n_test=8, seed=3, workers=2, progress=calls.append)
    return out, summary, calls


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(small):
    out, summary, calls = small
    assert isinstance(summary, DemoSummary)
    assert (summary.out, summary.n_train, summary.n_test) == (out, 24, 8)
    assert sum(calls) == 32 and all(c > 0 for c in calls)
    expected = {f"{s}_mp3s/{i}.mp3" for s, n in (("train", 24), ("test", 8)) for i in range(n)}
    assert set(files(out)) == expected | {"train_label.txt", "test_label.txt", "sample_submission.csv"}
    for split, n in (("train", 24), ("test", 8)):
        text = (out / f"{split}_label.txt").read_text()
        assert text.endswith("\n")
        labels = [int(x) for x in text.splitlines()]
        assert len(labels) == n and set(labels) <= {0, 1, 2, 3}
        assert summary.class_counts[split] == np.bincount(labels, minlength=4).tolist()
    assert min(summary.class_counts["train"]) >= 1  # every class present
    rows = (out / "sample_submission.csv").read_text().splitlines()
    assert rows[0] == "id,category"
    assert rows[1:] == [f"{i},0" for i in range(8)]
    assert summary.seconds > 0


def test_clips_decode(small):
    out, _, _ = small
    for p in sorted(out.glob("*_mp3s/*.mp3")):
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, 3 * SR), p
        y, _ = sf.read(p, dtype="float32")
        rms = float(np.sqrt(np.mean(y**2)))
        assert np.isfinite(y).all() and np.abs(y).max() < 1.0 and 0.02 < rms < 0.35, p


def test_other_rate_and_duration(tmp_path):
    make_demo(tmp_path / "d", n_train=4, n_test=1, sr=16000, duration=1.5, workers=1)
    for p in (tmp_path / "d").glob("*_mp3s/*.mp3"):
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 24000)


def test_deterministic(small, tmp_path):
    out, _, _ = small
    again = make_demo(tmp_path / "again", n_train=24, n_test=8, seed=3, workers=1)
    assert files(again.out) == files(out)  # same seed, other worker count: same bytes
    other = files(make_demo(tmp_path / "other", n_train=24, n_test=8, seed=4, workers=2).out)
    mine = files(out)
    assert all(other[k] != mine[k] for k in mine if k.endswith(".mp3"))


def test_replaces_previous_demo_but_not_other_folders(small, tmp_path):
    out = tmp_path / "d"
    make_demo(out, n_train=4, n_test=2, seed=0, workers=1)
    make_demo(out, n_train=5, n_test=1, seed=1, workers=1)
    assert len(list((out / "train_mp3s").iterdir())) == 5
    assert len(list((out / "test_mp3s").iterdir())) == 1
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(KitError, match="--out"):
        make_demo(precious, n_train=4, n_test=1, workers=1)
    assert (precious / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("workers", [1, 2])
def test_crash_leaves_nothing(tmp_path, monkeypatch, workers):
    if workers > 1 and demo._START != "fork":
        pytest.skip("the patched writer reaches worker processes only when they are forked")
    real = demo._write_clip

    def flaky(path, y, sr):
        if path.name == "5.mp3":
            raise RuntimeError("disk on fire")
        real(path, y, sr)

    monkeypatch.setattr(demo, "_write_clip", flaky)
    parent = tmp_path / "parent"
    parent.mkdir()
    with pytest.raises(RuntimeError, match="disk on fire"):
        make_demo(parent / "out", n_train=12, n_test=4, workers=workers)
    assert list(parent.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        (dict(n_train=3), "--n-train"),
        (dict(n_train=2.5), "--n-train"),
        (dict(n_test=0), "--n-test"),
        (dict(seed=-1), "--seed"),
        (dict(sr=12345), "--sr"),
        (dict(duration=0.2), "--duration"),
        (dict(duration=float("nan")), "--duration"),
        (dict(workers=0), "--workers"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, option):
    with pytest.raises(KitError, match=option) as err:
        make_demo(tmp_path / "d", **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ is it a real task?
def clip_features(y, sr):
    """(level, centroid, bandwidth, rolloff) and MFCC mean/std/delta-std, numpy only."""
    import librosa  # only for the mel filter bank

    n_fft, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n_fft // 2), n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2  # (frames, bins)
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    p = power / (power.sum(1, keepdims=True) + 1e-12)
    centroid = p @ f
    bandwidth = np.sqrt((p * (f[None] - centroid[:, None]) ** 2).sum(1))
    rolloff = f[np.argmax(np.cumsum(p, 1) >= 0.85, axis=1)]
    trivial = [10 * np.log10(np.mean(y**2) + 1e-12), centroid.mean(), bandwidth.mean(), rolloff.mean()]
    mel = np.log(power @ librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=40).T + 1e-10)
    k = np.arange(40)
    dct = np.cos(np.pi / 40 * (k[None, :] + 0.5) * np.arange(20)[:, None])  # DCT-II, 20 coefficients
    mfcc = mel @ dct.T
    delta = mfcc[2:] - mfcc[:-2]
    return np.array(trivial), np.r_[mfcc.mean(0), mfcc.std(0), delta.std(0)]


def cv_accuracy(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()


def test_level_and_bandwidth_say_nothing_but_voices_do(tmp_path):
    out = make_demo(tmp_path / "d", n_train=160, n_test=1, seed=0).out
    y = np.array([int(x) for x in (out / "train_label.txt").read_text().split()])
    feats = [clip_features(sf.read(out / "train_mp3s" / f"{i}.mp3")[0], SR) for i in range(len(y))]
    trivial = cv_accuracy(np.array([t for t, _ in feats]), y)
    voice = cv_accuracy(np.array([v for _, v in feats]), y)
    majority = np.bincount(y).max() / len(y)
    assert trivial <= majority + 0.10, (trivial, majority)
    assert voice >= majority + 0.15 and voice >= trivial + 0.15, (voice, trivial, majority)
