"""Quoting of values on the wire, as NUT's ``pconf_encode`` does it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import LocalProtocolError
from .tokenizer import ARG_LIMIT, WORD_LIMIT

__all__ = ["encode", "quote", "request_line", "request_word"]

# A request word must be quoted if the tokenizer would otherwise split, strip or comment it.
_NEEDS_QUOTES = re.compile(r'[ "#\\=]')
# Characters NUT's tokenizer would drop (control characters, non-ASCII): refused in requests.
_UNSENDABLE = re.compile(r"[^\x20-\x7f]")

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


def request_word(word: str) -> str:
    r"""A request word as it must be written for NUT's tokenizer to read it back unchanged.

    Quoted (and escaped) only when needed: when empty or holding a space, ``"``, ``#``,
    ``\`` or ``=``.

    Raises:
        LocalProtocolError: If the word is longer than 512 characters (upsd cuts it) or holds
            a character NUT drops (below 0x20, above 0x7F).
    """
    if _UNSENDABLE.search(word):
        raise LocalProtocolError(f"NUT cannot carry {word!r}: only ASCII 0x20-0x7F is kept")
    if len(word) > WORD_LIMIT:
        raise LocalProtocolError(f"word longer than {WORD_LIMIT} characters: upsd cuts it")
    return quote(word) if not word or _NEEDS_QUOTES.search(word) else word


def request_line(words: Sequence[str]) -> bytes:
    r"""One request line: ``("SET", "VAR", "u", "v", "a b")`` → ``b'SET VAR u v "a b"\n'``.

    Raises:
        LocalProtocolError: If there are no words or more than 32, or a word cannot be sent
            (see :func:`request_word`).
    """
    if not words or len(words) > ARG_LIMIT:
        raise LocalProtocolError(f"a request has 1 to {ARG_LIMIT} words, not {len(words)}")
    return (" ".join(request_word(word) for word in words) + "\n").encode("ascii")
