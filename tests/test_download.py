"""kit.data.download: the real kaggle client against the fake server in tests/kaggle_server.py."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from kit.data.archive import safe_extract
from kit.data.download import download_competition
from kit.errors import KitError

SLUG = "kit-birds-2025"
REPO = Path(__file__).resolve().parents[1]

kaggle = pytest.mark.xdist_group("kaggle")


def make_zip(files: dict[str, bytes | str], path: Path | None = None, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name) if name.endswith("/") else name, data)
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


CONTEST = {
    "train_mp3s/0.mp3": b"ID3\x00fake-mp3-0",
    "train_mp3s/1.mp3": b"ID3\x00fake-mp3-1",
    "test_mp3s/0.mp3": b"ID3\x00fake-mp3-t",
    "train_label.txt": "0\n3\n",
    "sample_submission.csv": "id,label\n0,0\n",
}


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != "home")  # home/: kaggle_creds' HOME


# --------------------------------------------------------------------------- download, happy paths


@kaggle
def test_download_puts_contest_files_in_out(kaggle_server, tmp_path):
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))
    out = tmp_path / "data" / "raw"

    assert download_competition(SLUG, out) == out

    assert listing(out) == sorted(CONTEST)
    assert (out / "train_label.txt").read_text() == "0\n3\n"
    assert (out / "train_mp3s" / "1.mp3").read_bytes() == CONTEST["train_mp3s/1.mp3"]
    assert siblings(out) == ["raw"]  # no temp download/extract folders left beside it
    assert ("POST", "/api/v1/competitions.CompetitionApiService/DownloadDataFiles") in kaggle_server.requests
    assert ("GET", f"/storage/competitions/{SLUG}.zip") in kaggle_server.requests


@kaggle
def test_download_unpacks_nested_zip_and_flattens_wrapper(kaggle_server, tmp_path):
    inner = make_zip({f"train_mp3s/{i}.mp3": b"mp3" for i in range(3)})
    outer = make_zip(
        {f"{SLUG}/train_mp3s.zip": inner, f"{SLUG}/train_label.txt": "1\n", f"{SLUG}/sample_submission.csv": "id\n"}
    )
    kaggle_server.add_competition(SLUG, outer)
    out = tmp_path / "raw"

    download_competition(SLUG, out)

    assert listing(out) == ["sample_submission.csv", "train_label.txt"] + [f"train_mp3s/{i}.mp3" for i in range(3)]


@kaggle
def test_download_with_access_token(kaggle_server, kaggle_creds, tmp_path, monkeypatch):
    kaggle_creds.remove()
    monkeypatch.setenv("KAGGLE_API_TOKEN", kaggle_creds.token)
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))

    download_competition(SLUG, tmp_path / "raw")

    assert listing(tmp_path / "raw") == sorted(CONTEST)
    assert ("POST", "/api/v1/security.OAuthService/IntrospectToken") in kaggle_server.requests


@kaggle
def test_progress_bar_goes_to_stderr_only(kaggle_server, tmp_path, capsys):
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))
    download_competition(SLUG, tmp_path / "raw", progress=True)
    assert listing(tmp_path / "raw") == sorted(CONTEST)
    assert capsys.readouterr().out == ""


@kaggle
def test_force_replaces_existing_data(kaggle_server, tmp_path):
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))
    out = tmp_path / "raw"
    out.mkdir()
    (out / "old.txt").write_text("old")

    with pytest.raises(KitError, match="already holds data: pass --force"):
        download_competition(SLUG, out)
    assert listing(out) == ["old.txt"]
    assert kaggle_server.requests == []  # refused before talking to Kaggle

    download_competition(SLUG, out, force=True)
    assert listing(out) == sorted(CONTEST)
    assert siblings(out) == ["raw"]


@kaggle
def test_empty_out_folder_is_not_data(kaggle_server, tmp_path):
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))
    out = tmp_path / "raw"
    out.mkdir()
    download_competition(SLUG, out)
    assert listing(out) == sorted(CONTEST)


# --------------------------------------------------------------------------- download, failures


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # `from None`: no chained traceback
    return msg


@kaggle
def test_no_credentials(kaggle_creds, tmp_path, capsys):
    kaggle_creds.remove()
    with pytest.raises(KitError) as err:
        download_competition(SLUG, tmp_path / "raw")
    msg = assert_one_line(err)
    assert msg.startswith("no Kaggle credentials: put kaggle.json in ")
    assert "KAGGLE_USERNAME/KAGGLE_KEY" in msg
    assert capsys.readouterr().out == ""  # kaggle's long help text is swallowed
    assert not (tmp_path / "raw").exists()


@kaggle
def test_no_credentials_fresh_process_prints_nothing(tmp_path):
    """`import kaggle` itself prints help when it finds no credentials: a fresh process checks that."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), KAGGLE_API_ENVIRONMENT="TEST")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    code = textwrap.dedent(
        f"""
        import sys
        from kit.errors import KitError
        from kit.data.download import download_competition
        try:
            download_competition({SLUG!r}, {str(tmp_path / "raw")!r})
        except KitError as e:
            sys.stderr.write(f"error: {{e}}\\n")
            sys.exit(1)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    expected = "error: no Kaggle credentials: put kaggle.json in ~/.kaggle (or set KAGGLE_USERNAME/KAGGLE_KEY"
    assert r.stderr.startswith(expected)
    assert r.stderr.count("\n") == 1


@kaggle
def test_offline(kaggle_creds, tmp_path, capsys):
    with pytest.raises(KitError) as err:  # credentials set, but nothing listens on :7777
        download_competition(SLUG, tmp_path / "raw")
    msg = assert_one_line(err)
    assert msg.startswith("cannot reach Kaggle (offline?)")
    assert capsys.readouterr().out == ""
    assert siblings(tmp_path / "raw") == []


@kaggle
@pytest.mark.parametrize(
    "status, expected",
    [
        (403, f"accept the competition rules at https://www.kaggle.com/c/{SLUG}/rules"),
        (429, "Kaggle rate limit hit (429)"),
        (500, "Kaggle server error (500)"),
    ],
)
def test_http_errors(kaggle_server, tmp_path, status, expected):
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))
    kaggle_server.fail("DownloadDataFiles", status)
    with pytest.raises(KitError) as err:
        download_competition(SLUG, tmp_path / "raw")
    assert expected in assert_one_line(err)
    assert not (tmp_path / "raw").exists()


@kaggle
def test_unknown_competition(kaggle_server, tmp_path):
    with pytest.raises(KitError) as err:
        download_competition("no-such-contest", tmp_path / "raw")
    msg = assert_one_line(err)
    assert "competition 'no-such-contest' not found on Kaggle (404)" in msg
    assert "data.competition in params.yaml" in msg


@kaggle
def test_bad_credentials(kaggle_server, kaggle_creds, tmp_path):
    kaggle_server.add_competition(SLUG, make_zip(CONTEST))
    kaggle_creds.write_kaggle_json(key="wrong")
    with pytest.raises(KitError) as err:
        download_competition(SLUG, tmp_path / "raw")
    assert "Kaggle rejected your credentials (401)" in assert_one_line(err)


@kaggle
def test_invalid_access_token_is_no_credentials(kaggle_server, kaggle_creds, tmp_path, monkeypatch):
    kaggle_creds.remove()
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_expired")
    with pytest.raises(KitError, match="^no Kaggle credentials"):
        download_competition(SLUG, tmp_path / "raw")


def test_bad_slug_names_params_key(tmp_path):
    with pytest.raises(KitError, match="data.competition in params.yaml"):
        download_competition("https://www.kaggle.com/c/x", tmp_path / "raw")


@kaggle
@pytest.mark.parametrize("failure", ["403", "corrupt", "zip-slip"])
def test_failure_midway_leaves_out_untouched(kaggle_server, tmp_path, failure):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "old.txt").write_text("old")
    if failure == "403":
        kaggle_server.add_competition(SLUG, make_zip(CONTEST))
        kaggle_server.fail("DownloadDataFiles", 403)
    elif failure == "corrupt":
        kaggle_server.add_competition(SLUG, make_zip(CONTEST)[:-40])  # cut: no central directory
    else:
        kaggle_server.add_competition(SLUG, make_zip({**CONTEST, "../escape.txt": "x"}))

    with pytest.raises(KitError) as err:
        download_competition(SLUG, out, force=True)

    msg = assert_one_line(err)
    if failure == "zip-slip":
        assert "'../escape.txt'" in msg
    assert listing(out) == ["old.txt"]
    assert siblings(out) == ["raw"]  # temp folders beside `out` cleaned up
    assert not (tmp_path / "escape.txt").exists()


@kaggle
def test_corrupt_member_leaves_out_untouched(kaggle_server, tmp_path):
    data = make_zip({"a.txt": "hello " * 100, "b.txt": "world " * 100}, method=zipfile.ZIP_STORED)
    kaggle_server.add_competition(SLUG, data.replace(b"world world", b"WORLD WORLD", 1))  # bad CRC in b.txt
    with pytest.raises(KitError) as err:
        download_competition(SLUG, tmp_path / "raw")
    assert "is corrupt" in assert_one_line(err)
    assert not (tmp_path / "raw").exists()
    assert siblings(tmp_path / "raw") == []


# --------------------------------------------------------------------------- safe_extract


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/kit-evil-abs.txt", "sub/../../evil.txt", "..\\evil.txt"])
def test_zip_slip_refused_and_nothing_extracted(tmp_path, evil):
    archive = tmp_path / "a.zip"
    make_zip({"ok.txt": "fine", evil: "pwned", "z.txt": "later"}, archive)
    dest = tmp_path / "dest"
    with pytest.raises(KitError) as err:
        safe_extract(archive, dest)
    msg = str(err.value)
    assert repr(evil) in msg and "nothing was extracted" in msg and "\n" not in msg
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/kit-evil-abs.txt").exists()


def test_safe_extract_returns_files_and_keeps_single_media_folder(tmp_path):
    make_zip({"train_mp3s/0.mp3": b"a", "train_mp3s/1.mp3": b"b"}, tmp_path / "clips.zip")
    dest = tmp_path / "dest"
    files = safe_extract(tmp_path / "clips.zip", dest)
    # a lone folder of one kind of file is the data, not a wrapper: it is kept
    assert files == [dest / "train_mp3s" / "0.mp3", dest / "train_mp3s" / "1.mp3"]


def test_safe_extract_flattens_wrapper_folder(tmp_path):
    make_zip({"data/train.csv": "a", "data/audio/0.wav": b"w", "data/test.csv": "t"}, tmp_path / "x.zip")
    dest = tmp_path / "dest"
    files = safe_extract(tmp_path / "x.zip", dest)
    assert listing(dest) == ["audio/0.wav", "test.csv", "train.csv"]
    assert files == sorted(dest / f for f in ["audio/0.wav", "test.csv", "train.csv"])


def test_nested_zip_of_bare_files_gets_its_own_folder(tmp_path):
    inner = make_zip({"0.mp3": b"a", "1.mp3": b"b"})
    make_zip({"train_mp3s.zip": inner, "train_label.txt": "0\n1\n"}, tmp_path / "c.zip")
    dest = tmp_path / "dest"
    safe_extract(tmp_path / "c.zip", dest)
    assert listing(dest) == ["train_label.txt", "train_mp3s/0.mp3", "train_mp3s/1.mp3"]


def test_nested_zip_slip_refused_and_outer_removed(tmp_path):
    inner = make_zip({"clips/0.mp3": b"a", "../../evil.txt": b"pwned"})
    make_zip({"clips.zip": inner, "label.txt": "x"}, tmp_path / "c.zip")
    dest = tmp_path / "dest"
    with pytest.raises(KitError, match=r"clips\.zip: member '\.\./\.\./evil\.txt'"):
        safe_extract(tmp_path / "c.zip", dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def make_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            payload = data.get(m.name)
            if payload is not None:
                m.size = len(payload)
                tf.addfile(m, io.BytesIO(payload))
            else:
                tf.addfile(m)
    return path


def tar_file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def tar_link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, target
    return m


def test_tar_extracts(tmp_path):
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [tar_file("train_label.txt"), tar_file("audio/0.wav"), tar_link("latest", "audio/0.wav")],
        {"train_label.txt": b"1\n", "audio/0.wav": b"RIFF"},
    )
    dest = tmp_path / "dest"
    safe_extract(archive, dest)
    assert (dest / "train_label.txt").read_bytes() == b"1\n"
    assert (dest / "latest").is_symlink() and (dest / "latest").read_bytes() == b"RIFF"


@pytest.mark.parametrize(
    "members, bad",
    [
        ([tar_file("../evil.txt")], "../evil.txt"),
        ([tar_file("/tmp/kit-evil-abs.txt")], "/tmp/kit-evil-abs.txt"),
        ([tar_link("up", "../..")], "up"),
        ([tar_link("etc", "/etc")], "etc"),
        ([tar_link("hard", "../outside", tarfile.LNKTYPE)], "hard"),
        ([tar_link("d", "."), tar_file("d/x.txt")], "d/x.txt"),  # written through a symlink
        ([tar_link("a", "b/c"), tar_link("b", "..")], "a"),  # a chain (a -> b/c, b -> ..): links through links refused
        ([tar_link("s", "t"), tar_link("t", "u/../../x")], "s"),  # a chain whose last link climbs out
    ],
)
def test_tar_slip_refused(tmp_path, members, bad):
    archive = make_tar(tmp_path / "a.tar", [tar_file("ok.txt"), *members], {"ok.txt": b"ok"})
    dest = tmp_path / "dest"
    with pytest.raises(KitError, match=f"member {bad!r}".replace(".", r"\.")):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_text("<html>sign in</html>")
    with pytest.raises(KitError, match="not a zip or tar archive"):
        safe_extract(tmp_path / "x.zip", tmp_path / "dest")
