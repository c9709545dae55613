"""upsmon.conf, as NUT's upsmon reads it (``parse_conf_arg`` in ``clients/upsmon.c``).

Directive names are case-sensitive, as in NUT (``pollfreq 5`` is an unknown directive to
upsmon), except ``DEBUG_MIN``. The manager follows upsmon 2.8.5 where NUT versions differ
(the directives added since 2.8.0, the notify types and their default flags). What upsmon
would only log becomes a :class:`~nuttrio.nutconf.ConfigWarning`; what upsmon gets wrong
or drops while the file says something else raises :class:`~nuttrio.nutconf.ConfigError`
with the file and line. :func:`load_upsmon_conf` lists the cases.

upsmon ignores directives it does not know, with a warning, so one upsmon.conf can carry
nuttrio's own ``NUTTRIO_*`` settings and still work with the real upsmon
(docs/upsmon-extensions.md describes them).

This module performs no I/O beyond reading the file it is given.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from .common import (
    DEFAULT_PORT,
    UPSMON_BOOLEANS,
    ConfigError,
    ConfigWarning,
    Directive,
    Handler,
    dispatch,
    frozen_map,
    parse_bool,
    parse_int,
    parse_pin,
    readable_by_others,
    repeated_directive,
    shell_syntax,
    split_host_port,
    upper,
)
from .notify_types import NOTIFY_FLAGS, NOTIFY_TYPES, NOTIFY_TYPES_WITH_EXTRA

__all__ = [
    "UPSMON_CONF",
    "CertHost",
    "CertIdent",
    "Monitor",
    "ShutdownTriggers",
    "UpsmonConfig",
    "load_upsmon_conf",
    "notifycmd_is_upssched",
    "split_system",
]

UPSMON_CONF = "upsmon.conf"


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
            name, _, port_text = ups.partition(":")
            raise ValueError(
                f"a port needs a host: write {name}@localhost:{port_text}, not {system!r}"
            )
        return ups, "localhost", DEFAULT_PORT
    if not rest:
        raise ValueError(f"no host after '@' in {system!r}")
    if "@" in rest:
        raise ValueError(f"more than one '@' in {system!r}")
    try:
        host, port = split_host_port(rest)
    except ValueError as exc:
        raise ValueError(f"{exc} in {system!r}") from None
    return ups, host, port


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
        certpins: ``NUTTRIO_CERTPIN host SHA256``: the SHA-256 fingerprint each server's
            certificate must have, by host as written in MONITOR (``host`` or
            ``host:port``); a pinned server must do TLS (as with FORCESSL).
        runtime_below: ``NUTTRIO_RUNTIME_BELOW`` for every UPS, or ``None``.
        charge_below: ``NUTTRIO_CHARGE_BELOW`` for every UPS, or ``None``.
        onbatt_after: ``NUTTRIO_ONBATT_AFTER`` for every UPS, or ``None``.
        trigger_overrides: Per-MONITOR values of the ``NUTTRIO_*`` triggers: ``system`` ->
            {``ShutdownTriggers`` field -> value, ``None`` for ``off``}; see
            :meth:`triggers_for`.
        warnings: Problems upsmon would only log.
    """

    path: Path = Path("upsmon.conf")
    monitors: tuple[Monitor, ...] = ()
    minsupplies: int = 1
    shutdowncmd: str | None = None
    shutdowncmd_args: tuple[str, ...] = ()
    notifycmd: str | None = None
    notifycmd_args: tuple[str, ...] = ()
    notifymsg: Mapping[str, str] = attrs.field(factory=_stock_messages, converter=frozen_map)
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
    certpins: Mapping[str, bytes] = attrs.field(factory=dict, converter=frozen_map)
    runtime_below: int | None = None
    charge_below: int | None = None
    onbatt_after: int | None = None
    trigger_overrides: Mapping[str, Mapping[str, int | None]] = attrs.field(
        factory=dict, converter=_frozen_override_map
    )
    warnings: tuple[ConfigWarning, ...] = ()

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


_FORMAT = re.compile(r"%(.|$)", re.DOTALL)


def _check_message(ntype: str, message: str, d: Directive) -> None:
    """Refuse a NOTIFYMSG that upsmon cannot format.

    upsmon hands the message to ``printf`` with the UPS name (and, for ALARM and OTHER,
    one more text): any conversion but ``%s`` and ``%%`` prints garbage or crashes 2.8.0
    and makes 2.8.5 refuse to format it (the notification then carries no meaningful text).
    """
    most = 2 if ntype in NOTIFY_TYPES_WITH_EXTRA else 1
    count = 0
    for match in _FORMAT.finditer(message):
        spec = match.group(1)
        if spec == "%":
            continue
        if spec != "s":
            shown = "a lone '%' at the end" if not spec else f"'%{spec}'"
            raise d.error(
                f"NOTIFYMSG {ntype}: {shown} in the message; only %s (the UPS) and %% (a "
                "percent sign) may appear, as upsmon passes the message to printf"
            )
        count += 1
    if count > most:
        extra = " and the second for the extra text" if most == 2 else ""
        raise d.error(
            f"NOTIFYMSG {ntype}: {count} %s in the message; at most {most} (the first for "
            f"the UPS{extra})"
        )


def _parse_01(word: str, directive: str, d: Directive) -> bool:
    """Parse a ``0 | 1`` switch. upsmon reads it with ``atoi`` and tests ``== 1``."""
    if word in ("0", "1"):
        return word == "1"
    raise d.error(f"{directive} must be 0 or 1, not {word!r} (upsmon reads anything else as 0)")


_ROLES = {"PRIMARY": True, "MASTER": True, "SECONDARY": False, "SLAVE": False}


def _parse_monitor(d: Directive) -> Monitor:
    if len(d.words) == 5:
        # upsmon: "Unable to use old-style MONITOR line without a username" -> fatal.
        raise d.error(
            "old-style MONITOR line without a username: write MONITOR <ups> <powervalue> "
            "<user> <password> primary|secondary and add the user to upsd.users "
            "(upsmon refuses to start with this line)"
        )
    d.check_count(5, 5, "<ups[@host[:port]]> <powervalue> <user> <password> primary|secondary")
    system, pv_text, username, password, role = d.args
    try:
        ups, host, port = split_system(system)
    except ValueError as exc:
        raise d.error(f"MONITOR: {exc}") from None
    if not (pv_text.isascii() and pv_text.isdigit()):
        raise d.error(
            f"MONITOR {system}: the power value must be a whole number 0 or more, not "
            f"{pv_text!r} (upsmon ignores a negative one and reads other text as 0)"
        )
    primary = _ROLES.get(upper(role))
    if primary is None:
        raise d.error(
            f"MONITOR {system}: the last word must be primary or secondary (or the old "
            f"master/slave), not {role!r} (upsmon would make it a secondary)"
        )
    return Monitor(system, ups, host, port, int(pv_text), username, password, primary, d.lineno)


@attrs.define
class _Draft:
    """What :func:`load_upsmon_conf` has read so far."""

    path: Path
    warnings: list[ConfigWarning] = attrs.field(factory=list)
    seen: dict[str, int] = attrs.field(factory=dict)  # setting -> line first given
    values: dict[str, object] = attrs.field(factory=dict)
    monitors: dict[str, Monitor] = attrs.field(factory=dict)
    notifymsg: dict[str, str] = attrs.field(factory=lambda: dict(_stock_messages()))
    notifyflag: dict[str, frozenset[str]] = attrs.field(factory=lambda: dict(_stock_flags()))
    certhost: dict[str, CertHost] = attrs.field(factory=dict)
    certpins: dict[str, bytes] = attrs.field(factory=dict)
    overrides: dict[str, dict[str, int | None]] = attrs.field(factory=dict)
    override_lines: dict[tuple[str, str], int] = attrs.field(factory=dict)
    minsupplies_line: int | None = None

    def once(self, key: str, what: str, d: Directive) -> None:
        """Note a setting; warn if it was given before (the last one wins)."""
        first = self.seen.get(key)
        if first is not None:
            self.warnings.append(repeated_directive(d.path, d.lineno, what, first))
        self.seen[key] = d.lineno


def _monitor(draft: _Draft, d: Directive) -> None:
    mon = _parse_monitor(d)
    earlier = draft.monitors.get(mon.system)
    if earlier is not None:
        raise d.error(
            f"MONITOR {mon.system} is already defined on line {earlier.lineno} "
            "(upsmon ignores this second line)"
        )
    draft.monitors[mon.system] = mon


def _trigger(draft: _Draft, d: Directive) -> None:
    d.check_count(1, 2, "<value>|off [<ups[@host[:port]]>]")
    field, least, most, unit = _TRIGGERS[d.name]
    value: int | None = None
    if upper(d.args[0]) != "OFF":
        value = parse_int(d.args[0], d, what=f"a whole number of {unit} or off")
        if value < least or (most is not None and value > most):
            span = f"{least}-{most}" if most is not None else f"{least} or more"
            raise d.error(f"{d.name} must be {span} {unit} (or off), not {value}")
    if len(d.args) == 1:
        draft.once(d.name, d.name, d)
        draft.values[field] = value
        return
    system = d.args[1]
    key = (d.name, system)
    if key in draft.override_lines:
        draft.warnings.append(
            repeated_directive(
                d.path, d.lineno, f"{d.name} for {system}", draft.override_lines[key]
            )
        )
    draft.override_lines[key] = d.lineno
    draft.overrides.setdefault(system, {})[field] = value


def _notify_type(d: Directive, draft: _Draft) -> str | None:
    """The line's notify type (upper-cased), or ``None`` with a warning if unknown."""
    ntype = upper(d.args[0])
    if ntype in NOTIFY_TYPES:
        draft.once(f"{d.name} {ntype}", f"{d.name} {ntype}", d)
        return ntype
    draft.warnings.append(
        d.warning(
            f"{d.name}: unknown notify type {d.args[0]!r}; ignored "
            f"(known: {' '.join(NOTIFY_TYPES)})"
        )
    )
    return None


def _notifymsg(draft: _Draft, d: Directive) -> None:
    d.check_count(2, 2, '<type> "<message>"')
    ntype = upper(d.args[0])
    if ntype in NOTIFY_TYPES:
        _check_message(ntype, d.args[1], d)
    if _notify_type(d, draft) is not None:
        draft.notifymsg[ntype] = d.args[1]


def _notifyflag(draft: _Draft, d: Directive) -> None:
    """``NOTIFYFLAG type FLAG[+FLAG...]``: unknown flags are dropped with a warning."""
    d.check_count(2, 2, "<type> FLAG[+FLAG...]")
    ntype = _notify_type(d, draft)
    if ntype is None:
        return
    flags: set[str] = set()
    for word in d.args[1].split("+"):
        if word in NOTIFY_FLAGS:
            flags.add(word)
            continue
        hint = f" (flags are case-sensitive: {upper(word)})" if upper(word) in NOTIFY_FLAGS else ""
        draft.warnings.append(
            d.warning(
                f"invalid notify flag {word!r} for {ntype}{hint}; ignored "
                f"(known: {'+'.join(NOTIFY_FLAGS)})"
            )
        )
    if "IGNORE" in flags and len(flags) > 1:
        draft.warnings.append(
            d.warning(
                f"NOTIFYFLAG {ntype} combines IGNORE with other flags; IGNORE wins and "
                "nothing is done"
            )
        )
    draft.notifyflag[ntype] = frozenset(flags)


def _certhost(draft: _Draft, d: Directive) -> None:
    d.check_count(4, 4, "<host> <certname> <certverify 0|1> <forcessl 0|1>")
    host, certname, verify, forcessl = d.args
    entry = CertHost(
        host,
        certname,
        _parse_01(verify, "CERTHOST certverify", d),
        _parse_01(forcessl, "CERTHOST forcessl", d),
        d.lineno,
    )
    earlier = draft.certhost.pop(host, None)
    if earlier is not None:
        draft.warnings.append(
            repeated_directive(d.path, d.lineno, f"CERTHOST {host}", earlier.lineno)
        )
    draft.certhost[host] = entry


def _certpin(draft: _Draft, d: Directive) -> None:
    d.check_count(2, 2, "<host> <SHA-256 fingerprint of its certificate>")
    host, text = d.args
    try:
        pin = parse_pin(text)
    except ValueError as exc:
        raise d.error(f"NUTTRIO_CERTPIN {host}: {exc}") from None
    draft.once(f"NUTTRIO_CERTPIN {host}", f"NUTTRIO_CERTPIN {host}", d)
    draft.certpins[host] = pin


def _command(draft: _Draft, d: Directive) -> None:
    """``SHUTDOWNCMD`` / ``NOTIFYCMD``: a command, later words kept as arguments."""
    d.check_count(1, 31, "<command>")
    draft.once(d.name, d.name, d)
    field = d.name.lower()
    draft.values[field] = d.args[0]
    draft.values[f"{field}_args"] = d.args[1:]
    if len(d.args) > 1:
        draft.warnings.append(
            d.warning(
                f"{d.name} has words after the command ({' '.join(d.args[1:])!r}): upsmon "
                "2.8.0-2.8.5 ignores them, NUT 2.8.6 and nuttrio pass them as arguments; "
                "quote the whole command to be understood the same by all"
            )
        )
    ops = shell_syntax(" ".join(d.args))
    if d.name == "NOTIFYCMD" and ops:
        draft.warnings.append(
            d.warning(
                f"NOTIFYCMD {d.args[0]!r} contains shell syntax ({' '.join(ops)}): nuttrio "
                "runs NOTIFYCMD without a shell, so the program gets these as plain words; "
                "put the shell command in a script and name the script here"
            )
        )


def _scalar(field: str, convert: Callable[[str, Directive], object]) -> Handler[_Draft]:
    """A one-value setting: count and repetition checked, then ``convert``-ed into ``field``."""

    def handle(draft: _Draft, d: Directive) -> None:
        d.check_count(1, 1, "one value")
        draft.once(d.name, d.name, d)
        draft.values[field] = convert(d.args[0], d)

    return handle


def _seconds(
    minimum: int | None = 0, why: str = "", what: str = "a whole number of seconds"
) -> Callable[[str, Directive], object]:
    return lambda word, d: parse_int(word, d, minimum=minimum, what=what, why=why)


def _minsupplies(draft: _Draft, d: Directive) -> None:
    _scalar("minsupplies", lambda word, d: parse_int(word, d, minimum=0))(draft, d)
    draft.minsupplies_line = d.lineno


def _run_as_user(draft: _Draft, d: Directive) -> None:
    _scalar("run_as_user", lambda word, d: word)(draft, d)
    draft.values["run_as_user_line"] = d.lineno


def _shutdownexit(word: str, d: Directive) -> int:
    flag = parse_bool(word, UPSMON_BOOLEANS)
    if flag is not None:
        return 0 if flag else -1
    return parse_int(
        word, d, what="yes, no or a number of seconds (upsmon takes anything else as yes)"
    )


def _certident(draft: _Draft, d: Directive) -> None:
    d.check_count(2, 2, "<certificate name> <password>")
    draft.once(d.name, d.name, d)
    draft.values["certident"] = CertIdent(d.args[0], d.args[1])


_BUSY = "0 would make upsmon poll in a busy loop"

#: upsmon.conf's directives and their handlers.
_TABLE: Mapping[str, Handler[_Draft]] = MappingProxyType(
    {
        "MONITOR": _monitor,
        "NOTIFYMSG": _notifymsg,
        "NOTIFYFLAG": _notifyflag,
        "CERTHOST": _certhost,
        "NUTTRIO_CERTPIN": _certpin,
        "SHUTDOWNCMD": _command,
        "NOTIFYCMD": _command,
        "CERTIDENT": _certident,
        "MINSUPPLIES": _minsupplies,
        "POLLFREQ": _scalar("pollfreq", _seconds(1, _BUSY)),
        "POLLFREQALERT": _scalar("pollfreqalert", _seconds(1, _BUSY)),
        "HOSTSYNC": _scalar("hostsync", _seconds()),
        "DEADTIME": _scalar("deadtime", _seconds()),
        "FINALDELAY": _scalar("finaldelay", _seconds()),
        "RBWARNTIME": _scalar("rbwarntime", _seconds()),
        "NOCOMMWARNTIME": _scalar("nocommwarntime", _seconds()),
        "OBLBDURATION": _scalar(
            "oblbduration", _seconds(0, "upsmon reads a negative value as 0, i.e. no delay")
        ),
        "OFFDURATION": _scalar(
            "offduration", _seconds(None, what="a whole number of seconds (negative: never)")
        ),
        "OVERDURATION": _scalar(
            "overduration", _seconds(None, what="a whole number of seconds (negative: never)")
        ),
        "POLLFAIL_LOG_THROTTLE_MAX": _scalar(
            "pollfail_log_throttle_max", lambda word, d: max(parse_int(word, d), -1)
        ),
        "DEBUG_MIN": _scalar("debug_min", lambda word, d: parse_int(word, d, minimum=0)),
        "SHUTDOWNEXIT": _scalar("shutdownexit", _shutdownexit),
        "ALARMCRITICAL": _scalar("alarmcritical", lambda word, d: _parse_01(word, d.name, d)),
        "CERTVERIFY": _scalar("certverify", lambda word, d: _parse_01(word, d.name, d)),
        "FORCESSL": _scalar("forcessl", lambda word, d: _parse_01(word, d.name, d)),
        "POWERDOWNFLAG": _scalar("powerdownflag", lambda word, d: Path(word)),
        "CERTPATH": _scalar("certpath", lambda word, d: Path(word)),
        "CERTFILE": _scalar("certfile", lambda word, d: Path(word)),
        "RUN_AS_USER": _run_as_user,
        **dict.fromkeys(_TRIGGERS, _trigger),
    }
)


def _canonical(name: str) -> str:
    return "DEBUG_MIN" if upper(name) == "DEBUG_MIN" else name


def _check_whole(draft: _Draft) -> None:
    """The checks that need the whole file: supplies, MONITOR lines, trigger targets."""
    path = draft.path
    mons = tuple(draft.monitors.values())
    if not mons:
        raise ConfigError(
            "no MONITOR line: upsmon.conf must name at least one UPS to watch "
            "(MONITOR <ups[@host[:port]]> <powervalue> <user> <password> primary|secondary)",
            path,
        )
    minsupplies = draft.values.get("minsupplies", 1)
    assert isinstance(minsupplies, int)
    total = sum(m.power_value for m in mons)
    if total < minsupplies:
        raise ConfigError(
            f"insufficient power configured: the MONITOR power values add up to {total}, "
            f"less than MINSUPPLIES {minsupplies} (upsmon refuses to start)",
            path,
            draft.minsupplies_line,
        )
    for (directive, system), lineno in draft.override_lines.items():
        if system not in draft.monitors:
            known = ", ".join(draft.monitors)
            raise ConfigError(
                f"{directive} names {system!r}, which no MONITOR line defines "
                f"(write the UPS exactly as in MONITOR: {known})",
                path,
                lineno,
            )


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
    error (a missing closing quote too: upsmon reads on into the next lines); a known
    directive with too few words (upsmon: "invalid directive") or too many
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
    only the case is wrong); a NOTIFYCMD with shell syntax (``>``, ``|``, ``;``, ``&``,
    ``$``...: nuttrio runs it without a shell, unlike SHUTDOWNCMD); an unknown notify
    type in NOTIFYMSG or NOTIFYFLAG; an unknown
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
    draft = _Draft(path)
    dispatch(path, UPSMON_CONF, _TABLE, draft, draft.warnings, canonical=_canonical)
    _check_whole(draft)
    cfg = UpsmonConfig(
        path=path,
        monitors=tuple(draft.monitors.values()),
        notifymsg=draft.notifymsg,
        notifyflag=draft.notifyflag,
        certhost=tuple(draft.certhost.values()),
        certpins=draft.certpins,
        trigger_overrides=draft.overrides,
        **draft.values,  # type: ignore[arg-type]
    )
    return attrs.evolve(cfg, warnings=(*draft.warnings, *_upsmon_sanity(cfg)))


def _upsmon_sanity(cfg: UpsmonConfig) -> Iterable[ConfigWarning]:
    """Warnings about settings that are valid but probably not what was meant."""
    path = cfg.path
    if cfg.shutdowncmd is None and cfg.minsupplies > 0:
        yield ConfigWarning(path, None, "no SHUTDOWNCMD: this host cannot shut itself down")
    execs = [t for t, flags in cfg.notifyflag.items() if "EXEC" in flags]
    if cfg.notifycmd is None and execs:
        yield ConfigWarning(
            path,
            None,
            f"NOTIFYFLAG gives EXEC to {' '.join(execs)} but there is no NOTIFYCMD to run",
        )
    if cfg.powerdownflag is None and any(m.primary for m in cfg.monitors):
        yield ConfigWarning(
            path,
            None,
            "no POWERDOWNFLAG: this primary cannot tell the late shutdown to turn the UPS off "
            "(upsmon has no default; packages use /etc/killpower)",
        )
    slowest = max(cfg.pollfreq, cfg.pollfreqalert)
    if cfg.deadtime < slowest:
        yield ConfigWarning(
            path,
            None,
            f"DEADTIME {cfg.deadtime} is shorter than the poll interval {slowest}: a single "
            "failed poll of a UPS on battery makes it dead (NUT advises 3 times the longer "
            "of POLLFREQ and POLLFREQALERT)",
        )
    places: dict[tuple[str, str, int], Monitor] = {}
    for mon in cfg.monitors:
        other = places.setdefault((mon.ups, upper(mon.host), mon.port), mon)
        if other is not mon:
            yield ConfigWarning(
                path,
                mon.lineno,
                f"MONITOR {mon.system} is the same UPS as {other.system} (line "
                f"{other.lineno}): both log in and both power values count",
            )
    if cfg.monitors and readable_by_others(path):
        yield ConfigWarning(
            path, None, "file is readable by other users but holds MONITOR passwords"
        )
