"""Reading the text files users hand kit (params.yaml, manifests, label lists, group CSVs) as UTF-8."""

from __future__ import annotations

from pathlib import Path

from kit.errors import InputError, KitError


def read_utf8(path: Path, prefix: str = "", error: type[KitError] = InputError) -> str:
    """The text of `path`, a UTF-8 BOM (Excel's) dropped; `error` naming the file and the line of the
    first byte that is not UTF-8 (after `prefix`, e.g. the key that named the file)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(
            f"{prefix}{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8"
        ) from None
