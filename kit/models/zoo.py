"""The zoo: a decorator table of model factories, in the manner of timm's `_registry.py`.

Every factory takes `(num_classes, in_chans, drop_rate, stem, pretrained)` and returns an
`nn.Module` mapping (B, in_chans, F, T) to (B, num_classes) logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kit.errors import KitError

STEMS = ("default", "stride1")  # stride1: 3x3 stride-1 first conv, no max-pool (the earlier entrants' variant)


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable
    summary: str


_ENTRIES: dict[str, Entry] = {}


def register(name: str, summary: str = "") -> Callable:
    def deco(fn: Callable) -> Callable:
        if name in _ENTRIES:
            raise ValueError(f"model {name!r} registered twice")
        _ENTRIES[name] = Entry(name, fn, summary or (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def list_models() -> list[str]:
    return list(_ENTRIES)


def describe(name: str) -> str:
    return _ENTRIES[name].summary if name in _ENTRIES else f"timm model {name.removeprefix('timm:')}"


def create_model(
    name: str,
    *,
    num_classes: int,
    in_chans: int = 1,
    drop_rate: float = 0.0,
    stem: str = "default",
    pretrained: bool | str = False,
):
    """Build zoo entry `name` (or `timm:<any timm model>`)."""
    if stem not in STEMS:
        raise KitError(f"model stem {stem!r}: expected one of {', '.join(STEMS)}")
    if num_classes < 2:
        raise KitError(f"num_classes must be ≥ 2, got {num_classes}")
    if name.startswith("timm:"):
        from kit.models.timm_zoo import timm_model

        return timm_model(name.removeprefix("timm:"), num_classes, in_chans, drop_rate, stem, pretrained)
    if name not in _ENTRIES:
        raise KitError(f"unknown model {name!r}: choose one of {', '.join(_ENTRIES)} or timm:<name> (see `kit models`)")
    return _ENTRIES[name].factory(
        num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, stem=stem, pretrained=pretrained
    )
