"""Training state round-trips through a checkpoint folder without pickle."""

from __future__ import annotations

import torch

from kit.training import checkpoint


def test_a_resumed_optimizer_state_is_laid_out_like_its_channels_last_weights(tmp_path):
    # fused CUDA AdamW refuses state whose strides differ from the weight's; the file holds it contiguous
    model = torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    opt.step()
    tensors, rest = checkpoint.flatten_optimizer(opt.state_dict())
    checkpoint.save(tmp_path, tensors, {"optimizer": rest})
    saved, meta = checkpoint.load(tmp_path)

    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    checkpoint.load_optimizer(fresh, saved, meta["optimizer"])
    state = fresh.state[model.weight]
    for name in ("exp_avg", "exp_avg_sq"):
        assert state[name].stride() == model.weight.stride() != saved[f"optim.0.{name}"].stride()
        assert torch.equal(state[name], opt.state[model.weight][name])
