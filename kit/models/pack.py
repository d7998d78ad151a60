"""Several models of one architecture as one wider model: a grouped convolution per layer.

Member g's convolutions see only member g's channels, its BatchNorm normalises only its own
channels, and its head reads only its own features, so training the packed model on inputs (B, G*C, F, T)
with the sum of the members' losses trains G independent models, each on its own batch, in
G-times-wider kernels instead of G separate launches (what a GPU needs at batch 32). `pack`
builds the packed model from G built models (their own initialisations); `member_state` gives one
member's weights back as its own model's state_dict.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from kit.errors import KitError


class GroupedLinear(nn.Module):
    """G linear layers side by side: (B, G*in) -> (B, G*out)."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., G*in) -> (..., G*out)
        g, out, inp = self.weight.shape
        y = torch.einsum("...gi,goi->...go", x.unflatten(-1, (g, inp)), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.flatten(-2)


class Packed(nn.Module):
    """G models in one. (B, G, C, F, T) inputs, member g's batch at [:, g], give (B, G, K) logits;
    (B, C, F, T) inputs go to every member alike (validation, prediction)."""

    def __init__(self, net: nn.Module, groups: int):
        super().__init__()
        self.net, self.groups = net, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(1).expand(-1, self.groups, -1, -1, -1)
        b, g, c, f, t = x.shape
        wide = x.reshape(b, g * c, f, t).contiguous(memory_format=torch.channels_last)
        return self.net(wide).reshape(b, g, -1)


def pack(models: list[nn.Module], example: torch.Tensor, arch: str) -> Packed:
    """One Packed model computing what `models` (same architecture `arch`) compute, from their
    weights. Only Conv2d, BatchNorm2d and Linear layers are widened; a model with other layers
    that hold weights, or whose forward code mixes channels (concatenating or splitting them), is
    refused: a pack of two perturbed copies must give each copy's logits on `example`, a
    (B, C, F, T) input batch (perturbed: zero-initialised layers would hide a branch)."""
    gen = torch.Generator().manual_seed(0)  # not torch's global one: the training's draws stay as they were
    probes = [_perturbed(copy.deepcopy(models[0]), gen) for _ in range(2)]
    _check(_pack(probes, arch), probes, example, arch)
    return _pack(models, arch)


def _pack(models: list[nn.Module], arch: str) -> Packed:
    g = len(models)
    net = copy.deepcopy(models[0])
    members = [dict(m.named_modules()) for m in models]
    for name, module in list(net.named_modules()):
        wide = _widen(module, g)
        if wide is None:
            if any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
                raise KitError(
                    f"cannot pack {arch}: it has a {type(module).__name__} layer (only Conv2d, BatchNorm2d and "
                    "Linear layers pack); train it without train.pack"
                )
            continue
        with torch.no_grad():
            for key, tensor in _members_state(wide).items():
                tensor.copy_(torch.stack([_state(ms[name])[key] for ms in members]).reshape(tensor.shape))
        _set(net, name, wide)
    return Packed(net, g)


def _perturbed(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """Weights scaled by 1 ± ~10%; BatchNorm scales and biases also shifted (zero ones too)."""
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1 + 0.1 * torch.randn(param.shape, generator=gen))
            if param.dim() == 1:
                param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model


def _check(packed: Packed, models: list[nn.Module], example: torch.Tensor, arch: str) -> None:
    """Refuse a packed model whose logits are not its members' (forward code that mixes channels)."""
    modes = [m.training for m in (packed, *models)]
    for m in (packed, *models):
        m.eval()
    try:
        with torch.no_grad():
            got = packed(example)
            want = torch.stack([m(example) for m in models], 1)
        ok = got.shape == want.shape and torch.allclose(got, want, rtol=1e-3, atol=1e-3 * want.abs().max().item())
    except RuntimeError:
        ok = False
    finally:
        for m, mode in zip((packed, *models), modes):
            m.train(mode)
    if not ok:
        raise KitError(
            f"cannot pack {arch}: its forward mixes channels outside its layers; train it without train.pack"
        )


def member_state(packed: Packed, g: int) -> dict[str, torch.Tensor]:
    """Member g's state_dict, keyed and shaped as its own model's (copies)."""
    out = {}
    for name, module in packed.net.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.BatchNorm2d, GroupedLinear)):
            continue
        for key, tensor in _state(module).items():
            if key == "num_batches_tracked":
                part = tensor
            elif isinstance(module, GroupedLinear):
                part = tensor[g]
            else:
                part = tensor.reshape(packed.groups, -1, *tensor.shape[1:])[g]
            out[f"{name}.{key}" if name else key] = part.detach().clone()
    return out


def _widen(module: nn.Module, g: int) -> nn.Module | None:
    if type(module) is nn.Conv2d:  # exact types: subclasses (timm's BatchNormAct2d, Conv2dSame) do more
        return nn.Conv2d(
            module.in_channels * g,
            module.out_channels * g,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups * g,
            module.bias is not None,
            module.padding_mode,
        )
    if type(module) is nn.BatchNorm2d:
        return nn.BatchNorm2d(
            module.num_features * g, module.eps, module.momentum, module.affine, module.track_running_stats
        )
    if type(module) is nn.Linear:
        return GroupedLinear(g, module.in_features, module.out_features, module.bias is not None)
    return None


def _members_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The per-member tensors of a widened module (num_batches_tracked is shared: every member
    steps together)."""
    return {k: v for k, v in _state(module).items() if k != "num_batches_tracked"}


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict(keep_vars=True).items() if "." not in k and v is not None}


def _set(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent, _, child = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)
