"""timm-backed zoo entries, 1-channel input, the earlier entrants' stem variant, local pretrained weights."""

from __future__ import annotations

from pathlib import Path

from kit.errors import KitError
from kit.models.zoo import register


def timm_model(arch: str, num_classes: int, in_chans: int, drop_rate: float, stem: str, pretrained: bool | str):
    """`timm.create_model` with kit's options.

    pretrained: False; True (timm's hub weights, when they can be reached); or a local weights
    file (.safetensors / .pth / .bin) — timm adapts the first conv to `in_chans` and drops a
    classifier of another size.
    """
    import timm

    if not timm.is_model(arch):
        raise KitError(f"unknown timm model {arch!r} (see timm.list_models())")
    kwargs = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate}
    if isinstance(pretrained, str) and pretrained:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise KitError(f"pretrained weights file {path} not found")
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    elif pretrained:
        kwargs["pretrained"] = True
    try:
        model = timm.create_model(arch, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if not pretrained:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KitError(
            f"could not load pretrained weights for {arch} ({first[:160]}): "
            "pass a local weights file (pretrained: path/to/weights.safetensors) or set pretrained: false"
        ) from None
    if stem == "stride1":
        stride1_stem(model)
    return model


def stride1_stem(model) -> None:
    """First conv -> 3x3 stride 1 (same width, fresh weights); first max-pool -> identity."""
    from torch import nn

    conv_name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    _replace(model, conv_name, nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None))
    pool = next((n for n, m in model.named_modules() if isinstance(m, nn.MaxPool2d)), None)
    if pool is not None:
        _replace(model, pool, nn.Identity())


def _replace(model, dotted: str, new) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _entry(arch: str, summary: str) -> None:
    def factory(num_classes, in_chans, drop_rate, stem, pretrained):
        return timm_model(arch, num_classes, in_chans, drop_rate, stem, pretrained)

    register(arch if arch != "resnext50_32x4d" else "resnext50", summary)(factory)


_entry("resnet18", "timm resnet18")
_entry("resnet34", "timm resnet34 (earlier entrants A/B/C)")
_entry("resnext50_32x4d", "timm resnext50_32x4d (entrant D)")
_entry("densenet201", "timm densenet201 (entrant D)")
