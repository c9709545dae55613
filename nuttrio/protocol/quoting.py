"""Quoting of values on the wire, as NUT's ``pconf_encode`` does it."""

from __future__ import annotations

__all__ = ["encode", "quote"]

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "#": "\\#"})


def encode(value: str) -> str:
    r"""Backslash-escape ``\\``, ``"`` and ``#`` so that NUT's tokenizer reads ``value`` back.

    Args:
        value: The raw text.

    Returns:
        The escaped text, without surrounding quotes.
    """
    if "\\" in value or '"' in value or "#" in value:
        return value.translate(_ESCAPES)
    return value


def quote(value: str) -> str:
    """Return ``value`` escaped and wrapped in double quotes."""
    return f'"{encode(value)}"'
