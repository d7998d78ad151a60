"""Training state round-trips through a checkpoint folder without pickle."""

from __future__ import annotations

import threading

import pytest
import torch

from kit.errors import KitError
from kit.training import checkpoint


@pytest.fixture
def slow_disk(monkeypatch) -> threading.Event:
    """Checkpoint writes wait until the returned event is set."""
    release, write = threading.Event(), checkpoint._write
    monkeypatch.setattr(checkpoint, "_write", lambda *a: (release.wait(10), write(*a)))
    return release


def test_a_resumed_optimizer_state_is_laid_out_like_its_channels_last_weights(tmp_path):
    # fused CUDA AdamW refuses state whose strides differ from the weight's; the file holds it contiguous
    model = torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    opt.step()
    tensors, rest = checkpoint.flatten_optimizer(opt.state_dict())
    with checkpoint.Writer() as writer:
        writer.save(tmp_path, tensors, {"optimizer": rest})
    saved, meta = checkpoint.load(tmp_path)

    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    checkpoint.load_optimizer(fresh, saved, meta["optimizer"])
    state = fresh.state[model.weight]
    for name in ("exp_avg", "exp_avg_sq"):
        assert state[name].stride() == model.weight.stride() != saved[f"optim.0.{name}"].stride()
        assert torch.equal(state[name], opt.state[model.weight][name])


def test_a_checkpoint_is_written_while_training_goes_on_and_holds_the_state_it_was_handed(tmp_path, slow_disk):
    weight = torch.arange(24.0).reshape(1, 2, 3, 4).to(memory_format=torch.channels_last)
    count = torch.tensor(1)  # contiguous on the CPU already, like the moving average's step count
    history = [{"epoch": 0}]
    writer = checkpoint.Writer()
    writer.save(tmp_path / "ckpt", {"w": weight, "count": count}, {"history": history})
    assert checkpoint.load(tmp_path / "ckpt") is None  # save returned before the write: training goes on
    weight.mul_(-1)  # the next steps change the live state in place
    count += 1
    history.append({"epoch": 1})
    slow_disk.set()
    writer.wait()
    saved, meta = checkpoint.load(tmp_path / "ckpt")
    assert torch.equal(saved["w"], torch.arange(24.0).reshape(1, 2, 3, 4)) and meta["history"] == [{"epoch": 0}]
    assert saved["count"].item() == 1


def test_a_training_that_fails_lets_its_checkpoint_finish_and_reports_its_own_error(tmp_path, slow_disk):
    threading.Timer(0.2, slow_disk.set).start()
    with pytest.raises(KeyboardInterrupt), checkpoint.Writer() as writer:
        writer.save(tmp_path / "ckpt", {"w": torch.ones(3)}, {"epoch": 4})
        raise KeyboardInterrupt  # Ctrl-C in the middle of the next epoch
    assert checkpoint.load(tmp_path / "ckpt")[1] == {"epoch": 4}  # written whole before the error went up
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_a_failed_checkpoint_write_reaches_the_training_and_leaves_the_last_good_one(tmp_path, monkeypatch):
    import safetensors.torch

    writer = checkpoint.Writer()
    writer.save(tmp_path / "ckpt", {"w": torch.ones(3)}, {"epoch": 0})
    writer.wait()

    def disk_full(tensors, path):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    writer.save(tmp_path / "ckpt", {"w": torch.zeros(3)}, {"epoch": 1})  # fails in the background
    with pytest.raises(KitError, match="no space left on the device of .* while writing ckpt: nothing half-written"):
        writer.wait()
    saved, meta = checkpoint.load(tmp_path / "ckpt")
    assert meta == {"epoch": 0} and torch.equal(saved["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no half-written folder beside it
    writer.wait()  # the error was handed over once


def test_a_kill_between_the_two_renames_of_a_replace_resumes_from_the_checkpoint_set_aside(tmp_path, monkeypatch):
    import os

    with checkpoint.Writer() as writer:
        writer.save(tmp_path / "ckpt", {"w": torch.ones(3)}, {"epoch": 4})
    real, calls = os.replace, []

    def killed_after_the_first(src, dst):  # atomic_dir: checkpoint -> .ckpt.old-PID, then tmp -> checkpoint
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies here: the new checkpoint never gets its name
        real(src, dst)

    monkeypatch.setattr(os, "replace", killed_after_the_first)
    with pytest.raises(KeyboardInterrupt), checkpoint.Writer() as writer:
        writer.save(tmp_path / "ckpt", {"w": torch.zeros(3)}, {"epoch": 5})
    monkeypatch.undo()
    assert not (tmp_path / "ckpt").exists()
    saved, meta = checkpoint.load(tmp_path / "ckpt")
    assert meta == {"epoch": 4} and torch.equal(saved["w"], torch.ones(3))
