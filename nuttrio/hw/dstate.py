r"""What every NUT driver shares: the driver-side variable store and main()'s ups.conf handling.

:class:`DState` is NUT's driver-side state (``drivers/dstate.c`` over ``common/state.c``):
variables keyed case-insensitively that keep the spelling they were created with, a write
that differs only in letter case from the old value changes nothing (``strcasecmp``), an
immutable variable (``override.*``) can no longer be changed or deleted, values are cut to
255 characters, and ``getinfo`` returns the escaped form (``"`` ``\`` ``#`` with a
backslash). A driver's sans-IO core keeps its variables in one and publishes
:meth:`DState.variables` and :attr:`DState.commands` through the driver kit.

:class:`DriverArgs` is what NUT's ``drivers/main.c`` makes of a ups.conf section before
the driver's own code runs: ``default.*``/``override.*`` values, ``driver.parameter.*`` and
``driver.flag.*`` for the keys the driver declares (its ``addvar`` table), ``pollinterval``
(the global one unless the section has its own), and a fatal error for any other key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from ..nutconf import ConfigError, UpsSection
from ..nutconf.common import atoi, fold, strtol
from ..state import Variable
from .dummy_table import StFlag

__all__ = ["VALUE_MAX", "DState", "DriverArgs", "VarKind", "encode", "ignorelb_words"]

#: ``dstate_setinfo`` formats into ST_MAX_VALUE_LEN (256) bytes.
VALUE_MAX = 255
_ESCAPED = frozenset('#\\"')


def ignorelb_words(words: Iterable[str], getinfo: Callable[[str], str | None]) -> list[str]:
    """NUT's ``ignorelb`` (dstate.c): the device's LB dropped, LB added by the thresholds.

    LB is appended when ``battery.charge`` < ``battery.charge.low``, else when
    ``battery.runtime`` < ``battery.runtime.low`` (strtol of each, strictly below).
    """
    out = [word for word in words if fold(word) != "lb"]
    for value_name, low_name in (
        ("battery.charge", "battery.charge.low"),
        ("battery.runtime", "battery.runtime.low"),
    ):
        value, low = getinfo(value_name), getinfo(low_name)
        if value is not None and low is not None and strtol(value) < strtol(low):
            return [*out, "LB"]
    return out


def encode(raw: str) -> tuple[str, int]:
    """NUT's ``pconf_encode`` into a 256-byte buffer.

    Returns:
        The escaped text and how many characters of ``raw`` it holds.
    """
    out: list[str] = []
    size = 0
    for i, ch in enumerate(raw):
        if ch in _ESCAPED:
            if size >= VALUE_MAX - 1:
                return "".join(out), i
            out.append("\\")
            size += 1
        if size >= VALUE_MAX:
            return "".join(out), i
        out.append(ch)
        size += 1
    return "".join(out), len(raw)


@attrs.define
class _Node:
    """One variable in the driver's store (NUT's ``st_tree_t``)."""

    name: str
    raw: str
    flags: StFlag = StFlag.NONE
    aux: int = 0


class DState:
    """NUT's driver-side variable store and command list (see the module notes).

    :attr:`changes` grows with every change, so a caller knows when to publish.
    """

    def __init__(self) -> None:
        self.changes = 0
        self._nodes: dict[str, _Node] = {}
        self._commands: list[str] = []
        self._ignorelb = False
        self._alarm_active = False

    def setinfo(self, name: str, value: str) -> None:
        """Set a variable as ``dstate_setinfo`` does."""
        value = value[:VALUE_MAX]
        key = fold(name)
        node = self._nodes.get(key)
        if node is None:
            self._nodes[key] = _Node(name, value)
        elif fold(node.raw) == fold(value) or StFlag.IMMUTABLE in node.flags:
            return
        else:
            node.raw = value
        self.changes += 1

    def getinfo(self, name: str) -> str | None:
        """A variable's value in escaped form (what ``dstate_getinfo`` returns), or ``None``."""
        node = self._nodes.get(fold(name))
        return None if node is None else encode(node.raw)[0]

    def delinfo(self, name: str) -> None:
        """Delete a variable unless it is immutable."""
        node = self._nodes.get(fold(name))
        if node is not None and StFlag.IMMUTABLE not in node.flags:
            del self._nodes[fold(name)]
            self.changes += 1

    def setflags(self, name: str, flags: StFlag) -> None:
        """Replace a variable's flags unless it is immutable (or missing)."""
        node = self._nodes.get(fold(name))
        if node is not None and StFlag.IMMUTABLE not in node.flags and node.flags != flags:
            node.flags = flags
            self.changes += 1

    def setaux(self, name: str, aux: int) -> None:
        """Set a variable's maximum string length (immutable ones too)."""
        node = self._nodes.get(fold(name))
        if node is not None and node.aux != aux:
            node.aux = aux
            self.changes += 1

    def addcmd(self, name: str) -> None:
        """Offer an instant command."""
        if name not in self._commands:
            self._commands.append(name)
            self.changes += 1

    def status_commit(self, words: Iterable[str]) -> None:
        """``status_init``, ``status_set`` per word, ``status_commit``: set ``ups.status``.

        With ``driver.flag.ignorelb``, the device's LB is dropped and LB is added when
        ``battery.charge`` (or ``battery.runtime``) is below its ``.low``; ``ALARM`` leads
        while an alarm is set (:meth:`alarm_commit`).
        """
        if self.getinfo("driver.flag.ignorelb") is not None:
            self._ignorelb = True
        if self._ignorelb:
            words = ignorelb_words(words, self.getinfo)
        buf = ""
        for word in words:
            buf = (buf + " " + word if buf else word)[:VALUE_MAX]
        self.setinfo("ups.status", "ALARM " + buf if self._alarm_active else buf)

    def alarm_commit(self, alarms: Iterable[str]) -> None:
        """``alarm_init``, ``alarm_set`` per text, ``alarm_commit``: set or drop ``ups.alarm``."""
        text = " ".join(alarms)[:VALUE_MAX]
        self._alarm_active = bool(text)
        if text:
            self.setinfo("ups.alarm", text)
        else:
            self.delinfo("ups.alarm")

    def variables(self) -> list[Variable]:
        """The variables as upsd receives them from the driver (values as sent, unescaped)."""
        out = []
        for node in self._nodes.values():
            raw = node.raw[: encode(node.raw)[1]]
            out.append(
                Variable(
                    name=node.name,
                    value=raw,
                    rw=StFlag.RW in node.flags,
                    string=StFlag.STRING in node.flags,
                    number=StFlag.NUMBER in node.flags,
                    aux=node.aux,
                )
            )
        return out

    @property
    def commands(self) -> tuple[str, ...]:
        """The instant commands offered."""
        return tuple(self._commands)


# ---------------------------------------------------------------------------------------
# main.c's ups.conf handling


class VarKind(enum.Enum):
    """How a driver declares a ups.conf key (NUT's ``addvar``)."""

    #: ``key = value``.
    VALUE = "value"
    #: A bare ``key``.
    FLAG = "flag"


#: Keys main.c handles itself and keeps out of the variables (``port`` is published).
_MAIN_KEYS = frozenset({"driver", "desc", "sdorder", "sddelay", "user", "group", "debug_min"})
_MAIN_FLAGS = frozenset({"nolock", "ignorelb"})


@attrs.frozen
class DriverArgs:
    """A ups.conf section as NUT's driver ``main()`` leaves it for the driver code.

    Attributes:
        name: The UPS name.
        driver: The driver name.
        port: ``port``.
        values: The driver's own keys with their values (a flag has ``None``), lower case.
        early: Variables main.c sets before the driver's init, in order:
            ``(name, value, immutable)``.
        pollinterval: Seconds between updates.
        synchronous: ``driver.parameter.synchronous`` (``yes``, ``no`` or ``auto``).
        path: The ups.conf file, for messages.
        lineno: The line of the section header.
    """

    name: str
    driver: str
    port: str
    values: Mapping[str, str | None]
    early: tuple[tuple[str, str, bool], ...]
    pollinterval: int = 2
    synchronous: str = "auto"
    path: Path | None = None
    lineno: int | None = None

    def error(self, message: str) -> ConfigError:
        """A :class:`ConfigError` for this section (names the file and the line)."""
        return ConfigError(f"UPS [{self.name}]: {message}", self.path, self.lineno)

    @property
    def lock(self) -> bool:
        """Whether the port is locked (NUT's drivers lock it unless ``nolock``)."""
        return not any(name == "driver.flag.nolock" for name, _, _ in self.early)

    def getval(self, key: str) -> str | None:
        """NUT's ``getval``: the value of a driver key, ``None`` if absent or a flag."""
        return self.values.get(key)

    def testvar(self, key: str) -> bool:
        """NUT's ``testvar``: whether the section has the key (with a value or not)."""
        return key in self.values

    @classmethod
    def from_section(
        cls,
        section: UpsSection,
        declared: Mapping[str, VarKind],
        ups_globals: Mapping[str, str] = MappingProxyType({}),
        *,
        default_pollinterval: int = 2,
    ) -> DriverArgs:
        """Check a section as main.c does (``do_upsconf_args``, ``main_arg``, ``storeval``).

        Args:
            section: The section.
            declared: The keys the driver declares (its ``addvar`` table).
            ups_globals: ups.conf's globals (``pollinterval``, ``synchronous``).
            default_pollinterval: The driver's ``pollinterval`` when none is given.

        Raises:
            ConfigError: For a key the driver does not declare ("not a valid variable
                name for this driver"), or a ``pollinterval`` that is not positive.
        """

        def fail(message: str) -> ConfigError:
            return ConfigError(f"UPS [{section.name}]: {message}", section.path, section.lineno)

        def interval(raw: str) -> int:
            value = atoi(raw)
            if value <= 0:
                raise fail(f"invalid pollinterval: {raw!r} (a positive number of seconds)")
            return value

        def sync(raw: str) -> str:
            return raw if raw in ("yes", "auto") else "no"

        early: list[tuple[str, str, bool]] = []
        values: dict[str, str | None] = {}
        pollinterval = default_pollinterval
        synchronous = sync(ups_globals["synchronous"]) if "synchronous" in ups_globals else "auto"
        if "pollinterval" in ups_globals:
            pollinterval = interval(ups_globals["pollinterval"])
        for key, value in section.options.items():
            if key in _MAIN_FLAGS:
                early.append((f"driver.flag.{key}", "enabled", False))
            elif key in _MAIN_KEYS:
                pass
            elif key == "port":
                early.append(("driver.parameter.port", value, False))
            elif key == "synchronous":
                synchronous = sync(value)
            elif key == "pollinterval":
                pollinterval = interval(value)
            elif key.startswith("override.") and len(key) > 9:
                early.append((key[9:], value, True))
            elif key.startswith("default.") and len(key) > 8:
                early.append((key[8:], value, False))
            elif key in declared:
                flag = value == "" and declared[key] is VarKind.FLAG
                values[key] = None if flag else value
                if flag:
                    early.append((f"driver.flag.{key}", "enabled", False))
                else:
                    early.append((f"driver.parameter.{key}", value, False))
            else:
                raise fail(f"{key!r} is not a valid setting for driver {section.driver}")
        return cls(
            name=section.name,
            driver=section.driver,
            port=section.port,
            values=MappingProxyType(values),
            early=tuple(early),
            pollinterval=pollinterval,
            synchronous=synchronous,
            path=section.path,
            lineno=section.lineno,
        )

    def apply_early(self, store: DState) -> None:
        """Set :attr:`early` in ``store`` (``override.*`` made immutable), then ``device.type``."""
        for name, value, immutable in self.early:
            store.setinfo(name, value)
            if immutable:
                store.setflags(name, StFlag.IMMUTABLE)
        store.setinfo("device.type", "ups")

    def finish(self, store: DState, version_internal: str) -> None:
        """What main.c publishes after the first update (``driver.*``, ``device.*``)."""
        store.setinfo("driver.version", "2.8.0")
        store.setinfo("driver.version.internal", version_internal)
        store.setinfo("driver.name", self.driver)
        store.setinfo("driver.parameter.pollinterval", str(self.pollinterval))
        store.setinfo("driver.parameter.synchronous", self.synchronous)
        for part in ("mfr", "model", "serial"):
            value = store.getinfo(f"ups.{part}")
            if value is not None:
                store.setinfo(f"device.{part}", value)
