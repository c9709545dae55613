"""Replies a NUT server sends, built as bytes exactly as upsd 2.8.0 formats them.

Every constructor returns a :class:`Reply`: the bytes of one reply line, or of one whole
``BEGIN LIST … END LIST`` block, so that a server can send it in a single write.

Formatting rules (upsd 2.8.0): values and UPS descriptions are escaped and quoted; variable
and command descriptions and the client's echoed names are sent raw. A single-line reply
longer than 511 bytes plus LF (which upsd would cut, losing the LF) becomes
``ERR INVALID-ARGUMENT`` instead (see docs/compat.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .errors import ErrCode
from .quoting import quote

__all__ = [
    "HELP_TEXT",
    "HELP_TEXT_RFC",
    "MAX_LINE",
    "NETVER_TEXT",
    "SERVER_VERSION",
    "VER_TEXT",
    "Reply",
    "block",
    "cmddesc",
    "desc",
    "err",
    "line",
    "numlogins",
    "ok",
    "type_",
    "upsdesc",
    "var",
]

#: The NUT release whose protocol nuttrio speaks, as ``server.version`` reports it.
SERVER_VERSION = "2.8.0"
#: The reply to ``VER``; keeps upsd's shape so clients that take the fifth word get 2.8.0.
VER_TEXT = f"Network UPS Tools upsd {SERVER_VERSION} (nuttrio) - http://www.networkupstools.org/"
#: The reply to ``NETVER`` and ``PROTVER``.
NETVER_TEXT = "1.3"
#: upsd 2.8.0's reply to ``HELP``.
HELP_TEXT = "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"
#: RFC 9271's reply to ``HELP``, for sessions that speak its vocabulary.
HELP_TEXT_RFC = "Commands: HELP VER GET LIST SET INSTCMD ATTACH DETACH USERNAME PASSWORD STARTTLS"
#: Longest reply line libupsclient can read, LF included.
MAX_LINE = 512


@attrs.frozen
class Reply:
    """One reply, ready for the wire.

    Attributes:
        data: The bytes to send, LF-terminated.
        error: The error token if this is an ``ERR`` reply, else ``None``.
    """

    data: bytes
    error: ErrCode | None = None

    @property
    def ok(self) -> bool:
        """Whether this reply reports success."""
        return self.error is None


def err(code: ErrCode) -> Reply:
    """``ERR <token>``."""
    return Reply(f"ERR {code.value}\n".encode(), code)


def line(text: str) -> Reply:
    """A single reply line; too long a line becomes ``ERR INVALID-ARGUMENT``."""
    data = f"{text}\n".encode()
    if len(data) > MAX_LINE:
        return err(ErrCode.INVALID_ARGUMENT)
    return Reply(data)


def ok(detail: str | None = None) -> Reply:
    """``OK`` or ``OK <detail>``."""
    return line("OK" if detail is None else f"OK {detail}")


def var(ups: str, name: str, value: str) -> Reply:
    """``VAR <ups> <var> "<value>"``."""
    return line(f"VAR {ups} {name} {quote(value)}")


def type_(ups: str, name: str, tokens: Iterable[str]) -> Reply:
    """``TYPE <ups> <var> <token>…``."""
    return line(" ".join(("TYPE", ups, name, *tokens)))


def desc(ups: str, name: str, text: str) -> Reply:
    """``DESC <ups> <var> "<text>"``; the text is not escaped, as upsd sends it."""
    return line(f'DESC {ups} {name} "{text}"')


def cmddesc(ups: str, name: str, text: str) -> Reply:
    """``CMDDESC <ups> <cmd> "<text>"``; the text is not escaped, as upsd sends it."""
    return line(f'CMDDESC {ups} {name} "{text}"')


def upsdesc(ups: str, text: str) -> Reply:
    """``UPSDESC <ups> "<text>"``, escaped."""
    return line(f"UPSDESC {ups} {quote(text)}")


def numlogins(ups: str, count: int, *, rfc: bool = False) -> Reply:
    """``NUMLOGINS <ups> <n>``, or ``NUMATTACH <ups> <n>`` in RFC 9271's vocabulary."""
    return line(f"{'NUMATTACH' if rfc else 'NUMLOGINS'} {ups} {count}")


def block(header: str, lines: Iterable[str]) -> Reply:
    """A whole list: ``BEGIN LIST <header>``, the lines, ``END LIST <header>``.

    Args:
        header: The words after ``LIST``, e.g. ``"VAR myups"``.
        lines: The body lines, without LF.
    """
    parts = [f"BEGIN LIST {header}"]
    parts.extend(lines)
    parts.append(f"END LIST {header}\n")
    return Reply("\n".join(parts).encode())
