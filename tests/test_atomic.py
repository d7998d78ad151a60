"""Written files follow the user's umask, whatever mode the library that wrote them chose."""

from __future__ import annotations

import os
import stat

import pytest
from safetensors.numpy import save_file

from kit.atomic import atomic_dir, atomic_write, umask


@pytest.fixture(params=[0o002, 0o022, 0o077])
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_landed_files_and_folders_get_the_umask_modes(tmp_path, mask):
    import numpy as np

    assert umask() == mask and umask() == mask  # read without changing it
    with atomic_dir(tmp_path / "run") as tmp:
        save_file({"w": np.zeros(3, np.float32)}, str(tmp / "model.safetensors"))
        fd = os.open(tmp / "private.json", os.O_WRONLY | os.O_CREAT, 0o600)  # as a careful library might
        os.close(fd)
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "x.npy").write_bytes(b"")
    run = tmp_path / "run"
    assert _mode(run) == _mode(run / "sub") == 0o777 & ~mask
    for name in ("model.safetensors", "private.json", "sub/x.npy"):
        assert _mode(run / name) == 0o666 & ~mask, name
    atomic_write(tmp_path / "index.json", b"{}")
    assert _mode(tmp_path / "index.json") == 0o666 & ~mask


def test_without_proc_the_umask_read_at_import_is_used_and_never_set_again(monkeypatch):
    import kit.atomic

    def no_set(mask):
        raise AssertionError("os.umask called after import: it changes the umask for every thread")

    monkeypatch.setattr(kit.atomic, "_proc_umask", lambda: None)
    monkeypatch.setattr(kit.atomic, "_IMPORT_UMASK", 0o027)
    monkeypatch.setattr(os, "umask", no_set)
    assert umask() == 0o027
