"""upsd.conf, as upsd 2.8.0 reads it (``load_upsdconf`` in ``server/conf.c``).

This module performs no I/O beyond reading the file (and a ``/etc/services`` look-up for a
``LISTEN`` port given by service name).
"""

from __future__ import annotations

import enum
import ipaddress
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
    frozen_map,
    parse_bool,
    parse_int,
    world_readable,
)

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MAXCONN_PER_PEER",
    "LOOPBACK_NETWORKS",
    "UPSD_CONF",
    "CertRequest",
    "IPNetwork",
    "Listen",
    "UpsdConfig",
    "load_upsd_conf",
]

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


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where plaintext is allowed by default once a certificate is configured.
LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

#: Connections one peer outside loopback may hold at once (``NUTTRIO_MAXCONN_PER_PEER``).
DEFAULT_MAXCONN_PER_PEER = 32


class CertRequest(enum.IntEnum):
    """``CERTREQUEST`` (upsd 2.8.6): whether the server asks clients for a certificate."""

    #: Do not ask (``0``, ``NO``).
    NO = 0
    #: Ask, and check the certificate if one is sent (``1``, ``REQUEST``).
    REQUEST = 1
    #: Require a valid client certificate (``2``, ``REQUIRE``).
    REQUIRE = 2


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
        disable_weak_ssl: ``DISABLE_WEAK_SSL``: TLS 1.2 or later only (nuttrio never
            accepts less than TLS 1.2 anyway).
        certpath: ``CERTPATH``: with ``CERTFILE``, the CA file or directory that client
            certificates are checked against (upsd 2.8.6's OpenSSL build); without it, an
            NSS database directory (Debian's build), which nuttrio cannot read.
        certident: ``CERTIDENT``'s certificate name and password (NSS build, or 2.8.6).
        certrequest: ``CERTREQUEST``: whether to ask clients for a certificate.
        plaintext_from: ``NUTTRIO_PLAINTEXT_FROM``: the networks that may talk without TLS,
            or ``None`` when the directive is absent (then: loopback only once a certificate
            is configured, everyone without one).
        maxconn_per_peer: ``NUTTRIO_MAXCONN_PER_PEER``: connections one address outside
            loopback may hold at once.
        lines: The line of each directive given (by name), for messages.
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
    certpath: Path | None = None
    certident: tuple[str, str] | None = None
    certrequest: CertRequest = CertRequest.NO
    plaintext_from: tuple[IPNetwork, ...] | None = None
    maxconn_per_peer: int = DEFAULT_MAXCONN_PER_PEER
    lines: Mapping[str, int] = attrs.field(factory=dict, converter=frozen_map, eq=False)
    debug_min: int | None = None
    warnings: tuple[ConfigWarning, ...] = ()

    @property
    def tls_configured(self) -> bool:
        """Whether upsd.conf asks for TLS at all (CERTFILE, or NSS's CERTPATH/CERTIDENT)."""
        return self.certfile is not None or self.certpath is not None or self.certident is not None

    def plaintext_networks(self) -> tuple[IPNetwork, ...] | None:
        """Where plaintext is allowed: ``None`` for everywhere (no certificate configured)."""
        if self.plaintext_from is not None:
            return self.plaintext_from
        return LOOPBACK_NETWORKS if self.tls_configured else None


@attrs.define
class _Draft:
    warnings: list[ConfigWarning]
    listen: list[Listen] = attrs.field(factory=list)
    values: dict[str, object] = attrs.field(factory=dict)
    plaintext_from: list[IPNetwork] | None = None
    lines: dict[str, int] = attrs.field(factory=dict)


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


def _certident(draft: _Draft, d: Directive) -> None:
    d.check_count(2, 2, "<certificate name> <password>", "upsd")
    draft.values["certident"] = (d.args[0], d.args[1])


_CERTREQUEST_WORDS = {"0": 0, "1": 1, "2": 2, "no": 0, "request": 1, "require": 2}


def _certrequest(draft: _Draft, d: Directive) -> None:
    word = d.value("upsd")
    level = _CERTREQUEST_WORDS.get(fold(word))
    if level is None:
        raise d.error(f"CERTREQUEST needs 0 (NO), 1 (REQUEST) or 2 (REQUIRE), not {word!r}")
    draft.values["certrequest"] = CertRequest(level)


def _plaintext_from(draft: _Draft, d: Directive) -> None:
    if not d.args:
        raise d.error("NUTTRIO_PLAINTEXT_FROM needs one or more networks (CIDR), or 'none'")
    networks = draft.plaintext_from if draft.plaintext_from is not None else []
    draft.plaintext_from = networks  # several lines add up; "none" alone allows no one
    if len(d.args) == 1 and fold(d.args[0]) == "none":
        return
    for word in d.args:
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise d.error(
                f"NUTTRIO_PLAINTEXT_FROM: {word!r} is not a network (192.0.2.0/24, ::1/128)"
            ) from None


def _noting(handler: Handler[_Draft]) -> Handler[_Draft]:
    """``handler``, also noting the directive's line for later messages."""

    def handle(draft: _Draft, d: Directive) -> None:
        handler(draft, d)
        draft.lines[d.name] = d.lineno

    return handle


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
        "CERTFILE": _noting(_path("certfile")),
        "CERTPATH": _noting(_path("certpath")),
        "CERTIDENT": _noting(_certident),
        "CERTREQUEST": _noting(_certrequest),
        "NUTTRIO_PLAINTEXT_FROM": _noting(_plaintext_from),
        "NUTTRIO_MAXCONN_PER_PEER": _count("maxconn_per_peer", 1, "0 would refuse everyone"),
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
    * ``STATEPATH dir``, ``DATAPATH dir``, ``CERTFILE file``, ``CERTPATH file-or-dir``;
    * ``CERTIDENT name password``; ``CERTREQUEST`` 0/1/2 or NO/REQUEST/REQUIRE;
    * nuttrio's own (upsd skips them with a warning): ``NUTTRIO_PLAINTEXT_FROM CIDR...``
      (several lines add up; ``none`` alone: TLS for everyone) and
      ``NUTTRIO_MAXCONN_PER_PEER n``.

    Whether the TLS settings make sense together (an NSS database without CERTFILE) is
    checked when the server starts (:mod:`nuttrio.server.tls`), not here.

    Warnings (upsd only logs these): an unknown directive; ``ACL``/``ACCEPT``/``REJECT``
    (obsolete); a repeated ``LISTEN`` (the duplicate is dropped); a world-readable file.

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
    if draft.plaintext_from is not None:
        draft.values["plaintext_from"] = tuple(draft.plaintext_from)
    return UpsdConfig(
        listen=tuple(draft.listen) if draft.listen else DEFAULT_LISTEN,
        lines=draft.lines,
        warnings=tuple(draft.warnings),
        **draft.values,  # type: ignore[arg-type]
    )
