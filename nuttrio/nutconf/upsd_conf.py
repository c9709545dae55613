"""upsd.conf, as upsd 2.8.0 reads it (``load_upsdconf`` in ``server/conf.c``).

This module performs no I/O beyond reading the file (and a ``/etc/services`` look-up for a
``LISTEN`` port given by service name).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from .common import (
    DEFAULT_PORT,
    UPSD_BOOLEANS,
    ConfigWarning,
    Directive,
    Handler,
    dispatch,
    fold,
    parse_bool,
    parse_int,
    world_readable,
)

__all__ = ["DEFAULT_LISTEN", "UPSD_CONF", "Listen", "UpsdConfig", "load_upsd_conf"]

UPSD_CONF = "upsd.conf"


@attrs.frozen
class Listen:
    """One address upsd listens on (a ``LISTEN`` line).

    Attributes:
        host: The address or host name, as written (upsd resolves it with
            ``getaddrinfo``, passive, any family).
        port: The TCP port.
        lineno: The upsd.conf line, or 0 for the default (not part of equality).
    """

    host: str
    port: int
    lineno: int = attrs.field(default=0, eq=False)


#: Where upsd listens when upsd.conf has no ``LISTEN`` line: IPv4 and IPv6 loopback.
#: (upsd binds 127.0.0.1 first; only a failure on that one is fatal.)
DEFAULT_LISTEN: tuple[Listen, ...] = (
    Listen("127.0.0.1", DEFAULT_PORT),
    Listen("::1", DEFAULT_PORT),
)


@attrs.frozen
class UpsdConfig:
    """upsd.conf, as upsd 2.8.0 reads it (``load_upsdconf`` in ``server/conf.c``).

    Attributes:
        listen: The ``LISTEN`` addresses in file order, duplicates removed, or
            :data:`DEFAULT_LISTEN` when there is none. (upsd binds them in reverse file
            order and stops only if the last line's address cannot be bound.)
        maxage: ``MAXAGE``: seconds without driver news before a UPS is stale.
        maxconn: ``MAXCONN``: most file descriptors served at once; ``None`` means upsd's
            default, the process limit (``sysconf(_SC_OPEN_MAX)``).
        trackingdelay: ``TRACKINGDELAY``: seconds a TRACKING result is kept.
        allow_no_device: ``ALLOW_NO_DEVICE``, after the environment variable of the same
            name (which wins when it reads as a boolean).
        statepath: ``STATEPATH``, else the environment variable ``NUT_STATEPATH`` if set
            and not empty, else ``None`` (meaning
            :data:`~nuttrio.nutconf.confdir.DEFAULT_STATEPATH`).
        datapath: ``DATAPATH``, or ``None`` for the compiled-in data directory (upsd has no
            environment variable for it).
        certfile: ``CERTFILE``: PEM file with certificate chain and key (OpenSSL builds of
            upsd; Debian's NSS build rejects the directive), or ``None``.
        disable_weak_ssl: ``DISABLE_WEAK_SSL``: TLS 1.2 or later only.
        debug_min: ``DEBUG_MIN``: lowest debug level, or ``None``.
        warnings: Problems upsd would only log.
    """

    listen: tuple[Listen, ...] = DEFAULT_LISTEN
    maxage: int = 15
    maxconn: int | None = None
    trackingdelay: int = 3600
    allow_no_device: bool = False
    statepath: Path | None = None
    datapath: Path | None = None
    certfile: Path | None = None
    disable_weak_ssl: bool = False
    debug_min: int | None = None
    warnings: tuple[ConfigWarning, ...] = ()


@attrs.define
class _Draft:
    warnings: list[ConfigWarning]
    listen: list[Listen] = attrs.field(factory=list)
    values: dict[str, object] = attrs.field(factory=dict)


def _parse_port(word: str, d: Directive) -> int:
    """Parse a ``LISTEN`` port: a number 1-65535 or a TCP service name.

    upsd hands the word to ``getaddrinfo``: service names work, ``0`` binds a random port
    and numbers above 65535 are silently truncated to 16 bits (70000 listens on 4464).
    nuttrio accepts service names and refuses the other two.
    """
    if word.isascii() and word.isdigit():
        port = int(word)
        if 1 <= port <= 65535:
            return port
        raise d.error(f"LISTEN port must be 1-65535, not {word}")
    try:
        return socket.getservbyname(word, "tcp")
    except OSError:
        raise d.error(f"LISTEN port {word!r} is not a number or a known TCP service") from None


def _listen(draft: _Draft, d: Directive) -> None:
    host = d.value("upsd", most=2, wanted="an address and an optional port")
    port = _parse_port(d.args[1], d) if len(d.args) > 1 else DEFAULT_PORT
    entry = Listen(host, port, d.lineno)
    if entry in draft.listen:
        draft.warnings.append(d.warning(f"LISTEN {host} {port} repeated; ignored"))
    else:
        draft.listen.append(entry)


def _count(field: str, least: int = 0, why: str = "") -> Handler[_Draft]:
    def handle(draft: _Draft, d: Directive) -> None:
        value = parse_int(d.value("upsd"), d, signed=False)
        if value < least:
            raise d.error(f"{d.name} must be at least {least} ({why})")
        draft.values[field] = value

    return handle


def _allow_no_device(draft: _Draft, d: Directive) -> None:
    arg = d.value("upsd")
    flag = int(arg) != 0 if arg.isascii() and arg.isdigit() else parse_bool(arg, UPSD_BOOLEANS)
    if flag is None:
        raise d.error(
            f"ALLOW_NO_DEVICE needs a number or a boolean (true/false, yes/no, on/off), not {arg!r}"
        )
    draft.values["allow_no_device"] = flag


def _disable_weak_ssl(draft: _Draft, d: Directive) -> None:
    arg = d.value("upsd")
    flag = parse_bool(arg, UPSD_BOOLEANS)
    if flag is None:
        raise d.error(
            f"DISABLE_WEAK_SSL needs a boolean (true/false, yes/no, on/off, 1/0), not {arg!r}"
        )
    draft.values["disable_weak_ssl"] = flag


def _path(field: str) -> Handler[_Draft]:
    def handle(draft: _Draft, d: Directive) -> None:
        draft.values[field] = Path(d.value("upsd"))

    return handle


def _obsolete(draft: _Draft, d: Directive) -> None:
    draft.warnings.append(d.warning(f"{d.name} is no longer supported (use LISTEN); ignored"))


def _nss_only(draft: _Draft, d: Directive) -> None:
    draft.warnings.append(
        d.warning(
            f"{d.name} configures an NSS (or client-certificate) build of upsd; nuttrio uses "
            "CERTFILE (PEM certificate chain and key) instead; ignored"
        )
    )


_TABLE: Mapping[str, Handler[_Draft]] = MappingProxyType(
    {
        "LISTEN": _listen,
        "MAXAGE": _count("maxage"),
        "MAXCONN": _count("maxconn", 1, "upsd will not start with 0"),
        "TRACKINGDELAY": _count("trackingdelay"),
        "DEBUG_MIN": _count("debug_min"),
        "ALLOW_NO_DEVICE": _allow_no_device,
        "DISABLE_WEAK_SSL": _disable_weak_ssl,
        "STATEPATH": _path("statepath"),
        "DATAPATH": _path("datapath"),
        "CERTFILE": _path("certfile"),
        "CERTPATH": _nss_only,
        "CERTIDENT": _nss_only,
        "CERTREQUEST": _nss_only,
        "ACL": _obsolete,
        "ACCEPT": _obsolete,
        "REJECT": _obsolete,
    }
)


def _canonical(name: str) -> str:
    return "DEBUG_MIN" if fold(name) == "debug_min" else name


def load_upsd_conf(path: Path, *, env: Mapping[str, str] | None = None) -> UpsdConfig:
    """Read upsd.conf as upsd 2.8.0 does.

    Directive names are case-sensitive (``maxage 10`` is an unknown directive to upsd),
    except ``DEBUG_MIN``. Settings:

    * ``LISTEN addr [port]`` (port: number or service name, default 3493);
    * ``MAXAGE n``, ``TRACKINGDELAY n``, ``MAXCONN n`` (n >= 1: upsd refuses to start
      with 0), ``DEBUG_MIN n``: whole numbers;
    * ``ALLOW_NO_DEVICE`` a number (non-zero is yes) or ``true/on/yes/1`` /
      ``false/off/no/0`` in any case; ``DISABLE_WEAK_SSL`` one of those words;
    * ``STATEPATH dir``, ``DATAPATH dir``, ``CERTFILE file``.

    Warnings (upsd only logs these): an unknown directive; ``ACL``/``ACCEPT``/``REJECT``
    (obsolete); ``CERTPATH``/``CERTIDENT``/``CERTREQUEST`` (NSS build of upsd only:
    nuttrio cannot read an NSS database, so STARTTLS is not configured by them); a repeated
    ``LISTEN`` (the duplicate is dropped); a world-readable file.

    Environment: ``ALLOW_NO_DEVICE`` overrides the file (see
    :attr:`UpsdConfig.allow_no_device`); ``NUT_STATEPATH`` is the default ``STATEPATH``.

    Args:
        path: The upsd.conf file.
        env: Environment to read, default :data:`os.environ`.

    Returns:
        The settings, with :attr:`UpsdConfig.warnings`.

    Raises:
        ConfigError: With file and line, if the file cannot be read, a line does not
            tokenize, a known directive lacks its value, has extra words, or has a bad
            value (upsd logs these and ignores the line).
    """
    env = os.environ if env is None else env
    draft = _Draft(warnings=[])
    perm = world_readable(path)
    if perm is not None:
        draft.warnings.append(perm)
    env_statepath = env.get("NUT_STATEPATH")
    if env_statepath:
        draft.values["statepath"] = Path(env_statepath)
    dispatch(path, UPSD_CONF, _TABLE, draft, draft.warnings, canonical=_canonical)
    # upsd's main() compares prefixes: "yes please" is yes, anything else leaves the file's.
    env_allow = env.get("ALLOW_NO_DEVICE")
    if env_allow is not None:
        flag = parse_bool(env_allow, UPSD_BOOLEANS, prefix=True)
        if flag is not None:
            draft.values["allow_no_device"] = flag
    return UpsdConfig(
        listen=tuple(draft.listen) if draft.listen else DEFAULT_LISTEN,
        warnings=tuple(draft.warnings),
        **draft.values,  # type: ignore[arg-type]
    )
