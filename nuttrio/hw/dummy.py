r"""nuttrio's ``dummy-ups``: a UPS simulated from a ``.dev``/``.seq`` file, as NUT 2.8.0 does it.

General theory of operation
---------------------------
A ups.conf section with ``driver = dummy-ups`` names a *definition file* in ``port``
(relative to the configuration directory unless absolute). Each line of the file is
``name: value words…`` as ``upsc`` prints it, split by NUT's config tokenizer
(:mod:`nuttrio.protocol.tokenizer`); ``TIMER <seconds>`` pauses the reading. A ``.seq``
file (mode ``dummy-loop``) is read again from the top each time its end is reached, so it
plays a sequence forever; a ``.dev`` file (mode ``dummy-once``) is read once and read again
only when its modification time changes. ``mode = dummy-once|dummy-loop|dummy`` in the
section overrides the guess from the file name. The repeater mode (``port = ups@host``,
or ``mode = repeater``) is :mod:`nuttrio.hw.repeater`, which :func:`dummy_factory` hands
such a section to.

The simulator is :class:`DummyCore`, synchronous and clock-free (every step takes ``now``),
which keeps NUT's driver-side variable store with its quirks; :class:`DummyUps` runs it on
the driver kit's polling loop (:func:`nuttrio.hw.kit.run_polling_driver`), which publishes
its state to the state store and serves commands. Both reproduce dummy-ups
0.15 of NUT 2.8.0 (facts from ``drivers/dummy-ups.c``, ``drivers/main.c``,
``drivers/dstate.c``, ``common/state.c`` and ``common/parseconf.c``, checked against the
real programs), including these transformations of the file:

* the first word loses everything from its first ``:`` on (``ups.mfr:APC`` is the name
  ``ups.mfr`` with no value); a first word *starting* with ``TIMER`` is a timer;
* value words are joined with single spaces and cut to 127 characters (quote a value to
  keep its spacing); an unquoted ``=`` is a word of its own (``ID=18`` becomes
  ``ID = 18``); ``#`` starts a comment; bytes outside 0x20–0x7F are dropped;
* a line with a name but no value reuses the value of the latest valued line read in the
  same update (dummy-ups' value buffer is not cleared); with none yet, dummy-ups reads
  uninitialised memory, which nuttrio takes as an empty value;
* an empty value deletes the variable; ``driver.*`` lines are skipped;
* a name *starting* with ``ups.status`` sets ``ups.status`` from the words, joined by
  single spaces (at most 255 characters, ``LB`` dropped and re-derived with ``ignorelb``);
* every other line is a write: the value (at most 255 characters) replaces the old one
  unless they differ only in letter case (NUT compares with ``strcasecmp``); the name keeps
  the spelling it was first created with; the flags come from
  :mod:`nuttrio.hw.dummy_table` (unknown names: RW STRING:32);
* after the first update, ``device.mfr``/``device.model``/``device.serial`` are copied
  once from ``ups.*``, in their *escaped* form (``"`` ``\`` ``#`` gain a backslash);
* a parse error (an unescaped ``#`` inside quotes) skips the line up to that ``#``; what
  follows the ``#`` is read as a new line;
* ``TIMER`` without a number uses the second word of the latest line with two words read
  since the file was opened (``atoi``: ``TIMER 2.5`` is 2 s, ``TIMER x`` is 0 s).

Where dummy-ups 2.8.0 crashes (``TIMER`` without a number and no earlier two-word line) or
would send upsd a variable name that does not survive the driver socket (empty, or with a
space, ``#``, ``\``, ``=`` or a leading ``"``), nuttrio raises :class:`ConfigError` naming
the file and line instead.

Timing follows dummy-ups' main loop: the file is first read at start-up, then each update
sleeps :data:`UPDATE_DELAY` (1 s) before doing its work, and updates start every
``pollinterval`` seconds (default 2). So with the defaults the file is worked on at
``t0``, ``t0+1`` (the state is published then), ``t0+2``, ``t0+4``, ``t0+6``… A
``TIMER n`` read at time ``t`` resumes the reading at the first update at or after
``t+n``; reaching the end of a ``.seq`` costs one update before it starts over. Times
are the planned ones, never the measured ones: a task woken late does not shift the
TIMERs (``OL / TIMER 2 / OB / TIMER 2`` changes every 4, 2, 4, 2... s, as dummy-ups).

SET VAR writes like a file line (same flags; an empty value deletes; a name starting with
``ups.status`` sets the status) and reports SUCCESS; every instant command (``load.off``
is the only one offered) reports UNKNOWN, as dummy-ups does. The data never goes stale:
the driver says it is alive at every update.
"""

from __future__ import annotations

import enum
import itertools
import logging
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from ..nutconf import ConfigError, UpsSection
from ..nutconf.common import atoi as _atoi
from ..nutconf.common import fold as _fold
from ..protocol.tokenizer import Line, LineError, split_text
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink
from .base import Driver, DriverContext
from .dstate import DState
from .dummy_table import INITIAL, KNOWN, UNKNOWN_AUX, UNKNOWN_FLAGS, StFlag
from .kit import every, run_polling_driver

if TYPE_CHECKING:
    from .repeater import RepeaterUps

__all__ = [
    "DRIVER_NAME",
    "DRIVER_VERSION",
    "DRIVER_VERSION_INTERNAL",
    "SIMULATED_DEV",
    "UPDATE_DELAY",
    "BuiltinSource",
    "DefinitionLine",
    "DefinitionSource",
    "DummyCore",
    "DummyMode",
    "DummySettings",
    "DummyUps",
    "FileSource",
    "dummy_factory",
    "parse_definition",
    "simulated_section",
    "simulated_ups",
]

log = logging.getLogger(__name__)

#: The driver name (``driver.name``).
DRIVER_NAME = "dummy-ups"
#: The NUT release imitated (``driver.version``).
DRIVER_VERSION = "2.8.0"
#: dummy-ups' own version in that release (``driver.version.internal``).
DRIVER_VERSION_INTERNAL = "0.15"
#: Seconds each update sleeps before its work (dummy-ups calls ``sleep(1)``).
UPDATE_DELAY = 1.0
#: ``pollinterval`` when the section has none.
DEFAULT_POLLINTERVAL = 2
#: The only instant command dummy-ups offers.
COMMANDS: tuple[str, ...] = ("load.off",)

_FILE_VALUE_MAX = 127  # dummy-ups joins value words into a 128-byte buffer
_TIMER = "TIMER"
_ASAP = -math.inf

# ups.conf keys the driver's main() accepts without storing them as variables.
_SILENT_KEYS = frozenset(
    {"driver", "desc", "sdorder", "sddelay", "user", "group", "debug_min", "port"}
)
_BAD_NAME = re.compile(r'[\s#\\=]|^"|^$')


# ---------------------------------------------------------------------------------------
# The definition file


@attrs.frozen
class DefinitionLine:
    """One logical line of a definition file, as dummy-ups' parser hands it over.

    Attributes:
        words: The words (for a parse error: those read before the error).
        lineno: The physical line (1-based) where the line starts.
        error: A parse error: dummy-ups skips the line (but its words still count for a
            later ``TIMER`` without a number).
    """

    words: tuple[str, ...]
    lineno: int
    error: bool = False


def _line_offset(data: bytes, lineno: int) -> int:
    pos = 0
    for _ in range(lineno - 1):
        pos = data.index(b"\n", pos) + 1
    return pos


def _error_hash(data: bytes, start: int) -> int:
    """Find the ``#`` that makes the logical line starting at ``start`` a parse error."""
    pos = start
    while True:
        pos = data.index(b"#", pos)
        if any(isinstance(item, LineError) for item in split_text(data[start : pos + 1])):
            return pos
        pos += 1


def parse_definition(data: bytes) -> list[DefinitionLine]:
    """Split a definition file into lines as NUT's parser reads a file for dummy-ups.

    Blank and comment lines are left out. A parse error (an unescaped ``#`` inside quotes)
    yields an ``error`` line with the words read before the ``#``; as in NUT, reading
    goes on right after that ``#``, as if a new line started there.

    Args:
        data: The file's bytes.

    Returns:
        The lines in file order.
    """
    out: list[DefinitionLine] = []
    base = 0  # physical lines before ``data``
    while True:
        items = split_text(data)
        for item in items:
            if isinstance(item, Line):
                out.append(DefinitionLine(item.words, item.lineno + base))
                continue
            start = _line_offset(data, item.lineno)
            hash_pos = _error_hash(data, start)
            # The words read up to the error, the open quoted word included.
            before = split_text(data[start:hash_pos] + b'"')
            words = before[0].words if before and isinstance(before[0], Line) else ()
            out.append(DefinitionLine(words, item.lineno + base, error=True))
            base += data.count(b"\n", 0, hash_pos + 1)
            data = data[hash_pos + 1 :]
            break
        else:
            return out


class DefinitionSource(Protocol):
    """Where a simulator reads its definition."""

    @property
    def label(self) -> str:
        """What to call the definition in messages (a path)."""
        ...

    @property
    def path(self) -> Path | None:
        """The file, if the definition is one."""
        ...

    def read(self) -> bytes:
        """Return the whole definition.

        Raises:
            ConfigError: If it cannot be read.
        """
        ...

    def mtime(self) -> int | None:
        """Modification time in whole seconds, or ``None`` if it cannot be had now."""
        ...


@attrs.frozen
class FileSource:
    """A definition file on disk. Reads are synchronous: the files are small.

    Attributes:
        path: The file.
    """

    path: Path

    @property
    def label(self) -> str:
        """The path as text."""
        return str(self.path)

    def read(self) -> bytes:
        """Read the file.

        Raises:
            ConfigError: If it is missing or unreadable (dummy-ups exits then).
        """
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"can't open dummy-ups definition file {self.path}: {exc.strerror or exc}",
                self.path,
            ) from exc

    def mtime(self) -> int | None:
        """The file's ``st_mtime`` in whole seconds, or ``None`` if ``stat`` fails."""
        try:
            return self.path.stat().st_mtime_ns // 1_000_000_000
        except OSError:
            return None


@attrs.frozen
class BuiltinSource:
    """A definition held in memory; it never changes.

    Attributes:
        text: The definition, in the file format.
        label: What to call it in messages.
    """

    text: bytes
    label: str = "<built-in>"

    @property
    def path(self) -> Path | None:
        """Always ``None``."""
        return None

    def read(self) -> bytes:
        """Return the text."""
        return self.text

    def mtime(self) -> int | None:
        """Always 0: the text never changes."""
        return 0


# ---------------------------------------------------------------------------------------
# Settings from ups.conf


class DummyMode(enum.StrEnum):
    """How the definition file is replayed (dummy-ups' ``mode``)."""

    #: Read once; read again when the file's modification time changes (``.dev``).
    ONCE = "dummy-once"
    #: Read again from the top whenever the end is reached (``.seq``, and the default).
    LOOP = "dummy-loop"


@attrs.frozen
class DummySettings:
    """A dummy-ups section, checked and resolved.

    Attributes:
        name: The UPS name.
        port: ``port`` as written.
        loop: Whether the file is replayed in a loop (``dummy-loop``) or once.
        mode_value: ``driver.parameter.mode`` as dummy-ups publishes it.
        pollinterval: Seconds between the starts of two updates.
        synchronous: ``driver.parameter.synchronous`` (``yes``, ``no`` or ``auto``).
        early: Variables set from ups.conf before anything else, in file order:
            ``(name, value, immutable)`` (``driver.parameter.*``, ``driver.flag.*``,
            ``default.*`` and ``override.*``; the latter are immutable).
        config_path: The ups.conf file, for messages.
        config_line: The line of the section header, for messages.
    """

    name: str
    port: str
    loop: bool
    mode_value: str
    pollinterval: int = DEFAULT_POLLINTERVAL
    synchronous: str = "auto"
    early: tuple[tuple[str, str, bool], ...] = ()
    config_path: Path | None = None
    config_line: int | None = None

    @classmethod
    def from_section(
        cls, section: UpsSection, ups_globals: Mapping[str, str] = MappingProxyType({})
    ) -> DummySettings:
        """Check a ``dummy-ups`` section as the driver's ``main()`` and ``upsdrv_initups`` do.

        Args:
            section: The section; its ``options`` are the keys dummy-ups reads.
            ups_globals: ups.conf's global settings: a global ``pollinterval`` applies
                unless the section has its own (as in NUT's ``do_global_args``).

        Returns:
            The settings, with the mode resolved (``mode``, else the file name).

        Raises:
            ConfigError: For a key dummy-ups rejects (it exits with "not a valid variable
                name for this driver"), a ``pollinterval`` that is not a positive number,
                or the repeater mode (``port`` with ``@`` and no ``mode``, or
                ``mode = repeater``), which is :mod:`nuttrio.hw.repeater`'s.
        """

        def fail(message: str) -> ConfigError:
            return ConfigError(f"UPS [{section.name}]: {message}", section.path, section.lineno)

        early: list[tuple[str, str, bool]] = [("driver.parameter.port", section.port, False)]
        pollinterval = DEFAULT_POLLINTERVAL
        if "pollinterval" in ups_globals:
            pollinterval = _atoi(ups_globals["pollinterval"])
            if pollinterval <= 0:
                raise fail(
                    f"invalid global pollinterval: {ups_globals['pollinterval']!r} "
                    "(a positive number of seconds)"
                )
        synchronous = "auto"
        mode: str | None = None
        for key, value in section.options.items():
            if key in ("nolock", "ignorelb"):
                early.append((f"driver.flag.{key}", "enabled", False))
            elif key in _SILENT_KEYS:
                pass
            elif key == "synchronous":
                synchronous = value if value in ("yes", "auto") else "no"
            elif key == "pollinterval":
                pollinterval = _atoi(value)
                if pollinterval <= 0:
                    raise fail(f"invalid pollinterval: {value!r} (a positive number of seconds)")
            elif key == "mode":
                mode = value
                early.append(("driver.parameter.mode", value, False))
            elif key.startswith("override.") and len(key) > 9:
                early.append((key[9:], value, True))
            elif key.startswith("default.") and len(key) > 8:
                early.append((key[8:], value, False))
            else:
                raise fail(f"{key!r} is not a valid setting for driver dummy-ups")

        if mode == "repeater" or (mode is None and "@" in section.port):
            raise fail(
                f"dummy-ups repeater mode (port = {section.port!r}, upsname@host) has no "
                "definition file: nuttrio.hw.repeater serves it"
            )
        loop: bool | None = {"dummy-loop": True, "dummy-once": False, "dummy": True}.get(mode or "")
        if loop is None:
            if section.port.endswith(".seq"):
                loop = True
            elif section.port.endswith(".dev"):
                loop = False
        if loop is None:
            loop, mode_value = True, "dummy"
        else:
            mode_value = str(DummyMode.LOOP if loop else DummyMode.ONCE)
        return cls(
            name=section.name,
            port=section.port,
            loop=loop,
            mode_value=mode_value,
            pollinterval=pollinterval,
            synchronous=synchronous,
            early=tuple(early),
            config_path=section.path,
            config_line=section.lineno,
        )

    def resolve(self, confdir: Path) -> Path:
        """The definition file: ``port`` if absolute, else relative to ``confdir``."""
        return Path(self.port) if self.port.startswith("/") else confdir / self.port


# ---------------------------------------------------------------------------------------
# The simulator


@attrs.define
class _Reader:
    """An open definition: dummy-ups' parser context, kept across TIMER pauses."""

    lines: list[DefinitionLine]
    pos: int = 0
    #: The parser's second argument slot: the second word of the latest line with two.
    slot1: str | None = None


class DummyCore(DState):
    """The dummy-ups simulator without I/O scheduling: call its steps with the time.

    The order is :meth:`start` (``t0``), :meth:`update` (``t0 + UPDATE_DELAY``),
    :meth:`finish_startup`; then :meth:`update` at each later update time, and
    :meth:`setvar`/:meth:`instcmd` for commands at any time. :attr:`changes` grows with
    every change to the variables, so a caller knows when to publish.

    Args:
        settings: The section.
        source: The definition.
    """

    def __init__(self, settings: DummySettings, source: DefinitionSource) -> None:
        self.settings = settings
        self.source = source
        super().__init__()
        self._reader: _Reader | None = None
        self._next_update: float | None = None  # None: not paused (dummy-ups' -1)
        self._mtime = source.mtime() or 0

    # -- dummy-ups -------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start-up up to the first read of the definition (``main`` and ``upsdrv_initinfo``).

        Raises:
            ConfigError: If the definition cannot be read, or has a line dummy-ups would
                crash on or send upsd mangled.
        """
        for name, value, immutable in self.settings.early:
            self.setinfo(name, value)
            if immutable:
                self.setflags(name, StFlag.IMMUTABLE)
        self.setinfo("device.type", "ups")
        self.setinfo("driver.parameter.mode", self.settings.mode_value)
        self.setinfo("driver.version", DRIVER_VERSION)
        self.setinfo("driver.version.internal", DRIVER_VERSION_INTERNAL)
        self.setinfo("driver.name", DRIVER_NAME)
        for item in INITIAL:
            assert item.default is not None
            self.setinfo(item.name, item.default)
            self.setflags(item.name, item.flags)
            if StFlag.STRING in item.flags:
                self.setaux(item.name, item.aux)
        self._read(now)
        for command in COMMANDS:
            self.addcmd(command)

    def finish_startup(self) -> None:
        """What ``main`` does after the first update: the last ``driver.*`` and ``device.*``.

        Raises:
            ConfigError: With ``ignorelb``, if neither ``battery.charge`` with
                ``battery.charge.low`` nor ``battery.runtime`` with ``battery.runtime.low``
                exists (dummy-ups exits then).
        """
        if self.getinfo("driver.flag.ignorelb") is not None and not any(
            self.getinfo(a) is not None and self.getinfo(b) is not None
            for a, b in (
                ("battery.charge", "battery.charge.low"),
                ("battery.runtime", "battery.runtime.low"),
            )
        ):
            raise ConfigError(
                f"UPS [{self.settings.name}]: 'ignorelb' needs battery.charge and "
                "battery.charge.low, or battery.runtime and battery.runtime.low",
                self.settings.config_path,
                self.settings.config_line,
            )
        self.setinfo("driver.parameter.pollinterval", str(self.settings.pollinterval))
        self.setinfo("driver.parameter.synchronous", self.settings.synchronous)
        for part in ("mfr", "model", "serial"):
            value = self.getinfo(f"ups.{part}")
            if value is not None:
                self.setinfo(f"device.{part}", value)

    def update(self, now: float) -> None:
        """One update's work (``upsdrv_updateinfo`` after its sleep).

        Raises:
            ConfigError: If the definition must be read and cannot be, or is invalid.
        """
        if not self.settings.loop and self._reader is None and self._next_update is None:
            mtime = self.source.mtime()
            if mtime is None:
                self._mtime = 0
                self._next_update = _ASAP
            elif mtime != self._mtime:
                log.debug("%s: %s changed, reading it again", self.settings.name, self.source.label)
                self._mtime = mtime
                self._next_update = _ASAP
            else:
                return
        self._read(now)

    def setvar(self, name: str, value: str) -> CommandStatus:
        """Write a variable as SET VAR does in dummy-ups (see the module notes).

        Returns:
            SUCCESS, always (dummy-ups checks nothing).
        """
        if name.startswith("ups.status"):
            self.status_commit([value])
            return CommandStatus.SUCCESS
        if not value:
            self.delinfo(name)
            return CommandStatus.SUCCESS
        self.setinfo(name, value)
        known = KNOWN.get(_fold(name))
        if known is not None:
            self.setflags(known.name, known.flags)
            if StFlag.STRING in known.flags:
                self.setaux(known.name, known.aux)
        else:
            self.setflags(name, UNKNOWN_FLAGS)
            self.setaux(name, UNKNOWN_AUX)
        return CommandStatus.SUCCESS

    def instcmd(self, name: str, param: str | None = None) -> CommandStatus:
        """Run an instant command: dummy-ups handles none.

        Returns:
            UNKNOWN, always.
        """
        log.info("%s: instcmd: unknown command [%s] [%s]", self.settings.name, name, param)
        return CommandStatus.UNKNOWN

    # -- internals ---------------------------------------------------------------------

    def _open(self) -> _Reader:
        data = self.source.read()
        lines = parse_definition(data)
        path = self.source.path
        slot1: str | None = None
        for line in lines:
            if len(line.words) >= 2:
                slot1 = line.words[1]
            if line.error:
                continue
            first = line.words[0]
            if first.startswith(_TIMER):
                if slot1 is None:
                    raise ConfigError(
                        f"{first} without a number of seconds (dummy-ups 2.8.0 crashes here)",
                        path,
                        line.lineno,
                    )
                continue
            name = first.partition(":")[0]
            if name.startswith(("driver.", "ups.status")):
                continue
            if _BAD_NAME.search(name):
                raise ConfigError(
                    f"variable name {name!r} cannot be published (dummy-ups would send upsd "
                    "a mangled name)",
                    path,
                    line.lineno,
                )
        return _Reader(lines)

    def _read(self, now: float) -> None:
        """dummy-ups' ``parse_data_file``: go on reading until a TIMER or the end."""
        if self._next_update is not None and now < self._next_update:
            return
        if self._reader is None:
            self._reader = self._open()
        reader = self._reader
        self._next_update = None
        last_value: str | None = None  # dummy-ups' value buffer, kept within one call
        while reader.pos < len(reader.lines):
            line = reader.lines[reader.pos]
            reader.pos += 1
            words = line.words
            if len(words) >= 2:
                reader.slot1 = words[1]
            if line.error:
                continue
            first = words[0]
            if first.startswith(_TIMER):
                assert reader.slot1 is not None  # checked by _open
                self._next_update = now + _atoi(reader.slot1)
                break
            name = first.partition(":")[0]
            if name.startswith("driver."):
                continue
            if name.startswith("ups.status"):
                self.status_commit(words[1:])
                continue
            if len(words) >= 2:
                last_value = " ".join(words[1:])[:_FILE_VALUE_MAX]
            self.setvar(name, last_value or "")
        if self._next_update is None:
            self._reader = None


# ---------------------------------------------------------------------------------------
# The driver


class DummyUps:
    """The ``dummy-ups`` driver: a :class:`DummyCore` run by the kit's polling loop.

    Args:
        settings: The checked section.
        source: The definition.
        update_delay: Seconds each update waits before its work (dummy-ups: 1).
    """

    def __init__(
        self,
        settings: DummySettings,
        source: DefinitionSource,
        *,
        update_delay: float = UPDATE_DELAY,
    ) -> None:
        self.settings = settings
        self.source = source
        self.update_delay = update_delay

    def schedule(self, t0: float) -> Iterator[float]:
        """The planned update times for a start at ``t0``, computed, never measured.

        ``t0 + 1``, then from ``t0 + 2`` every ``pollinterval`` (at least the update delay).
        """
        first = t0 + self.update_delay
        period = max(float(self.settings.pollinterval), self.update_delay)
        return itertools.chain([first], every(period, first + self.update_delay))

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Simulate the UPS and serve ``link.commands`` until cancelled.

        The first state is published ``update_delay`` seconds after the start, with
        ``task_status.started()``. Each run starts afresh from the definition (SET values
        are lost, as when dummy-ups restarts). Each update works at its planned time, so
        TIMERs keep a steady cycle however late the task wakes.

        Cancellation stops the simulation at once; nothing needs cleaning up. Commands left
        in the queue are answered by the state store when the driver detaches.

        Raises:
            ConfigError: If the definition cannot be read or is invalid, at start-up or
                when it is read again (a ``.seq`` at each pass, a ``.dev`` when changed);
                dummy-ups exits in these cases. Also for ``ignorelb`` without the needed
                battery variables.
        """
        core = DummyCore(self.settings, self.source)
        t0 = trio.current_time()
        core.start(t0)
        starting = True

        async def poll(planned: float) -> None:
            nonlocal starting
            core.update(planned)
            if starting:
                starting = False
                core.finish_startup()

        async def execute(command: DriverCommand) -> CommandStatus:
            return self.execute(core, command)

        await run_polling_driver(
            core, link, poll, execute, self.schedule(t0), task_status=task_status
        )

    @staticmethod
    def execute(core: DummyCore, command: DriverCommand) -> CommandStatus:
        """Apply one SET VAR or INSTCMD to ``core``; return the status dummy-ups reports."""
        if command.kind is CommandKind.SET:
            return core.setvar(command.name, command.value or "")
        return core.instcmd(command.name, command.value)


def dummy_factory(section: UpsSection, context: DriverContext) -> DummyUps | RepeaterUps:
    """Build the driver for a ``driver = dummy-ups`` section (``DRIVERS["dummy-ups"]``).

    The definition file is read once here so that a bad one is reported at start-up; the
    driver reads it again when it runs. A section in repeater mode gets a
    :class:`~nuttrio.hw.repeater.RepeaterUps` instead.

    Args:
        section: The ups.conf section.
        context: The driver context; its ``confdir`` resolves a relative ``port``.

    Raises:
        ConfigError: For a bad section (see :meth:`DummySettings.from_section`), a missing
            or unreadable file (with its path), or a line dummy-ups would crash on or
            mangle (with its path and line).
    """
    from .repeater import is_repeater, repeater_factory  # imports this module

    if is_repeater(section):
        return repeater_factory(section, context)
    settings = DummySettings.from_section(section, context.ups_globals)
    source = FileSource(settings.resolve(context.confdir))
    DummyCore(settings, source)._open()
    return DummyUps(settings, source)


# ---------------------------------------------------------------------------------------
# The built-in simulated UPS

#: What nuttrio serves as UPS ``sim`` when it runs without configuration: a healthy
#: 1500 VA line-interactive UPS on mains power, in the ``.dev`` format.
SIMULATED_DEV = b"""\
# nuttrio's built-in simulated UPS: healthy, on mains power, battery full.
battery.charge: 100
battery.charge.low: 10
battery.charge.warning: 50
battery.runtime: 1800
battery.runtime.low: 120
battery.type: PbAc
battery.voltage: 27.3
battery.voltage.nominal: 24.0
device.serial: NT0000000001
input.frequency: 50.0
input.frequency.nominal: 50
input.transfer.high: 264
input.transfer.low: 176
input.voltage: 230.4
input.voltage.nominal: 230
output.frequency: 50.0
output.frequency.nominal: 50
output.voltage: 230.4
output.voltage.nominal: 230
ups.beeper.status: enabled
ups.delay.shutdown: 20
ups.delay.start: 30
ups.firmware: 1.00
ups.load: 23
ups.mfr: nuttrio
ups.model: Simulated UPS 1500
ups.power.nominal: 1500
ups.realpower.nominal: 900
ups.serial: NT0000000001
ups.status: OL
ups.test.result: No test initiated
ups.timer.shutdown: -1
ups.timer.start: -1
ups.type: line-interactive
"""


def simulated_section(name: str = "sim") -> UpsSection:
    """The ups.conf section nuttrio pretends to have when it runs without configuration."""
    options: Mapping[str, str] = MappingProxyType(
        {"driver": DRIVER_NAME, "port": "built-in", "mode": str(DummyMode.ONCE)}
    )
    return UpsSection(
        name=name,
        driver=DRIVER_NAME,
        port="built-in",
        desc="nuttrio simulated UPS",
        options=options,
        path=Path("<built-in>"),
        lineno=0,
    )


def simulated_ups(name: str = "sim") -> tuple[UpsSection, Driver]:
    """The built-in simulated UPS: its section and a ``dummy-ups`` driver for it.

    The driver is the same code as for files, fed :data:`SIMULATED_DEV` (mode
    ``dummy-once``, so SET VAR values stay), with ``driver.parameter.port`` ``built-in``.

    Args:
        name: The UPS name.

    Returns:
        ``(section, driver)``; the driver is a :class:`DummyUps`.
    """
    section = simulated_section(name)
    settings = DummySettings.from_section(section)
    return section, DummyUps(settings, BuiltinSource(SIMULATED_DEV, "<built-in sim.dev>"))
