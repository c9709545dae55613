"""Reading upsmon.conf and upssched.conf as NUT's upsmon and upssched do.

Both files are split with NUT's own tokenizer (:func:`nuttrio.protocol.tokenizer.split_text`),
so quoting, backslash escapes and comments mean what they mean to NUT. Directive names are
case-sensitive, as in NUT (``pollfreq 5`` is an unknown directive to upsmon), except
upsmon's ``DEBUG_MIN``.

The manager follows upsmon 2.8.5 where NUT versions differ (the directives added since 2.8.0,
the notify types and their default flags) and reports problems the way :mod:`nuttrio.config`
does for upsd's files:

* what upsmon or upssched would only log, and which changes nothing a user relies on (an
  unknown directive, an unknown notify type or flag), becomes a *warning* string
  ``"<file>:<line>: <text>"`` in the ``warnings`` attribute of the result;
* what upsmon gets wrong or drops while the file says something else (a value it reads as 0
  with ``atoi``, the words it ignores after an unquoted message, a MONITOR it skips, ...)
  raises :class:`~nuttrio.config.ConfigError` with the file and line: nuttrio refuses the
  file. Every loader docstring lists its cases.

upsmon ignores directives it does not know, with a warning, so one upsmon.conf can carry
nuttrio's own ``NUTTRIO_*`` settings and still work with the real upsmon
(docs/upsmon-extensions.md describes them).

This module performs no I/O beyond reading the file it is given.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from nuttrio.config import DEFAULT_PORT, ConfigError, read_config_lines

__all__ = [
    "DEFAULT_NOTIFY_FLAGS",
    "NOTIFY_FLAGS",
    "NOTIFY_TYPES",
    "NOTIFY_TYPES_WITH_EXTRA",
    "NUTTRIO_NOTIFY_TYPES",
    "CertHost",
    "CertIdent",
    "Monitor",
    "SchedAction",
    "SchedRule",
    "ShutdownTriggers",
    "UpsmonConfig",
    "UpsschedConfig",
    "check_upssched_against_upsmon",
    "load_upsmon_conf",
    "load_upssched_conf",
    "notifycmd_is_upssched",
    "split_system",
]

# C strcasecmp in the C locale folds ASCII letters only.
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _upper(text: str) -> str:
    """Return ``text`` with ASCII letters raised, as C ``strcasecmp`` compares."""
    return text.translate(_UPPER)


# ---------------------------------------------------------------------------------------
# Notify types

#: The four NOTIFYFLAG words (upsmon compares them case-sensitively).
NOTIFY_FLAGS: tuple[str, ...] = ("SYSLOG", "WALL", "EXEC", "IGNORE")

#: upsmon's default flags for every notify type on Unix (``NOTIFY_DEFAULT``).
DEFAULT_NOTIFY_FLAGS: frozenset[str] = frozenset({"SYSLOG", "WALL"})

_STOCK: tuple[tuple[str, str], ...] = (
    # upsmon's stock messages, exactly as upsmon 2.8.5 has them (clients/upsmon.h):
    # logs and notify scripts match on these texts.
    ("ONLINE", "UPS %s on line power"),
    ("ONBATT", "UPS %s on battery"),
    ("LOWBATT", "UPS %s battery is low"),
    ("FSD", "UPS %s: forced shutdown in progress"),
    ("COMMOK", "Communications with UPS %s established"),
    ("COMMBAD", "Communications with UPS %s lost"),
    ("SHUTDOWN", "Auto logout and shutdown proceeding"),
    ("REPLBATT", "UPS %s battery needs to be replaced"),
    ("NOCOMM", "UPS %s is unavailable"),
    ("NOPARENT", "upsmon parent process died - shutdown impossible"),
    ("CAL", "UPS %s: calibration in progress"),
    ("NOTCAL", "UPS %s: calibration finished"),
    ("OFF", "UPS %s: administratively OFF or asleep"),
    ("NOTOFF", "UPS %s: no longer administratively OFF or asleep"),
    ("BYPASS", "UPS %s: on bypass (powered, not protecting)"),
    ("NOTBYPASS", "UPS %s: no longer on bypass"),
    ("ECO", "UPS %s: in ECO mode (as defined by vendor)"),
    ("NOTECO", "UPS %s: no longer in ECO mode"),
    ("ALARM", "UPS %s: one or more active alarms: [%s]"),
    ("NOTALARM", "UPS %s is no longer in an alarm state (no active alarms)"),
    ("OVER", "UPS %s: overloaded"),
    ("NOTOVER", "UPS %s: no longer overloaded"),
    ("TRIM", "UPS %s: trimming incoming voltage"),
    ("NOTTRIM", "UPS %s: no longer trimming incoming voltage"),
    ("BOOST", "UPS %s: boosting incoming voltage"),
    ("NOTBOOST", "UPS %s: no longer boosting incoming voltage"),
    ("OTHER", "UPS %s: has at least one unclassified status token: [%s]"),
    ("NOTOTHER", "UPS %s has no unclassified status tokens anymore"),
    (
        "SHUTDOWN_HOSTSYNC",
        "Shutdown initiated; primary system is waiting for secondaries to log out or time out",
    ),
    ("SUSPEND_STARTING", "OS is entering sleep/suspend/hibernate mode"),
    (
        "SUSPEND_FINISHED",
        "OS just finished sleep/suspend/hibernate mode, de-activating obsolete UPS readings "
        "to avoid an unfortunate shutdown",
    ),
    # nuttrio's own: the clearing events upsmon does not send.
    ("NOTLOWBATT", "UPS %s battery is no longer low"),
    ("NOTFSD", "UPS %s: no longer in forced shutdown"),
    ("NOTREPLBATT", "UPS %s battery no longer needs to be replaced"),
)

# nuttrio's events for the other status symbols of RFC 9271 Table 5 (charging, tests,
# heartbeats). They change often, so by default they go nowhere: NOTIFYFLAG (or an
# upssched AT line, with EXEC) makes use of them.
_QUIET: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("CHRG", "UPS %s: battery charging", frozenset()),
    ("NOTCHRG", "UPS %s: battery no longer charging", frozenset()),
    ("DISCHRG", "UPS %s: battery discharging", frozenset()),
    ("NOTDISCHRG", "UPS %s: battery no longer discharging", frozenset()),
    ("HB", "UPS %s: battery voltage high", frozenset()),
    ("NOTHB", "UPS %s: battery voltage no longer high", frozenset()),
    ("TICK", "UPS %s: heartbeat TICK", frozenset()),
    ("NOTTICK", "UPS %s: heartbeat TICK gone", frozenset()),
    ("TOCK", "UPS %s: heartbeat TOCK", frozenset()),
    ("NOTTOCK", "UPS %s: heartbeat TOCK gone", frozenset()),
    ("TEST", "UPS %s: test in progress", frozenset({"SYSLOG"})),
    ("NOTTEST", "UPS %s: test finished", frozenset({"SYSLOG"})),
)

#: Every notify type nuttrio knows, in upsmon's order (nuttrio's own last), mapped to its
#: stock message and default flags. The messages of upsmon's types are upsmon's, byte for
#: byte; ``%s`` stands for the UPS (the MONITOR ``system`` string), a second ``%s`` in ALARM
#: and OTHER for ``ups.alarm`` or the unknown status tokens. upsmon's types default to
#: SYSLOG+WALL, as in upsmon 2.8.1 and later (2.8.0 gave CAL only SYSLOG; write
#: ``NOTIFYFLAG CAL SYSLOG`` for that).
NOTIFY_TYPES: Mapping[str, tuple[str, frozenset[str]]] = MappingProxyType(
    {
        **{name: (message, DEFAULT_NOTIFY_FLAGS) for name, message in _STOCK},
        **{name: (message, flags) for name, message, flags in _QUIET},
    }
)

#: The notify types that only nuttrio sends (real upsmon warns about them, and ignores the
#: NOTIFYMSG / NOTIFYFLAG lines that name them).
NUTTRIO_NOTIFY_TYPES: frozenset[str] = frozenset(
    {"NOTLOWBATT", "NOTFSD", "NOTREPLBATT", *(name for name, _, _ in _QUIET)}
)

#: The notify types whose message may hold a second ``%s`` (upsmon 2.8.3 and later).
NOTIFY_TYPES_WITH_EXTRA: frozenset[str] = frozenset({"ALARM", "OTHER"})


def _frozen_str_map(table: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(table))


def _frozen_flag_map(table: Mapping[str, frozenset[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType({k: frozenset(v) for k, v in table.items()})


def _frozen_override_map(
    table: Mapping[str, Mapping[str, int | None]],
) -> Mapping[str, Mapping[str, int | None]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in table.items()})


def _stock_messages() -> Mapping[str, str]:
    return MappingProxyType({name: msg for name, (msg, _) in NOTIFY_TYPES.items()})


def _stock_flags() -> Mapping[str, frozenset[str]]:
    return MappingProxyType({name: flags for name, (_, flags) in NOTIFY_TYPES.items()})


# ---------------------------------------------------------------------------------------
# Shared helpers


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


_INT = re.compile(r"-?[0-9]+")


def _parse_int(
    word: str,
    directive: str,
    path: Path,
    lineno: int,
    *,
    minimum: int | None = None,
    what: str = "a whole number",
    why: str = "",
) -> int:
    """Parse a (possibly negative) whole number; NUT's ``atoi`` would read garbage as 0."""
    if not _INT.fullmatch(word):
        raise ConfigError(f"{directive} needs {what}, not {word!r}", path, lineno)
    value = int(word)
    if minimum is not None and value < minimum:
        reason = f" ({why})" if why else ""
        raise ConfigError(
            f"{directive} must be {minimum} or more, not {value}{reason}", path, lineno
        )
    return value


def _parse_01(word: str, directive: str, path: Path, lineno: int) -> bool:
    """Parse a ``0 | 1`` switch. upsmon reads it with ``atoi`` and tests ``== 1``."""
    if word == "1":
        return True
    if word == "0":
        return False
    raise ConfigError(
        f"{directive} must be 0 or 1, not {word!r} (upsmon reads anything else as 0)",
        path,
        lineno,
    )


def _check_count(
    words: tuple[str, ...], least: int, most: int, usage: str, path: Path, lineno: int
) -> None:
    """Check the number of words after the directive name."""
    args = len(words) - 1
    if args < least:
        raise ConfigError(f"{words[0]} needs {usage} (upsmon ignores this line)", path, lineno)
    if args > most:
        raise ConfigError(
            f"too many words for {words[0]} {usage}: {' '.join(words[1:])!r} "
            "(NUT ignores the extra words; quote a value that contains spaces)",
            path,
            lineno,
        )


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:  # pragma: no cover - the file was just read
        return False


# ---------------------------------------------------------------------------------------
# MONITOR


def split_system(system: str) -> tuple[str, str, int]:
    """Split a MONITOR ``system`` string ``ups[@host[:port]]`` into its parts.

    As NUT's ``upscli_splitname``: the host defaults to ``localhost`` and the port to 3493;
    an IPv6 address goes in brackets (``ups@[::1]:3493``). nuttrio refuses what upsmon
    misreads: an empty UPS name (``@host``: upsmon 2.8.0 takes the host as the UPS name),
    an empty host (``ups@``), a port without a host (``ups:3493``: upsmon 2.8.0 takes it
    all as the UPS name), a bare IPv6 address (``ups@::1``), a second ``@``, a port that is
    not 1-65535 and text after the port or after ``]`` (which upsmon ignores).

    Args:
        system: The string as written in MONITOR.

    Returns:
        ``(ups, host, port)``.

    Raises:
        ValueError: With the reason, if the string is not usable.
    """
    ups, at, rest = system.partition("@")
    if not ups:
        raise ValueError(f"no UPS name before '@' in {system!r}")
    if not at:
        if ":" in ups:
            raise ValueError(
                f"a port needs a host: write {ups.split(':', 1)[0]}@localhost:"
                f"{ups.split(':', 1)[1]}, not {system!r}"
            )
        return ups, "localhost", DEFAULT_PORT
    if not rest:
        raise ValueError(f"no host after '@' in {system!r}")
    if "@" in rest:
        raise ValueError(f"more than one '@' in {system!r}")
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket:
            raise ValueError(f"missing ']' after the address in {system!r}")
        if not host:
            raise ValueError(f"empty address in brackets in {system!r}")
        if not tail:
            return ups, host, DEFAULT_PORT
        if not tail.startswith(":"):
            raise ValueError(f"unexpected {tail!r} after ']' in {system!r}")
        port_text = tail[1:]
    else:
        if rest.count(":") > 1:
            raise ValueError(
                f"an IPv6 address must be written in brackets: {ups}@[address]:port, not {system!r}"
            )
        host, colon, port_text = rest.partition(":")
        if not host:
            raise ValueError(f"no host before ':' in {system!r}")
        if not colon:
            return ups, host, DEFAULT_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number 1-65535, not {port_text!r} in {system!r}")
    return ups, host, int(port_text)


@attrs.frozen
class Monitor:
    """One ``MONITOR`` line: a UPS this host watches, and how.

    Attributes:
        system: The UPS as written, ``ups[@host[:port]]``: notifications and upssched's
            ``UPSNAME`` use this exact string.
        ups: The UPS name on the server.
        host: The server (``localhost`` when not given; an IPv6 address without brackets).
        port: The server's port (3493 when not given).
        power_value: How many of this host's power supplies the UPS feeds; 0 means watch
            only.
        username: The upsd.users user to log in as.
        password: That user's password.
        primary: True for ``primary`` (or ``master``), False for ``secondary`` (``slave``).
        lineno: The line of the MONITOR directive.
    """

    system: str
    ups: str
    host: str
    port: int
    power_value: int
    username: str
    password: str
    primary: bool
    lineno: int = 0


_ROLES = {"PRIMARY": True, "MASTER": True, "SECONDARY": False, "SLAVE": False}


def _parse_monitor(words: tuple[str, ...], path: Path, lineno: int) -> Monitor:
    if len(words) == 5:
        # upsmon: "Unable to use old-style MONITOR line without a username" -> fatal.
        raise ConfigError(
            "old-style MONITOR line without a username: write MONITOR <ups> <powervalue> "
            "<user> <password> primary|secondary and add the user to upsd.users "
            "(upsmon refuses to start with this line)",
            path,
            lineno,
        )
    _check_count(
        words,
        5,
        5,
        "<ups[@host[:port]]> <powervalue> <user> <password> primary|secondary",
        path,
        lineno,
    )
    system, pv_text, username, password, role = words[1:]
    try:
        ups, host, port = split_system(system)
    except ValueError as exc:
        raise ConfigError(f"MONITOR: {exc}", path, lineno) from None
    if not (pv_text.isascii() and pv_text.isdigit()):
        raise ConfigError(
            f"MONITOR {system}: the power value must be a whole number 0 or more, not "
            f"{pv_text!r} (upsmon ignores a negative one and reads other text as 0)",
            path,
            lineno,
        )
    primary = _ROLES.get(_upper(role))
    if primary is None:
        raise ConfigError(
            f"MONITOR {system}: the last word must be primary or secondary (or the old "
            f"master/slave), not {role!r} (upsmon would make it a secondary)",
            path,
            lineno,
        )
    return Monitor(system, ups, host, port, int(pv_text), username, password, primary, lineno)


# ---------------------------------------------------------------------------------------
# upsmon.conf


@attrs.frozen
class CertIdent:
    """``CERTIDENT``: this client's certificate (NSS name, or OpenSSL in NUT 2.8.6).

    Attributes:
        name: The certificate name.
        password: The password of its private key (or of the NSS database).
    """

    name: str
    password: str


@attrs.frozen
class CertHost:
    """One ``CERTHOST`` line: TLS settings for one server.

    Attributes:
        host: The server as written (``host`` or ``host:port``).
        certname: The certificate name the server must present.
        verify: Verify the server's certificate.
        forcessl: Refuse to talk to it without TLS.
        lineno: The line of the directive.
    """

    host: str
    certname: str
    verify: bool
    forcessl: bool
    lineno: int = 0


@attrs.frozen
class ShutdownTriggers:
    """nuttrio's extra reasons to count a UPS as critical (``NUTTRIO_*`` directives).

    ``None`` means the trigger is off. Each applies only while the UPS is on battery (OB).

    Attributes:
        runtime_below: Seconds: critical when ``battery.runtime`` is below this.
        charge_below: Percent: critical when ``battery.charge`` is below this.
        onbatt_after: Seconds: critical after this long continuously on battery.
    """

    runtime_below: int | None = None
    charge_below: int | None = None
    onbatt_after: int | None = None


#: The NUTTRIO_* directives: their ShutdownTriggers field, smallest and largest value, unit.
_TRIGGERS: Mapping[str, tuple[str, int, int | None, str]] = MappingProxyType(
    {
        "NUTTRIO_RUNTIME_BELOW": ("runtime_below", 1, None, "seconds"),
        "NUTTRIO_CHARGE_BELOW": ("charge_below", 1, 100, "percent"),
        "NUTTRIO_ONBATT_AFTER": ("onbatt_after", 0, None, "seconds"),
    }
)


@attrs.frozen
class UpsmonConfig:
    """upsmon.conf, with upsmon's defaults (upsmon 2.8.5 where versions differ).

    Times are whole seconds, as upsmon reads them.

    Attributes:
        path: The file this was read from.
        monitors: The MONITOR lines, in file order.
        minsupplies: ``MINSUPPLIES``: power supplies that must stay fed (0: never shut
            down).
        shutdowncmd: ``SHUTDOWNCMD``: the shell command that shuts this host down, or
            ``None`` (upsmon then only warns).
        shutdowncmd_args: Words after the SHUTDOWNCMD command: upsmon 2.8.0-2.8.5 ignores
            them, NUT 2.8.6 passes them as arguments.
        notifycmd: ``NOTIFYCMD``: the command run for EXEC notifications, with the message
            as its last argument, or ``None``.
        notifycmd_args: Words after the NOTIFYCMD command (as for ``shutdowncmd_args``).
        notifymsg: Every notify type of :data:`NOTIFY_TYPES` with its message (``NOTIFYMSG``
            or the stock one).
        notifyflag: Every notify type with its flags (``NOTIFYFLAG`` or SYSLOG+WALL); an
            empty set means nothing is done, as does IGNORE.
        pollfreq: ``POLLFREQ``: seconds between polls.
        pollfreqalert: ``POLLFREQALERT``: seconds between polls while a UPS is on battery.
        hostsync: ``HOSTSYNC``: primary: longest wait for secondaries to log out;
            secondary: longest wait for FSD after the UPS went OB LB.
        deadtime: ``DEADTIME``: silence after which a UPS last seen on battery is dead.
        finaldelay: ``FINALDELAY``: delay between the SHUTDOWN notification and
            SHUTDOWNCMD.
        powerdownflag: ``POWERDOWNFLAG``: the file written before SHUTDOWNCMD so that late
            shutdown turns the UPS off; ``None`` (upsmon has no built-in default).
        rbwarntime: ``RBWARNTIME``: interval between REPLBATT notifications.
        nocommwarntime: ``NOCOMMWARNTIME``: interval between NOCOMM notifications.
        offduration: ``OFFDURATION``: how long OFF must last before the UPS counts as not
            feeding; 0 at once, negative never.
        overduration: ``OVERDURATION``: how long OVER without communications must last to
            be critical; negative never.
        oblbduration: ``OBLBDURATION``: how long OB LB must last to be critical.
        alarmcritical: ``ALARMCRITICAL``: ALARM without communications is critical.
        shutdownexit: ``SHUTDOWNEXIT`` in seconds after SHUTDOWNCMD: 0 exit at once (yes),
            N linger N seconds, negative linger until stopped (no).
        pollfail_log_throttle_max: ``POLLFAIL_LOG_THROTTLE_MAX``: -1 log every failed
            poll, 0 only changes, N every N-th.
        run_as_user: ``RUN_AS_USER``, or ``None`` for the built-in user.
        run_as_user_line: The line of ``RUN_AS_USER`` (0 when not set).
        debug_min: ``DEBUG_MIN``, or ``None``.
        certpath: ``CERTPATH``: NSS database directory, or OpenSSL CA directory/bundle.
        certident: ``CERTIDENT``, or ``None``.
        certhost: The ``CERTHOST`` lines, in file order (one per host: the last line for a
            host wins, as in upsmon).
        certverify: ``CERTVERIFY``: verify every server's certificate.
        forcessl: ``FORCESSL``: refuse servers without TLS.
        certfile: ``CERTFILE`` (NUT 2.8.6): this client's certificate and key, PEM.
        runtime_below: ``NUTTRIO_RUNTIME_BELOW`` for every UPS, or ``None``.
        charge_below: ``NUTTRIO_CHARGE_BELOW`` for every UPS, or ``None``.
        onbatt_after: ``NUTTRIO_ONBATT_AFTER`` for every UPS, or ``None``.
        trigger_overrides: Per-MONITOR values of the ``NUTTRIO_*`` triggers: ``system`` ->
            {``ShutdownTriggers`` field -> value, ``None`` for ``off``}; see
            :meth:`triggers_for`.
        warnings: Problems upsmon would only log, as ``"<file>:<line>: <text>"``.
    """

    path: Path = Path("upsmon.conf")
    monitors: tuple[Monitor, ...] = ()
    minsupplies: int = 1
    shutdowncmd: str | None = None
    shutdowncmd_args: tuple[str, ...] = ()
    notifycmd: str | None = None
    notifycmd_args: tuple[str, ...] = ()
    notifymsg: Mapping[str, str] = attrs.field(factory=_stock_messages, converter=_frozen_str_map)
    notifyflag: Mapping[str, frozenset[str]] = attrs.field(
        factory=_stock_flags, converter=_frozen_flag_map
    )
    pollfreq: int = 5
    pollfreqalert: int = 5
    hostsync: int = 15
    deadtime: int = 15
    finaldelay: int = 5
    powerdownflag: Path | None = None
    rbwarntime: int = 43200
    nocommwarntime: int = 300
    offduration: int = 30
    overduration: int = -1
    oblbduration: int = 0
    alarmcritical: bool = True
    shutdownexit: int = 0
    pollfail_log_throttle_max: int = -1
    run_as_user: str | None = None
    run_as_user_line: int = 0
    debug_min: int | None = None
    certpath: Path | None = None
    certident: CertIdent | None = None
    certhost: tuple[CertHost, ...] = ()
    certverify: bool = False
    forcessl: bool = False
    certfile: Path | None = None
    runtime_below: int | None = None
    charge_below: int | None = None
    onbatt_after: int | None = None
    trigger_overrides: Mapping[str, Mapping[str, int | None]] = attrs.field(
        factory=dict, converter=_frozen_override_map
    )
    warnings: tuple[str, ...] = ()

    def monitor(self, system: str) -> Monitor | None:
        """Return the MONITOR whose ``system`` string is exactly ``system``, if any."""
        for mon in self.monitors:
            if mon.system == system:
                return mon
        return None

    def triggers_for(self, system: str) -> ShutdownTriggers:
        """Return the ``NUTTRIO_*`` triggers in force for one UPS.

        A per-MONITOR line (``NUTTRIO_RUNTIME_BELOW 600 ups@host``) replaces the global
        value of that trigger for that UPS only; ``off`` there switches it off for it.

        Args:
            system: The MONITOR ``system`` string.

        Returns:
            The triggers, ``None`` where off.
        """
        base = ShutdownTriggers(self.runtime_below, self.charge_below, self.onbatt_after)
        override = self.trigger_overrides.get(system)
        if not override:
            return base
        return attrs.evolve(base, **override)

    @property
    def uses_upssched(self) -> bool:
        """Whether NOTIFYCMD is upssched (see :func:`notifycmd_is_upssched`)."""
        return self.notifycmd is not None and notifycmd_is_upssched(self.notifycmd)


def notifycmd_is_upssched(cmd: str) -> bool:
    """Tell whether a NOTIFYCMD runs upssched.

    True when the command's first word (after shell-style unquoting) has the file name
    ``upssched``, with or without a directory and with or without arguments:
    ``/usr/sbin/upssched``, ``upssched``, ``"/opt/nut/sbin/upssched" -D``.

    Args:
        cmd: The NOTIFYCMD value.

    Returns:
        True if it names upssched.
    """
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    if not words:
        return False
    return os.path.basename(words[0]) == "upssched"


_SCALARS = frozenset(
    {
        "MINSUPPLIES",
        "SHUTDOWNCMD",
        "NOTIFYCMD",
        "POLLFREQ",
        "POLLFREQALERT",
        "HOSTSYNC",
        "DEADTIME",
        "FINALDELAY",
        "POWERDOWNFLAG",
        "RBWARNTIME",
        "NOCOMMWARNTIME",
        "OFFDURATION",
        "OVERDURATION",
        "OBLBDURATION",
        "ALARMCRITICAL",
        "SHUTDOWNEXIT",
        "POLLFAIL_LOG_THROTTLE_MAX",
        "RUN_AS_USER",
        "DEBUG_MIN",
        "CERTPATH",
        "CERTIDENT",
        "CERTVERIFY",
        "FORCESSL",
        "CERTFILE",
    }
)

_UPSMON_DIRECTIVES = _SCALARS | {"MONITOR", "NOTIFYMSG", "NOTIFYFLAG", "CERTHOST"} | set(_TRIGGERS)

# Whole seconds of at least 0: name -> attribute.
_SECONDS = MappingProxyType(
    {
        "HOSTSYNC": "hostsync",
        "DEADTIME": "deadtime",
        "FINALDELAY": "finaldelay",
        "RBWARNTIME": "rbwarntime",
        "NOCOMMWARNTIME": "nocommwarntime",
    }
)

_TRUE_WORDS = frozenset({"ON", "YES", "TRUE"})
_FALSE_WORDS = frozenset({"OFF", "NO", "FALSE"})

_FORMAT = re.compile(r"%(.|$)", re.DOTALL)


def _check_message(ntype: str, message: str, path: Path, lineno: int) -> None:
    """Refuse a NOTIFYMSG that upsmon cannot format.

    upsmon hands the message to ``printf`` with the UPS name (and, for ALARM and OTHER,
    one more text): any conversion but ``%s`` and ``%%`` prints garbage or crashes 2.8.0
    and makes 2.8.5 refuse to format it (the
    notification then carries no meaningful text).
    """
    most = 2 if ntype in NOTIFY_TYPES_WITH_EXTRA else 1
    count = 0
    for match in _FORMAT.finditer(message):
        spec = match.group(1)
        if spec == "%":
            continue
        if spec != "s":
            shown = "a lone '%' at the end" if not spec else f"'%{spec}'"
            raise ConfigError(
                f"NOTIFYMSG {ntype}: {shown} in the message; only %s (the UPS) and %% (a "
                "percent sign) may appear, as upsmon passes the message to printf",
                path,
                lineno,
            )
        count += 1
    if count > most:
        extra = " and the second for the extra text" if most == 2 else ""
        raise ConfigError(
            f"NOTIFYMSG {ntype}: {count} %s in the message; at most {most} (the first for "
            f"the UPS{extra})",
            path,
            lineno,
        )


def _parse_flags(ntype: str, text: str, here: str, warn: list[str]) -> frozenset[str]:
    """Parse ``FLAG[+FLAG...]`` as upsmon does: unknown words are dropped with a warning."""
    flags: set[str] = set()
    for word in text.split("+"):
        if word in NOTIFY_FLAGS:
            flags.add(word)
            continue
        hint = ""
        if _upper(word) in NOTIFY_FLAGS:
            hint = f" (flags are case-sensitive: {_upper(word)})"
        warn.append(
            f"{here}: invalid notify flag {word!r} for {ntype}{hint}; ignored "
            f"(known: {'+'.join(NOTIFY_FLAGS)})"
        )
    if "IGNORE" in flags and len(flags) > 1:
        warn.append(
            f"{here}: NOTIFYFLAG {ntype} combines IGNORE with other flags; IGNORE wins and "
            "nothing is done"
        )
    return frozenset(flags)


def _notify_type(word: str, directive: str, here: str, warn: list[str]) -> str | None:
    ntype = _upper(word)
    if ntype in NOTIFY_TYPES:
        return ntype
    warn.append(
        f"{here}: {directive}: unknown notify type {word!r}; ignored "
        f"(known: {' '.join(NOTIFY_TYPES)})"
    )
    return None


def _parse_trigger_value(directive: str, word: str, path: Path, lineno: int) -> int | None:
    _, least, most, unit = _TRIGGERS[directive]
    if _upper(word) == "OFF":
        return None
    value = _parse_int(word, directive, path, lineno, what=f"a whole number of {unit} or off")
    if value < least or (most is not None and value > most):
        span = f"{least}-{most}" if most is not None else f"{least} or more"
        raise ConfigError(f"{directive} must be {span} {unit} (or off), not {value}", path, lineno)
    return value


def load_upsmon_conf(path: Path) -> UpsmonConfig:
    """Read upsmon.conf as upsmon does (``parse_conf_arg`` in NUT's ``clients/upsmon.c``).

    Directives (names case-sensitive; ``DEBUG_MIN`` in any case):

    * ``MONITOR <ups[@host[:port]]> <powervalue> <user> <password> primary|secondary``
      (``master``/``slave`` too, in any case);
    * ``MINSUPPLIES n`` (n >= 0); ``POLLFREQ``, ``POLLFREQALERT`` (>= 1); ``HOSTSYNC``,
      ``DEADTIME``, ``FINALDELAY``, ``RBWARNTIME``, ``NOCOMMWARNTIME``, ``OBLBDURATION``
      (>= 0); ``OFFDURATION``, ``OVERDURATION``, ``POLLFAIL_LOG_THROTTLE_MAX`` (any
      whole number; negative means never / every time); ``DEBUG_MIN`` (>= 0);
    * ``SHUTDOWNEXIT yes|on|true|no|off|false|<seconds>``; ``ALARMCRITICAL``,
      ``CERTVERIFY``, ``FORCESSL`` 0 or 1;
    * ``SHUTDOWNCMD``, ``NOTIFYCMD`` (a command; later words are kept as arguments),
      ``POWERDOWNFLAG``, ``RUN_AS_USER``, ``CERTPATH``, ``CERTFILE``;
    * ``NOTIFYMSG <type> "<message>"``, ``NOTIFYFLAG <type> FLAG[+FLAG...]`` (types in any
      case, flags SYSLOG WALL EXEC IGNORE in capitals; a NOTIFYFLAG line replaces the
      type's flags);
    * ``CERTIDENT <name> <password>``, ``CERTHOST <host> <certname> 0|1 0|1``;
    * nuttrio's ``NUTTRIO_RUNTIME_BELOW``, ``NUTTRIO_CHARGE_BELOW``,
      ``NUTTRIO_ONBATT_AFTER`` ``<value>|off [<system>]`` (docs/upsmon-extensions.md).

    Fatal for upsmon too, and so :class:`ConfigError`: an unreadable file; a 5-word
    (old-style, no user) MONITOR line; power values adding up to less than MINSUPPLIES
    (which includes a file without MONITOR lines, unless MINSUPPLIES is 0).

    :class:`ConfigError` where upsmon logs a line and drops or misreads it: a tokenizer
    error; a known directive with too few words (upsmon: "invalid directive") or too many
    (upsmon ignores the extra words, so an unquoted message or command is cut at its first
    word); a number that is not one (upsmon's ``atoi`` reads it as 0) or out of range
    (upsmon ignores a negative POLLFREQ, POLLFREQALERT, FINALDELAY, MINSUPPLIES and power
    value, and clamps a negative OBLBDURATION to 0); a 0/1 switch that is neither (upsmon
    reads ``yes`` as 0); a SHUTDOWNEXIT it does not recognise; a MONITOR role other than
    primary/secondary/master/slave (upsmon makes it a secondary); a MONITOR ``system``
    string :func:`split_system` refuses; a MONITOR ``system`` repeated (upsmon ignores the
    second line); a NOTIFYMSG with a ``%`` conversion other than ``%s`` and ``%%`` or too
    many ``%s``; a ``NUTTRIO_*`` value out of range or naming no MONITOR. nuttrio also
    refuses a file without any MONITOR line even with MINSUPPLIES 0 (upsmon would run and
    watch nothing) and a POLLFREQ or POLLFREQALERT of 0 (upsmon would poll in a busy loop).

    Warnings (upsmon only logs these, or nothing): an unknown directive (with a hint when
    only the case is wrong); an unknown notify type in NOTIFYMSG or NOTIFYFLAG; an unknown
    flag (dropped, the others kept, as upsmon does); IGNORE combined with other flags; a
    directive given twice (the last one wins); extra words after SHUTDOWNCMD or NOTIFYCMD
    (their meaning changed in NUT 2.8.6); no SHUTDOWNCMD while MINSUPPLIES > 0; EXEC
    without NOTIFYCMD; a primary without POWERDOWNFLAG; DEADTIME shorter than a poll
    interval; two MONITOR lines for the same UPS on the same server; a file others can
    read although it holds passwords.

    Args:
        path: The upsmon.conf file.

    Returns:
        The settings, with :attr:`UpsmonConfig.warnings`.

    Raises:
        ConfigError: With file and line, as listed above.
    """
    warn: list[str] = []
    seen: dict[str, int] = {}
    values: dict[str, object] = {}
    monitors: dict[str, Monitor] = {}
    notifymsg = dict(_stock_messages())
    notifyflag = dict(_stock_flags())
    typed_lines: dict[tuple[str, str], int] = {}
    certhost: dict[str, CertHost] = {}
    overrides: dict[str, dict[str, int | None]] = {}
    override_lines: dict[tuple[str, str], int] = {}
    minsupplies_line: int | None = None

    def repeated(key: str, what: str, lineno: int) -> None:
        first = seen.get(key)
        if first is not None:
            warn.append(
                f"{_where(path, lineno)}: {what} repeated (first on line {first}); "
                "the last one is used"
            )
        seen[key] = lineno

    for lineno, words in read_config_lines(path, "upsmon.conf"):
        name = words[0]
        here = _where(path, lineno)
        if _upper(name) == "DEBUG_MIN":
            name = "DEBUG_MIN"
        if name not in _UPSMON_DIRECTIVES:
            hint = ""
            if _upper(name) in _UPSMON_DIRECTIVES:
                hint = f" (directive names are case-sensitive: {_upper(name)})"
            warn.append(f"{here}: invalid directive {' '.join(words)!r}{hint}; ignored")
            continue

        if name == "MONITOR":
            mon = _parse_monitor(words, path, lineno)
            earlier = monitors.get(mon.system)
            if earlier is not None:
                raise ConfigError(
                    f"MONITOR {mon.system} is already defined on line {earlier.lineno} "
                    "(upsmon ignores this second line)",
                    path,
                    lineno,
                )
            monitors[mon.system] = mon
            continue

        if name in _TRIGGERS:
            _check_count(words, 1, 2, "<value>|off [<ups[@host[:port]]>]", path, lineno)
            field = _TRIGGERS[name][0]
            value = _parse_trigger_value(name, words[1], path, lineno)
            if len(words) == 3:
                system = words[2]
                key = (name, system)
                if key in override_lines:
                    warn.append(
                        f"{here}: {name} for {system} repeated (first on line "
                        f"{override_lines[key]}); the last one is used"
                    )
                override_lines[key] = lineno
                overrides.setdefault(system, {})[field] = value
            else:
                repeated(name, name, lineno)
                values[field] = value
            continue

        if name == "NOTIFYMSG":
            _check_count(words, 2, 2, '<type> "<message>"', path, lineno)
            ntype = _notify_type(words[1], name, here, warn)
            if ntype is not None:
                _check_message(ntype, words[2], path, lineno)
                key2 = (name, ntype)
                if key2 in typed_lines:
                    warn.append(
                        f"{here}: NOTIFYMSG {ntype} repeated (first on line "
                        f"{typed_lines[key2]}); the last one is used"
                    )
                typed_lines[key2] = lineno
                notifymsg[ntype] = words[2]
            continue

        if name == "NOTIFYFLAG":
            _check_count(words, 2, 2, "<type> FLAG[+FLAG...]", path, lineno)
            ntype = _notify_type(words[1], name, here, warn)
            if ntype is not None:
                key2 = (name, ntype)
                if key2 in typed_lines:
                    warn.append(
                        f"{here}: NOTIFYFLAG {ntype} repeated (first on line "
                        f"{typed_lines[key2]}); the last one is used"
                    )
                typed_lines[key2] = lineno
                notifyflag[ntype] = _parse_flags(ntype, words[2], here, warn)
            continue

        if name == "CERTHOST":
            _check_count(
                words, 4, 4, "<host> <certname> <certverify 0|1> <forcessl 0|1>", path, lineno
            )
            host = words[1]
            entry = CertHost(
                host,
                words[2],
                _parse_01(words[3], "CERTHOST certverify", path, lineno),
                _parse_01(words[4], "CERTHOST forcessl", path, lineno),
                lineno,
            )
            if host in certhost:
                warn.append(
                    f"{here}: CERTHOST {host} repeated (first on line "
                    f"{certhost[host].lineno}); the last one is used"
                )
                del certhost[host]
            certhost[host] = entry
            continue

        # Single-valued settings.
        if name in ("SHUTDOWNCMD", "NOTIFYCMD"):
            _check_count(words, 1, 31, "<command>", path, lineno)
        elif name == "CERTIDENT":
            _check_count(words, 2, 2, "<certificate name> <password>", path, lineno)
        else:
            _check_count(words, 1, 1, "one value", path, lineno)
        repeated(name, name, lineno)
        arg = words[1]

        if name in ("SHUTDOWNCMD", "NOTIFYCMD"):
            field = name.lower()
            values[field] = arg
            values[f"{field}_args"] = tuple(words[2:])
            if len(words) > 2:
                warn.append(
                    f"{here}: {name} has words after the command ({' '.join(words[2:])!r}): "
                    "upsmon 2.8.0-2.8.5 ignores them, NUT 2.8.6 and nuttrio pass them as "
                    "arguments; quote the whole command to be understood the same by all"
                )
        elif name == "MINSUPPLIES":
            values["minsupplies"] = _parse_int(arg, name, path, lineno, minimum=0)
            minsupplies_line = lineno
        elif name in ("POLLFREQ", "POLLFREQALERT"):
            values[name.lower()] = _parse_int(
                arg,
                name,
                path,
                lineno,
                minimum=1,
                what="a whole number of seconds",
                why="0 would make upsmon poll in a busy loop",
            )
        elif name in _SECONDS:
            values[_SECONDS[name]] = _parse_int(
                arg, name, path, lineno, minimum=0, what="a whole number of seconds"
            )
        elif name == "OBLBDURATION":
            values["oblbduration"] = _parse_int(
                arg,
                name,
                path,
                lineno,
                minimum=0,
                what="a whole number of seconds",
                why="upsmon reads a negative value as 0, i.e. no delay",
            )
        elif name in ("OFFDURATION", "OVERDURATION"):
            values[name.lower()] = _parse_int(
                arg, name, path, lineno, what="a whole number of seconds (negative: never)"
            )
        elif name == "POLLFAIL_LOG_THROTTLE_MAX":
            count = _parse_int(arg, name, path, lineno)
            values["pollfail_log_throttle_max"] = max(count, -1)
        elif name == "DEBUG_MIN":
            values["debug_min"] = _parse_int(arg, name, path, lineno, minimum=0)
        elif name == "SHUTDOWNEXIT":
            folded = _upper(arg)
            if folded in _TRUE_WORDS:
                values["shutdownexit"] = 0
            elif folded in _FALSE_WORDS:
                values["shutdownexit"] = -1
            else:
                values["shutdownexit"] = _parse_int(
                    arg,
                    name,
                    path,
                    lineno,
                    what="yes, no or a number of seconds (upsmon takes anything else as yes)",
                )
        elif name in ("ALARMCRITICAL", "CERTVERIFY", "FORCESSL"):
            values[name.lower()] = _parse_01(arg, name, path, lineno)
        elif name in ("POWERDOWNFLAG", "CERTPATH", "CERTFILE"):
            values[name.lower()] = Path(arg)
        elif name == "RUN_AS_USER":
            values["run_as_user"] = arg
            values["run_as_user_line"] = lineno
        else:  # CERTIDENT
            values["certident"] = CertIdent(arg, words[2])

    mons = tuple(monitors.values())
    minsupplies = values.get("minsupplies", 1)
    assert isinstance(minsupplies, int)
    if not mons:
        raise ConfigError(
            "no MONITOR line: upsmon.conf must name at least one UPS to watch "
            "(MONITOR <ups[@host[:port]]> <powervalue> <user> <password> primary|secondary)",
            path,
        )
    total = sum(m.power_value for m in mons)
    if total < minsupplies:
        raise ConfigError(
            f"insufficient power configured: the MONITOR power values add up to {total}, "
            f"less than MINSUPPLIES {minsupplies} (upsmon refuses to start)",
            path,
            minsupplies_line,
        )
    for (directive, system), lineno in override_lines.items():
        if system not in monitors:
            known = ", ".join(monitors)
            raise ConfigError(
                f"{directive} names {system!r}, which no MONITOR line defines "
                f"(write the UPS exactly as in MONITOR: {known})",
                path,
                lineno,
            )

    cfg = UpsmonConfig(
        path=path,
        monitors=mons,
        notifymsg=notifymsg,
        notifyflag=notifyflag,
        certhost=tuple(certhost.values()),
        trigger_overrides=overrides,
        **values,  # type: ignore[arg-type]
    )
    warn.extend(_upsmon_sanity(cfg))
    return attrs.evolve(cfg, warnings=tuple(warn))


def _upsmon_sanity(cfg: UpsmonConfig) -> Iterable[str]:
    """Warnings about settings that are valid but probably not what was meant."""
    path = cfg.path
    if cfg.shutdowncmd is None and cfg.minsupplies > 0:
        yield f"{path}: no SHUTDOWNCMD: this host cannot shut itself down"
    if cfg.notifycmd is None:
        execs = [t for t, flags in cfg.notifyflag.items() if "EXEC" in flags]
        if execs:
            yield (
                f"{path}: NOTIFYFLAG gives EXEC to {' '.join(execs)} but there is no "
                "NOTIFYCMD to run"
            )
    if cfg.powerdownflag is None and any(m.primary for m in cfg.monitors):
        yield (
            f"{path}: no POWERDOWNFLAG: this primary cannot tell the late shutdown to turn "
            "the UPS off (upsmon has no default; packages use /etc/killpower)"
        )
    slowest = max(cfg.pollfreq, cfg.pollfreqalert)
    if cfg.deadtime < slowest:
        yield (
            f"{path}: DEADTIME {cfg.deadtime} is shorter than the poll interval {slowest}: "
            "a single failed poll of a UPS on battery makes it dead (NUT advises 3 times "
            "the longer of POLLFREQ and POLLFREQALERT)"
        )
    places: dict[tuple[str, str, int], Monitor] = {}
    for mon in cfg.monitors:
        key = (mon.ups, _upper(mon.host), mon.port)
        other = places.get(key)
        if other is not None:
            yield (
                f"{_where(path, mon.lineno)}: MONITOR {mon.system} is the same UPS as "
                f"{other.system} (line {other.lineno}): both log in and both power values "
                "count"
            )
        else:
            places[key] = mon
    if cfg.monitors and _readable_by_others(path):
        yield f"{path}: file is readable by other users but holds MONITOR passwords"


# ---------------------------------------------------------------------------------------
# upssched.conf


class SchedAction(enum.StrEnum):
    """What an ``AT`` line does (upssched compares these case-sensitively)."""

    START_TIMER = "START-TIMER"
    CANCEL_TIMER = "CANCEL-TIMER"
    EXECUTE = "EXECUTE"
    START_TIMER_SHARED = "START-TIMER-SHARED"
    CANCEL_TIMER_MATCHED = "CANCEL-TIMER-MATCHED"


# action -> (least, most) arguments, usage
_ACTION_ARGS: Mapping[SchedAction, tuple[int, int, str]] = MappingProxyType(
    {
        SchedAction.START_TIMER: (2, 2, "<timer> <seconds>"),
        SchedAction.START_TIMER_SHARED: (2, 2, "<timer> <seconds>"),
        SchedAction.CANCEL_TIMER: (1, 2, "<timer> [<command>]"),
        SchedAction.CANCEL_TIMER_MATCHED: (1, 2, "<timer> [<command>]"),
        SchedAction.EXECUTE: (1, 1, "<command>"),
    }
)


@attrs.frozen
class SchedRule:
    """One ``AT <notifytype> <ups> <action> <args...>`` line of upssched.conf.

    Attributes:
        notify_type: The notify type, upper-cased (upssched compares it without regard to
            case).
        ups: The UPS, compared exactly with upsmon's ``UPSNAME`` (the whole MONITOR
            ``system`` string, e.g. ``myups@localhost``), or ``*`` for any.
        action: What to do.
        args: The action's words: timer name and seconds for the START actions; timer
            name and optional command for the CANCEL actions; the command for EXECUTE.
        lineno: The line of the AT directive.
    """

    notify_type: str
    ups: str
    action: SchedAction
    args: tuple[str, ...]
    lineno: int = 0

    def matches(self, notify_type: str, ups: str) -> bool:
        """Whether this rule applies to a notification, as upssched decides.

        Args:
            notify_type: The notification's type (``NOTIFYTYPE``), in any case.
            ups: The notification's UPS (``UPSNAME``).

        Returns:
            True if the types are equal without regard to case and the UPS is equal or
            the rule says ``*``.
        """
        return _upper(notify_type) == self.notify_type and self.ups in ("*", ups)

    @property
    def timer(self) -> str | None:
        """The timer name, or ``None`` for EXECUTE."""
        return None if self.action is SchedAction.EXECUTE else self.args[0]

    @property
    def seconds(self) -> int | None:
        """The timer's length for the START actions, else ``None``."""
        if self.action in (SchedAction.START_TIMER, SchedAction.START_TIMER_SHARED):
            return int(self.args[1])
        return None

    @property
    def command(self) -> str | None:
        """The word handed to CMDSCRIPT: EXECUTE's command, or a CANCEL's command if any."""
        if self.action is SchedAction.EXECUTE:
            return self.args[0]
        if self.action in (SchedAction.CANCEL_TIMER, SchedAction.CANCEL_TIMER_MATCHED):
            return self.args[1] if len(self.args) > 1 else None
        return None


@attrs.frozen
class UpsschedConfig:
    """upssched.conf.

    Attributes:
        cmdscript: ``CMDSCRIPT``: the command run (no shell), with a timer name or an
            EXECUTE/CANCEL command appended; ``None`` only when there is no AT line.
        pipefn: ``PIPEFN``: upssched's socket to its timer daemon, or ``None``.
        lockfn: ``LOCKFN``: upssched's lock file while it starts the daemon, or ``None``.
        rules: The AT lines, in file order (upssched acts on every match, top to bottom).
        warnings: Problems upssched would only log, as ``"<file>:<line>: <text>"``.
        debug_min: ``DEBUG_MIN`` (upssched 2.8.5), or ``None``.
        path: The file this was read from.
    """

    cmdscript: str | None = None
    pipefn: Path | None = None
    lockfn: Path | None = None
    rules: tuple[SchedRule, ...] = ()
    warnings: tuple[str, ...] = ()
    debug_min: int | None = None
    path: Path = Path("upssched.conf")

    def matching(self, notify_type: str, ups: str) -> tuple[SchedRule, ...]:
        """The rules that apply to one notification, in file order.

        Args:
            notify_type: ``NOTIFYTYPE``.
            ups: ``UPSNAME``.

        Returns:
            The matching rules.
        """
        return tuple(r for r in self.rules if r.matches(notify_type, ups))


_SCHED_DIRECTIVES = ("CMDSCRIPT", "PIPEFN", "LOCKFN", "DEBUG_MIN", "AT")


def _parse_at(words: tuple[str, ...], path: Path, lineno: int, warn: list[str]) -> SchedRule:
    here = _where(path, lineno)
    if len(words) < 5:
        raise ConfigError(
            "AT needs <notifytype> <ups|*> <action> <argument...> (upssched ignores this line)",
            path,
            lineno,
        )
    type_word, ups, action_word = words[1:4]
    args = words[4:]
    try:
        action = SchedAction(action_word)
    except ValueError:
        hint = ""
        if _upper(action_word) in {a.value for a in SchedAction}:
            hint = f" (actions are case-sensitive: {_upper(action_word)})"
        known = " ".join(a.value for a in SchedAction)
        raise ConfigError(
            f"AT: unknown action {action_word!r}{hint}; known: {known} (upssched logs "
            "'Invalid command' and does nothing)",
            path,
            lineno,
        ) from None
    least, most, usage = _ACTION_ARGS[action]
    if len(args) < least:
        raise ConfigError(f"AT ... {action} needs {usage}", path, lineno)
    if len(args) > most:
        raise ConfigError(
            f"too many words for AT ... {action} {usage}: {' '.join(args)!r} (upssched "
            "ignores the extra words; quote a command that contains spaces)",
            path,
            lineno,
        )
    if not args[0]:
        raise ConfigError(f"AT ... {action}: empty {usage.split()[0]}", path, lineno)
    if action in (SchedAction.START_TIMER, SchedAction.START_TIMER_SHARED) and not (
        args[1].isascii() and args[1].isdigit()
    ):
        raise ConfigError(
            f"AT ... {action} {args[0]}: the time must be a whole number of seconds, not "
            f"{args[1]!r} (upssched ignores a negative time and reads other text as 0)",
            path,
            lineno,
        )
    ntype = _upper(type_word)
    if ntype not in NOTIFY_TYPES:
        warn.append(
            f"{here}: AT: unknown notify type {type_word!r}: this rule never applies "
            f"(known: {' '.join(NOTIFY_TYPES)})"
        )
    return SchedRule(ntype, ups, action, tuple(args), lineno)


def load_upssched_conf(path: Path) -> UpsschedConfig:
    """Read upssched.conf as upssched does (``conf_arg`` and ``parse_at`` in upssched.c).

    Directives (names case-sensitive): ``CMDSCRIPT <command>``, ``PIPEFN <file>``,
    ``LOCKFN <file>``, ``DEBUG_MIN <n>`` (upssched 2.8.5) and

    * ``AT <type> <ups|*> START-TIMER <timer> <seconds>``
    * ``AT <type> <ups|*> CANCEL-TIMER <timer> [<command>]``
    * ``AT <type> <ups|*> EXECUTE <command>``
    * ``AT <type> <ups|*> START-TIMER-SHARED <timer> <seconds>`` (2.8.5)
    * ``AT <type> <ups|*> CANCEL-TIMER-MATCHED <timer> [<command>]`` (documented since
      2.8.5; upssched 2.8.5 itself still answers it with "Invalid command", nuttrio
      implements it as documented)

    upssched only logs a bad AT line and carries on; nuttrio refuses the file instead
    (:class:`ConfigError` with file and line), because such a line silently loses a timer
    or command: an AT with fewer than 5 words; an unknown action (actions are
    case-sensitive); too few or too many words for the action (upssched ignores the extra
    words, so ``EXECUTE echo hi`` runs ``echo``); an empty command or timer name; a time
    that is not a whole number of seconds 0 or more. Also: a tokenizer error, an unreadable
    file, a known directive with a missing or extra value, a bad ``DEBUG_MIN``, and AT lines
    without any CMDSCRIPT (upssched exits on every call).

    Order: upssched 2.8.x requires CMDSCRIPT, PIPEFN and LOCKFN *before* the first AT and
    exits with "CMDSCRIPT must be set before any ATs" on every call otherwise. nuttrio reads
    the whole file first, so the order does not matter to it; a file that breaks the rule
    (or lacks PIPEFN/LOCKFN, which nuttrio does not need) gets a warning, since the real
    upssched would refuse it.

    Warnings: an unknown directive; an AT for an unknown notify type (it never applies);
    a directive given twice (the last one wins); the order rule above.

    Args:
        path: The upssched.conf file.

    Returns:
        The settings, with :attr:`UpsschedConfig.warnings`.

    Raises:
        ConfigError: With file and line, as listed above.
    """
    warn: list[str] = []
    seen: dict[str, int] = {}
    values: dict[str, object] = {}
    rules: list[SchedRule] = []
    order_warned = False

    for lineno, words in read_config_lines(path, "upssched.conf"):
        name = words[0]
        here = _where(path, lineno)
        if name not in _SCHED_DIRECTIVES:
            hint = ""
            if _upper(name) in _SCHED_DIRECTIVES:
                hint = f" (directive names are case-sensitive: {_upper(name)})"
            warn.append(f"{here}: invalid directive {' '.join(words)!r}{hint}; ignored")
            continue
        if name == "AT":
            rules.append(_parse_at(words, path, lineno, warn))
            missing = [d for d in ("CMDSCRIPT", "PIPEFN", "LOCKFN") if d not in seen]
            if missing and not order_warned:
                order_warned = True
                warn.append(
                    f"{here}: AT before {', '.join(missing)}: upssched 2.8.x requires "
                    "CMDSCRIPT, PIPEFN and LOCKFN before the first AT and stops here "
                    "(nuttrio reads the whole file)"
                )
            continue
        if len(words) < 2:
            raise ConfigError(f"{name} needs a value (upssched ignores this line)", path, lineno)
        if len(words) > 2:
            raise ConfigError(
                f"{name} takes one value, got {' '.join(words[1:])!r} (upssched ignores the "
                "extra words; quote a value that contains spaces)",
                path,
                lineno,
            )
        if name in seen:
            warn.append(
                f"{here}: {name} repeated (first on line {seen[name]}); the last one is used"
            )
        seen[name] = lineno
        arg = words[1]
        if name == "CMDSCRIPT":
            values["cmdscript"] = arg
        elif name == "DEBUG_MIN":
            values["debug_min"] = _parse_int(arg, name, path, lineno, minimum=0)
        else:
            values[name.lower()] = Path(arg)

    if rules and "cmdscript" not in values:
        raise ConfigError(
            "AT lines but no CMDSCRIPT: timers and EXECUTE have nothing to run (upssched "
            "exits on every call)",
            path,
            rules[0].lineno,
        )
    return UpsschedConfig(
        rules=tuple(rules),
        warnings=tuple(warn),
        path=path,
        **values,  # type: ignore[arg-type]
    )


def check_upssched_against_upsmon(sched: UpsschedConfig, upsmon: UpsmonConfig) -> list[str]:
    """Cross-check upssched.conf with upsmon.conf; return warnings for silent mistakes.

    upsmon hands a notification to upssched only when NOTIFYCMD is upssched and the type's
    NOTIFYFLAG includes EXEC, and upssched compares the AT line's UPS with the whole MONITOR
    ``system`` string: ``AT ONBATT myups ...`` never applies to ``MONITOR myups@localhost``.

    Args:
        sched: upssched.conf.
        upsmon: upsmon.conf.

    Returns:
        Warnings ``"<file>:<line>: <text>"``, one per rule that can never apply.
    """
    out: list[str] = []
    if sched.rules and not upsmon.uses_upssched:
        out.append(
            f"{upsmon.path}: NOTIFYCMD is not upssched, so the AT rules of {sched.path} are "
            "never used"
        )
        return out
    systems = {m.system for m in upsmon.monitors}
    for rule in sched.rules:
        here = _where(sched.path, rule.lineno)
        flags = upsmon.notifyflag.get(rule.notify_type)
        if flags is not None and ("EXEC" not in flags or "IGNORE" in flags):
            why = "includes IGNORE" if "IGNORE" in flags else "lacks EXEC"
            out.append(
                f"{here}: AT {rule.notify_type} never applies: NOTIFYFLAG "
                f"{rule.notify_type} in {upsmon.path} {why}"
            )
        if rule.ups != "*" and rule.ups not in systems:
            out.append(
                f"{here}: AT {rule.notify_type} {rule.ups} never applies: no MONITOR is "
                f"written exactly {rule.ups!r} (upsmon.conf has {', '.join(sorted(systems))})"
            )
    return out
