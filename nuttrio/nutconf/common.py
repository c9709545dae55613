"""The helpers every NUT configuration file shares: lines, words, numbers, names, messages.

Every file is split with NUT's own tokenizer (:func:`nuttrio.protocol.tokenizer.split_text`)
in its configuration mode, so comments, quoting, backslash escapes and the ``=`` word mean
what they mean to NUT's daemons, except that a quoted word must end on the line where it
began (see :func:`read_config_lines`).

Problems are reported in two ways, the same for every file:

* :class:`ConfigError` (raised): nuttrio refuses the file; it names the file and line;
* :class:`ConfigWarning` (collected): what NUT would only log and which changes nothing a
  user relies on; ``str()`` gives ``"<file>:<line>: <text>"``.

A loader is a table of directive handlers (:data:`Handler`), run by :func:`dispatch`; the
C functions NUT reads numbers with (``atoi``, ``strtol``) are reproduced here once, each
under its own name.

This module performs no I/O beyond reading the file it is given.
"""

from __future__ import annotations

import difflib
import logging
import re
import ssl
import stat
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from nuttrio.protocol.tokenizer import LineError, split_text

__all__ = [
    "DEFAULT_PORT",
    "UPSD_BOOLEANS",
    "UPSMON_BOOLEANS",
    "ConfigError",
    "ConfigWarning",
    "Directive",
    "Handler",
    "atoi",
    "close_matches",
    "dispatch",
    "fold",
    "frozen_map",
    "host_port",
    "invalid_directive",
    "is_nss_database",
    "load_ca_locations",
    "parse_bool",
    "parse_int",
    "parse_pin",
    "parse_section_header",
    "read_config_lines",
    "repeated_directive",
    "shell_syntax",
    "split_host_port",
    "strtol",
    "upper",
    "warning_sink",
    "where",
    "world_readable",
]

#: The NUT port (IANA ``nut``, 3493/tcp), used wherever a port is not given.
DEFAULT_PORT = 3493

# C's toupper/tolower in the C locale (strcasecmp) change ASCII letters only.
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

_LEADING_INT = re.compile(r"[ \t\n\r\v\f]*([+-]?[0-9]+)")
_UNSIGNED = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


def fold(text: str) -> str:
    """Return ``text`` with ASCII letters lowered, as C ``strcasecmp`` compares."""
    return text.translate(_LOWER)


def upper(text: str) -> str:
    """Return ``text`` with ASCII letters raised, as C ``strcasecmp`` compares."""
    return text.translate(_UPPER)


def where(path: Path, lineno: int | None) -> str:
    """Return ``"<file>:<line>"`` (or ``"<file>"`` without a line), as messages start."""
    return f"{path}:{lineno}" if lineno else f"{path}"


#: The logger for configuration messages (one name for every file, as before the split).
log = logging.getLogger("nuttrio.config")


def frozen_map(table: Mapping[str, object]) -> Mapping[str, Any]:
    """A read-only copy of ``table`` (the attrs converter of every mapping field here)."""
    return MappingProxyType(dict(table))


# ---------------------------------------------------------------------------------------
# Messages


class ConfigError(Exception):
    """A configuration problem, with the file and line where it was found.

    Args:
        message: What is wrong.
        path: The file, if known.
        lineno: The 1-based line, if known.
    """

    def __init__(self, message: str, path: Path | None = None, lineno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.lineno = lineno

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{where(self.path, self.lineno)}: {self.message}"


@attrs.frozen
class ConfigWarning:
    """A problem NUT would only log: the file, the line (if any) and what is wrong.

    ``str()`` is ``"<file>:<line>: <message>"`` (``"<file>: <message>"`` without a line),
    the text that is logged.

    Attributes:
        path: The file.
        lineno: The 1-based line, or ``None`` for the file as a whole.
        message: What is wrong.
    """

    path: Path
    lineno: int | None
    message: str

    def __str__(self) -> str:
        return f"{where(self.path, self.lineno)}: {self.message}"


def warning_sink(warnings: list[ConfigWarning] | None) -> Callable[[ConfigWarning], None]:
    """Where a loader puts its warnings: ``warnings`` if given, else the log."""
    if warnings is not None:
        return warnings.append
    return lambda warning: log.warning("%s", warning)


def _case_hint(name: str, known: Collection[str], what: str) -> str:
    if upper(name) in known:
        return f" ({what} are case-sensitive: {upper(name)})"
    return ""


def invalid_directive(
    path: Path, lineno: int, words: tuple[str, ...], known: Collection[str]
) -> ConfigWarning:
    """The warning for a line whose directive is unknown (NUT logs and ignores it).

    Args:
        path: The file.
        lineno: The line.
        words: The line's words; the first is the directive.
        known: The file's directive names, for a hint when only the case is wrong.
    """
    hint = _case_hint(words[0], known, "directive names")
    return ConfigWarning(path, lineno, f"invalid directive {' '.join(words)!r}{hint}; ignored")


def repeated_directive(path: Path, lineno: int, what: str, first: int) -> ConfigWarning:
    """The warning for a setting given a second time (the last one wins, as in NUT).

    Args:
        path: The file.
        lineno: The line of the repetition.
        what: The setting, as the message names it (``"NOTIFYMSG ONLINE"``).
        first: The line where it was first given.
    """
    return ConfigWarning(
        path, lineno, f"{what} repeated (first on line {first}); the last one is used"
    )


# ---------------------------------------------------------------------------------------
# Lines and directives


def read_config_lines(path: Path, what: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Yield ``(lineno, words)`` for every non-empty line of a NUT config file.

    Used for every NUT file nuttrio reads (ups.conf, upsd.conf, upsd.users, upsmon.conf,
    upssched.conf, nut.conf), so they all follow NUT's tokenizer, with one difference:
    a quoted word must end on its line. NUT's parseconf reads on past the end of the line
    (``password = "secret`` swallows every following line up to the next ``"``); nuttrio
    reports "missing closing quote" at the line where the quoted word began. (A
    backslash just before the end of the line still continues the word, as in NUT.)

    Args:
        path: The file.
        what: Its name for messages (``"upsd.conf"``).

    Raises:
        ConfigError: If the file cannot be read, or for the first line the tokenizer
            rejects (NUT's daemons log "Parse error" and drop that line; nuttrio refuses).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot read {what}: {reason}", path) from exc
    for item in split_text(data, quotes_end_at_eol=True):
        if isinstance(item, LineError):
            raise ConfigError(f"parse error: {item.message}", path, item.lineno)
        yield item.lineno, item.words


@attrs.frozen
class Directive:
    """One line of a configuration file, as a loader's handler receives it.

    Attributes:
        path: The file.
        lineno: The line.
        words: Its words; the first is the directive (or key).
    """

    path: Path
    lineno: int
    words: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first word."""
        return self.words[0]

    @property
    def args(self) -> tuple[str, ...]:
        """The words after the first."""
        return self.words[1:]

    def error(self, message: str) -> ConfigError:
        """A :class:`ConfigError` at this line (to raise)."""
        return ConfigError(message, self.path, self.lineno)

    def warning(self, message: str) -> ConfigWarning:
        """A :class:`ConfigWarning` at this line."""
        return ConfigWarning(self.path, self.lineno, message)

    def value(self, program: str, *, most: int = 1, wanted: str = "one value") -> str:
        """The first value of a directive that takes one (or up to ``most``) values.

        Args:
            program: The NUT program, for the message (it ignores such a line).
            most: The most values the directive takes.
            wanted: What it takes, for the message.

        Raises:
            ConfigError: If there is no value, or more than ``most``.
        """
        if not self.args:
            raise self.error(f"{self.name} needs a value ({program} ignores this line)")
        if len(self.args) > most:
            raise self.error(
                f"{self.name} takes {wanted}, got {' '.join(self.args)!r} ({program} ignores "
                "the extra words; quote a value that contains spaces)"
            )
        return self.args[0]

    def check_count(self, least: int, most: int, usage: str, program: str = "upsmon") -> None:
        """Check the number of words after the directive name.

        Raises:
            ConfigError: With ``usage`` in the message, if there are too few or too many.
        """
        if len(self.args) < least:
            raise self.error(f"{self.name} needs {usage} ({program} ignores this line)")
        if len(self.args) > most:
            raise self.error(
                f"too many words for {self.name} {usage}: {' '.join(self.args)!r} "
                "(NUT ignores the extra words; quote a value that contains spaces)"
            )


_Draft = TypeVar("_Draft")

#: A directive handler: it updates the loader's draft from one line, or raises
#: :class:`ConfigError`.
Handler = Callable[[_Draft, Directive], None]


def dispatch(
    path: Path,
    what: str,
    table: Mapping[str, Handler[_Draft]],
    draft: _Draft,
    warnings: list[ConfigWarning],
    *,
    canonical: Callable[[str], str] = str,
) -> None:
    """Read a file line by line and hand each line to its directive's handler.

    A directive missing from ``table`` gets :func:`invalid_directive` (NUT logs and
    ignores it); the loop stops at the first :class:`ConfigError`.

    Args:
        path: The file.
        what: Its name for messages.
        table: Directive name -> handler.
        draft: The loader's mutable state, passed to every handler.
        warnings: Where unknown directives are reported.
        canonical: Maps a first word to the table's key (for a directive NUT reads in
            any case); the handler sees the key as the line's first word.

    Raises:
        ConfigError: From :func:`read_config_lines` or a handler.
    """
    for lineno, words in read_config_lines(path, what):
        name = canonical(words[0])
        handler = table.get(name)
        if handler is None:
            warnings.append(invalid_directive(path, lineno, words, table))
            continue
        handler(draft, Directive(path, lineno, (name, *words[1:])))


def parse_section_header(d: Directive, kind: str) -> str | None:
    """Return the name of a ``[name]`` header line, or ``None`` if this is not one.

    NUT treats any first word that starts with ``[`` and ends with ``]`` as a header and
    ignores whatever follows on the line; nuttrio refuses those extra words, an empty name
    and a first word that starts with ``[`` but is not a header.

    Raises:
        ConfigError: For those three cases.
    """
    first = d.name
    if not first.startswith("["):
        return None
    if len(first) < 2 or not first.endswith("]"):
        raise d.error(
            f"malformed section header {first!r} (a {kind} name with spaces must be quoted: "
            f'"[my name]")'
        )
    name = first[1:-1]
    if not name:
        raise d.error(f"empty {kind} name in section header '[]'")
    if d.args:
        raise d.error(
            f"unexpected text after section header [{name}]: {' '.join(d.args)!r} "
            "(upsd ignores it; put each setting on its own line)"
        )
    return name


def readable_by_others(path: Path, mask: int = stat.S_IROTH) -> bool:
    """Whether the file's mode has any bit of ``mask`` (default: others may read it)."""
    try:
        return bool(path.stat().st_mode & mask)
    except OSError:
        return False


def world_readable(path: Path) -> ConfigWarning | None:
    """Upsd's warning for a file others may read (``check_perms`` in upsd.c), if it is one."""
    if readable_by_others(path, stat.S_IROTH | stat.S_IXOTH):
        return ConfigWarning(path, None, "file is world readable")
    return None


def is_nss_database(path: Path) -> bool:
    """Whether ``path`` is a directory holding an NSS certificate database (NUT's NSS build)."""
    names = ("cert9.db", "cert8.db", "key4.db", "key3.db")
    return path.is_dir() and any((path / name).exists() for name in names)


def load_ca_locations(ctx: ssl.SSLContext, ca: Path) -> None:
    """Load a ``CERTPATH`` CA into ``ctx``: a PEM file, or a directory of PEM certificates.

    A directory is used as OpenSSL's hashed directory and, since one written by hand has
    no hashed names, each ``*.pem``/``*.crt`` file in it is loaded too.

    Raises:
        OSError, ssl.SSLError: If it cannot be read or holds no certificate.
    """
    if not ca.is_dir():
        ctx.load_verify_locations(cafile=str(ca))
        return
    ctx.load_verify_locations(capath=str(ca))
    for item in sorted(ca.iterdir()):
        if item.suffix in (".pem", ".crt") and item.is_file():
            ctx.load_verify_locations(cafile=str(item))


def close_matches(word: str, candidates: Collection[str]) -> list[str]:
    """The candidates that ``word`` may be a misspelling of, best first (difflib ratio 0.6)."""
    return difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)


# ---------------------------------------------------------------------------------------
# Numbers, booleans, addresses


def strtol(text: str, bits: int = 64) -> int:
    """C ``strtol(text, NULL, 10)``: the leading integer, saturated to ``bits`` bits.

    Leading C whitespace and a sign are allowed; text without a leading integer gives 0.
    """
    match = _LEADING_INT.match(text)
    if match is None:
        return 0
    limit = 1 << (bits - 1)
    return max(-limit, min(limit - 1, int(match.group(1))))


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:3493``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def atoi(text: str) -> int:
    """C ``atoi`` as glibc does it: ``strtol`` (64-bit) truncated to a 32-bit ``int``."""
    value = strtol(text) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def parse_pin(text: str) -> bytes:
    """The 32 bytes of a SHA-256 certificate pin written as hex, with or without colons.

    ``sha256:`` / ``SHA256 Fingerprint=`` prefixes (as openssl prints them) and spaces are
    allowed; case does not matter.

    Raises:
        ValueError: If it is not 64 hex digits.
    """
    cleaned = text.strip()
    for prefix in ("sha256:", "sha256=", "sha256 fingerprint="):
        if fold(cleaned).startswith(prefix):
            cleaned = cleaned[len(prefix) :]
    cleaned = cleaned.replace(":", "").replace(" ", "")
    if len(cleaned) != 64 or not _HEX.fullmatch(cleaned):
        raise ValueError(
            "a pin is the SHA-256 fingerprint of the certificate: 64 hex digits "
            f"(colons allowed), not {text!r}"
        )
    return bytes.fromhex(cleaned)


def parse_int(
    word: str,
    d: Directive,
    *,
    signed: bool = True,
    minimum: int | None = None,
    what: str = "a whole number",
    why: str = "",
) -> int:
    """Parse a whole number strictly, where NUT's ``atoi`` would read garbage as 0.

    Args:
        word: The text.
        d: The line (its directive names the setting in the message).
        signed: Accept a leading ``-``.
        minimum: The smallest value accepted, if any.
        what: What the directive needs, for the message.
        why: Why values below ``minimum`` are refused, for the message.

    Raises:
        ConfigError: If ``word`` is not all digits (with an optional ``-``) or too small.
    """
    if not (_SIGNED if signed else _UNSIGNED).fullmatch(word):
        raise d.error(f"{d.name} needs {what}, not {word!r}")
    value = int(word)
    if minimum is not None and value < minimum:
        reason = f" ({why})" if why else ""
        raise d.error(f"{d.name} must be {minimum} or more, not {value}{reason}")
    return value


#: upsd's ``parse_boolean`` (server/conf.c): these words, in any case.
UPSD_BOOLEANS: tuple[frozenset[str], frozenset[str]] = (
    frozenset({"true", "on", "yes", "1"}),
    frozenset({"false", "off", "no", "0"}),
)
#: upsmon's SHUTDOWNEXIT words (clients/upsmon.c), in any case; numbers are seconds there.
UPSMON_BOOLEANS: tuple[frozenset[str], frozenset[str]] = (
    frozenset({"on", "yes", "true"}),
    frozenset({"off", "no", "false"}),
)


def parse_bool(
    word: str, words: tuple[frozenset[str], frozenset[str]], *, prefix: bool = False
) -> bool | None:
    """Read a boolean word as one NUT program does, case-insensitively.

    Args:
        word: The text.
        words: The program's (true words, false words): :data:`UPSD_BOOLEANS` or
            :data:`UPSMON_BOOLEANS`.
        prefix: Compare only the beginning of ``word`` (upsd's environment variables).

    Returns:
        True or False, or ``None`` if ``word`` is neither.
    """
    folded = fold(word)
    for value, table in ((True, words[0]), (False, words[1])):
        if folded in table or (prefix and folded.startswith(tuple(table))):
            return value
    return None


def split_host_port(
    text: str,
    *,
    default_port: int = DEFAULT_PORT,
    port_zero: bool = False,
    bare_ipv6: bool = False,
) -> tuple[str, int]:
    """Split ``host[:port]`` (``[v6addr][:port]`` for IPv6) into host and port.

    Args:
        text: The text.
        default_port: The port when none is given.
        port_zero: Accept port 0 (a listener: the system picks one).
        bare_ipv6: Take a text with several ``:`` and no brackets as an IPv6 address
            without port; otherwise it is refused.

    Returns:
        ``(host, port)``, the host without brackets.

    Raises:
        ValueError: With the reason (the caller adds where the text was).
    """
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        if not bracket:
            raise ValueError("missing ']' after the address")
        if not host:
            raise ValueError("empty address in brackets")
        if not tail:
            return host, default_port
        if not tail.startswith(":"):
            raise ValueError(f"unexpected {tail!r} after ']'")
        port_text = tail[1:]
    elif text.count(":") > 1:
        if bare_ipv6:
            return text, default_port
        raise ValueError("an IPv6 address must be written in brackets: [address]:port")
    else:
        host, colon, port_text = text.partition(":")
        if not host:
            raise ValueError("no host before ':'" if colon else "no host")
        if not colon:
            return host, default_port
    least = 0 if port_zero else 1
    if not _UNSIGNED.fullmatch(port_text) or not least <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number {least}-65535, not {port_text!r}")
    return host, int(port_text)


_SHELL_SYNTAX = (">", "<", "|", ";", "&", "$", "`")


def shell_syntax(command: str) -> list[str]:
    """The shell operators in a command that nuttrio runs without a shell.

    Args:
        command: The command text (NOTIFYCMD, CMDSCRIPT).

    Returns:
        The operators found (``>``, ``<``, ``|``, ``;``, ``&``, ``$``, `````), in that order.
    """
    return [op for op in _SHELL_SYNTAX if op in command]
