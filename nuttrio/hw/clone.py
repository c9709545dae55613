"""``driver = clone``: another UPS re-exported as a local one, as NUT 2.8.0's clone driver.

General theory of operation
---------------------------
The state is :class:`~nuttrio.hw.clone_core.CloneCore` (sans-IO); :class:`CloneUps` feeds
it from a *source* on the driver kit's polling loop (every ``pollinterval`` seconds,
default 2) and sends it the source commands the core asks for. ``port`` names the source:

* ``ups@host[:port]``: a UPS on another NUT server (upsd or nuttrio), read through
  :class:`~nuttrio.hw.repeater.RepeaterUps` (``username``/``password`` for forwarded
  commands);
* the name of another section of this ups.conf: that UPS as nuttrio's state store has it;
* ``DRIVER-UPS``, a driver socket in STATEPATH (what clone.c reads): the section ``UPS``
  from the store when nuttrio serves it with its own driver (it has no socket), else the
  socket, through :class:`~nuttrio.hw.nutdriver.NutDriverBridge` in its external mode.

While the source cannot be read, is stale, or has said nothing for 15 s (clone.c's
``sstate_dead(15)``: a hung driver whose socket stays open), the clone reads DATA-STALE;
it is fresh at the first good poll after. A driver socket silent that long is dropped
and connected again, as clone.c does. For a remote server or a local section, SET VAR
and INSTCMD other than the clone's own are forwarded to the source (nuttrio's
extension; clone.c answers them unknown). A source driver that fails ends the clone's
run (the supervisor restarts it); cancellation stops the source driver with the clone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs
import trio

from ..nutconf import DEFAULT_STATEPATH, ConfigError, UpsSection
from ..nutconf.common import strtol
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink, StateStore, UpsEntry
from .base import Driver, DriverContext, DriverFailed
from .clone_core import CloneCore, CloneSettings, c_strtod
from .kit import DeviceSilent, every, run_polling_driver
from .nutdriver import NutDriverBridge, NutDriverSettings
from .repeater import RepeaterSettings, RepeaterUps, split_remote

__all__ = ["CloneUps", "clone_factory"]

DRIVER_NAME = "clone"
DRIVER_VERSION = "2.8.0"
DRIVER_VERSION_INTERNAL = "0.03"
DEFAULT_POLLINTERVAL = 2.0
#: Seconds without news from the source after which clone.c calls it dead (``sstate_dead``).
SILENCE_LIMIT = 15.0

_INT = re.compile(r"[ \t]*[+-]?[0-9]+")
_FLOAT = re.compile(r"[ \t]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

#: clone.c's options: key -> (pattern, converter, CloneSettings field).
_NUMBERS: dict[str, tuple[re.Pattern[str], Callable[[str], float], str]] = {
    "offdelay": (_INT, strtol, "offdelay"),
    "ondelay": (_INT, strtol, "ondelay"),
    "mincharge": (_FLOAT, c_strtod, "mincharge"),
    "minruntime": (_FLOAT, c_strtod, "minruntime"),
}
_NAMES = {"load.off": "load_off", "load.on": "load_on", "load.status": "load_status"}
#: Keys of NUT's driver core (main.c) and nuttrio's credentials for a remote source.
_COMMON_KEYS = frozenset(
    {
        "driver",
        "port",
        "desc",
        "user",
        "group",
        "pollinterval",
        "synchronous",
        "sdorder",
        "sddelay",
        "maxstartdelay",
        "maxretry",
        "retrydelay",
        "debug_min",
        "nolock",
        "ignorelb",
        "username",
        "password",
    }
)


@attrs.frozen
class _Source:
    """Where the clone reads: a UPS of the store (local) or a driver of its own."""

    driver: Driver | None
    forward: bool
    store: StateStore | None = None
    local: str | None = None

    def entry(self, name: str) -> UpsEntry:
        """The entry to read: the local UPS's, else a private one the driver feeds.

        Raises:
            DriverFailed: If the local UPS is no longer in the store.
        """
        if self.store is None or self.local is None:
            return UpsEntry(f"{name}-source")
        entry = self.store.get(self.local)
        if entry is None:
            raise DriverFailed(f"the UPS {self.local} it clones is gone")
        return entry


class CloneUps:
    """The clone driver.

    Args:
        settings: The core's settings.
        source: What to read (built by :func:`clone_factory`).
        pollinterval: Seconds between reads of the source.
    """

    def __init__(self, settings: CloneSettings, source: _Source, pollinterval: float) -> None:
        self.settings = settings
        self.source = source
        self.pollinterval = pollinterval

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the source and serve commands until cancelled.

        Started after the first poll (the clone reads DATA-STALE until the source has
        data). Raises what the source's own driver raises.
        """
        entry = self.source.entry(link.name)
        core = CloneCore(self.settings, typed=self.source.forward)
        async with trio.open_nursery() as nursery:
            if self.source.driver is not None:
                nursery.start_soon(_drive, self.source.driver, entry)

            async def poll(planned: float) -> None:
                snap = entry.snapshot()
                if not snap.connected or snap.data_stale or entry.is_stale(SILENCE_LIMIT, snap):
                    raise DeviceSilent(f"the source {entry.name} has no fresh data")
                core.feed(snap.variables.values(), snap.commands)
                for name in core.tick(planned):
                    entry.submit(DriverCommand(CommandKind.INSTCMD, name))

            async def execute(command: DriverCommand) -> CommandStatus:
                if command.kind is CommandKind.SET:
                    own = core.setvar(command.name, command.value or "")
                else:
                    own = core.instcmd(command.name)
                if own is not None:
                    return own
                if not self.source.forward:
                    return CommandStatus.UNKNOWN
                return await _forward(entry, command)

            await run_polling_driver(
                core,
                link,
                poll,
                execute,
                every(self.pollinterval, trio.current_time()),
                task_status=task_status,
            )


async def _drive(driver: Driver, entry: UpsEntry) -> None:
    with entry.connect() as link:
        await driver.run(link)


async def _forward(entry: UpsEntry, command: DriverCommand) -> CommandStatus:
    """Pass a command on to the source; its outcome (FAILED if not taken or after 30 s)."""
    copy = DriverCommand(command.kind, command.name, command.value)
    if not entry.submit(copy):
        return CommandStatus.FAILED
    with trio.move_on_after(30):
        return await copy.result.wait()
    return CommandStatus.FAILED


def _settings(section: UpsSection, fail: Callable[[str], ConfigError]) -> CloneSettings:
    values: dict[str, object] = {}
    own = [("driver.parameter.port", section.port)]
    preset: dict[str, list[tuple[str, str]]] = {"default": [], "override": []}
    for key, value in section.options.items():
        kind, dot, name = key.partition(".")
        if dot and name and kind in preset:
            preset[kind].append((name, value))
        elif key in _NUMBERS:
            pattern, convert, field = _NUMBERS[key]
            if not pattern.fullmatch(value):
                raise fail(f"{key} = {value!r} is not a number")
            values[field] = convert(value)
        elif key in _NAMES:
            values[_NAMES[key]] = value
        elif key not in _COMMON_KEYS:
            raise fail(f"{key!r} is not a valid setting for driver clone")
        if key in _NUMBERS or key in _NAMES:
            own.append((f"driver.parameter.{key}", value))
    own += [
        ("driver.name", DRIVER_NAME),
        ("driver.version", DRIVER_VERSION),
        ("driver.version.internal", DRIVER_VERSION_INTERNAL),
    ]
    return CloneSettings(
        own=tuple(own),
        defaults=tuple(preset["default"]),
        overrides=tuple(preset["override"]),
        **values,  # type: ignore[arg-type]
    )


def _source(section: UpsSection, context: DriverContext, poll: float) -> _Source:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"UPS [{section.name}]: {message}", section.path, section.lineno)

    port = section.port
    if "@" in port:
        try:
            remote, host, tcp_port = split_remote(port, "the clone")
        except ValueError as exc:
            raise fail(f"port = {port!r}: {exc}") from None
        repeater = RepeaterSettings(
            name=section.name,
            port=port,
            remote=remote,
            host=host,
            tcp_port=tcp_port,
            pollinterval=poll,
            username=section.options.get("username"),
            password=section.options.get("password"),
        )
        return _Source(RepeaterUps(repeater), forward=True)
    for other in context.sections:
        if other.name.lower() == section.name.lower():
            continue
        by_name = other.name.lower() == port.lower()
        by_socket = port == f"{other.driver}-{other.name}" and not context.uses_nut_binary(other)
        if (by_name or by_socket) and context.store is not None:
            return _Source(None, forward=by_name, store=context.store, local=other.name)
    statepath = context.statepath or DEFAULT_STATEPATH
    bridge = NutDriverBridge(
        NutDriverSettings(
            ups=section.name,
            driver=DRIVER_NAME,
            socket_path=statepath / port,
            confdir=context.confdir,
            ping_interval=SILENCE_LIMIT / 3,  # clone.c's PING
            silence_limit=SILENCE_LIMIT,
        )
    )
    return _Source(bridge, forward=False)


def clone_factory(section: UpsSection, context: DriverContext) -> CloneUps:
    """Build the clone for a ``driver = clone`` section.

    Raises:
        ConfigError: For a key clone does not know, a bad number (``offdelay``,
            ``ondelay``, ``mincharge``, ``minruntime``, ``pollinterval``), or a bad
            ``ups@host[:port]``; with ups.conf's file and line.
    """

    def fail(message: str) -> ConfigError:
        return ConfigError(f"UPS [{section.name}]: {message}", section.path, section.lineno)

    text = section.options.get("pollinterval", context.ups_globals.get("pollinterval"))
    poll = float(strtol(text)) if text is not None else DEFAULT_POLLINTERVAL
    if text is not None and (not _INT.fullmatch(text) or poll <= 0):
        raise fail(f"invalid pollinterval: {text!r} (a positive number of seconds)")
    settings = _settings(section, fail)
    settings = attrs.evolve(
        settings,
        own=(*settings.own, ("driver.parameter.pollinterval", f"{poll:g}")),
    )
    return CloneUps(settings, _source(section, context, poll), poll)
