"""The clone driver's state, sans-IO: NUT 2.8.0's clone.c without its socket.

General theory of operation
---------------------------
:class:`CloneCore` is told what the source UPS publishes (:meth:`CloneCore.feed`, its
variables as a mapping) and what time it is (:meth:`CloneCore.tick`), and answers what
the clone publishes (:meth:`CloneCore.variables`) and which instant commands it sends to
the source (the ``load.off`` / ``load.on`` of ups.conf, when its timers run out). Like
clone.c it:

* copies every source variable except ``driver.*``, ``battery.charge.low``,
  ``battery.runtime.low``, ``ups.delay.*`` and ``ups.timer.*``, and publishes its own
  ``ups.delay.shutdown`` / ``ups.delay.start`` (``offdelay`` / ``ondelay``) and
  ``ups.timer.shutdown`` / ``ups.timer.start`` (-1 while not counting);
* publishes ``battery.charge.low`` / ``battery.runtime.low`` (``mincharge`` /
  ``minruntime``, writable STRING of 3 and 4 characters) once the source has
  ``battery.charge`` / ``battery.runtime``;
* offers only ``shutdown.return`` and ``shutdown.stayoff``: while the outlet is on (by
  ``load.status`` of the source, ``off``/``no`` or ``on``/``yes``, else as the clone
  tracks it) they start the shutdown timer and show ``FSD`` in front of the source's
  status; at its end the outlet is off (``load.off`` sent); ``shutdown.return`` also
  starts the start timer, which counts down only while the source is ``OL`` (reset to
  ``ondelay`` while not) and at its end turns the outlet on (``load.on``) and drops
  ``FSD``;
* on battery with the outlet on and no timer counting, a ``battery.charge`` below
  ``mincharge`` or ``battery.runtime`` below ``minruntime`` is a ``shutdown.return``. It
  never sets ``LB`` nor an ``OFF`` status of its own.

A new value of the source's ``ups.status`` is shown with ``FSD`` in front while the
shutdown timer is above zero. Nothing here does I/O, sleeps or reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from ..state import CommandStatus, Variable

__all__ = ["OWN_COMMANDS", "CloneCore", "CloneSettings", "c_strtod"]

#: The instant commands clone.c offers.
OWN_COMMANDS = ("shutdown.return", "shutdown.stayoff")

#: Source variables clone.c does not pass on (prefixes, then whole names; any case).
_DROPPED_PREFIXES = ("driver.", "ups.delay.", "ups.timer.")
_DROPPED_NAMES = frozenset({"battery.charge.low", "battery.runtime.low"})

#: The clone's writable variables: source variable -> (its low mark, STRING length).
_LOW_MARKS = {
    "battery.charge": ("battery.charge.low", 3),
    "battery.runtime": ("battery.runtime.low", 4),
}


def c_strtod(text: str) -> float:
    """C's ``strtod(text, NULL)`` for decimals: the leading number, 0 when there is none."""
    stripped = text.lstrip(" \t\n\r\v\f")
    for end in range(len(stripped), 0, -1):
        try:
            value = float(stripped[:end])
        except ValueError:
            continue
        if stripped[:end].strip().lower().lstrip("+-") not in ("inf", "nan", "infinity"):
            return value
    return 0.0


def _g(value: float) -> str:
    """C's ``%g``."""
    return f"{value:g}"


@attrs.frozen
class CloneSettings:
    """A clone section, checked (see :mod:`nuttrio.hw.clone`).

    Attributes:
        offdelay: Seconds of the shutdown timer (``ups.delay.shutdown``).
        ondelay: Seconds of the start timer (``ups.delay.start``).
        mincharge: ``battery.charge`` below which a UPS on battery shuts the outlet down.
        minruntime: The same for ``battery.runtime``.
        load_off: The source's instant command that switches the outlet off, or ``None``.
        load_on: The one that switches it on, or ``None``.
        load_status: The source variable that says whether the outlet is on, or ``None``.
        own: The clone's own ``driver.*`` variables (name, value).
        defaults: ``default.X`` values (name, value): shown until the source has ``X``.
        overrides: ``override.X`` values (name, value): shown whatever the source says.
    """

    offdelay: int = 120
    ondelay: int = 30
    mincharge: float = 0.0
    minruntime: float = 0.0
    load_off: str | None = None
    load_on: str | None = None
    load_status: str | None = None
    own: tuple[tuple[str, str], ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()


def _dropped(name: str) -> bool:
    low = name.lower()
    return low.startswith(_DROPPED_PREFIXES) or low in _DROPPED_NAMES


class CloneCore:
    """What the clone publishes, from what the source publishes and the time.

    Args:
        settings: The checked section.
        typed: Keep the source variables' flags (a source that SET VAR is forwarded to),
            else publish them plain, as clone.c does.
    """

    def __init__(self, settings: CloneSettings, *, typed: bool = False) -> None:
        self.settings = settings
        self.typed = typed
        self.raw_status = "WAIT"
        self.status = "WAIT"  # as shown: with FSD in front while shutting down
        self.timer_shutdown = -1.0
        self.timer_start = -1.0
        self.outlet = True
        self.online = True
        self.charge = 0.0
        self.runtime = 0.0
        self.charge_low = settings.mincharge
        self.runtime_low = settings.minruntime
        self._source: dict[str, Variable] = {}
        self._last_tick: float | None = None
        self.source_commands: tuple[str, ...] = ()

    # -- the source ------------------------------------------------------------------------

    def feed(self, variables: Iterable[Variable], commands: Iterable[str] = ()) -> None:
        """Take the source's current variables (and instant commands, kept for forwarding)."""
        source = {v.name.lower(): v for v in variables if not _dropped(v.name)}
        status = source.get("ups.status")
        if status is not None and status.value != self.raw_status:
            self._new_status(status.value)
        for name in ("battery.charge", "battery.runtime"):
            var = source.get(name)
            if var is not None:
                setattr(self, name.split(".")[1], c_strtod(var.value))
        self._source = source
        self.source_commands = tuple(commands)

    def _new_status(self, value: str) -> None:
        self.raw_status = value
        self.online = "OL" in value
        self.status = f"FSD {value}" if self.timer_shutdown > 0 else value

    # -- commands ----------------------------------------------------------------------------

    def instcmd(self, name: str) -> CommandStatus | None:
        """Carry out one of the clone's own commands; ``None`` for any other."""
        low = name.lower()
        if low not in OWN_COMMANDS:
            return None
        outlet = self._outlet_status()
        if outlet is not None:
            self.outlet = outlet
        if self.outlet and self.timer_shutdown < 0:
            self.timer_shutdown = float(self.settings.offdelay)
            self.status = f"FSD {self.raw_status}"
        self.timer_start = float(self.settings.ondelay) if low == "shutdown.return" else -1.0
        return CommandStatus.SUCCESS

    def _outlet_status(self) -> bool | None:
        if self.settings.load_status is None:
            return None
        var = self._source.get(self.settings.load_status.lower())
        word = var.value.lower() if var is not None else ""
        return {"off": False, "no": False, "on": True, "yes": True}.get(word)

    def setvar(self, name: str, value: str) -> CommandStatus | None:
        """Set ``battery.charge.low`` or ``battery.runtime.low``; ``None`` for any other."""
        low = name.lower()
        if low == "battery.charge.low":
            self.charge_low = c_strtod(value)
        elif low == "battery.runtime.low":
            self.runtime_low = c_strtod(value)
        else:
            return None
        return CommandStatus.SUCCESS

    # -- time --------------------------------------------------------------------------------

    def tick(self, now: float) -> list[str]:
        """Count the timers down to ``now`` (seconds); the source commands to send now."""
        elapsed = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        if self.timer_shutdown >= 0:
            self.timer_shutdown -= elapsed
            if self.timer_shutdown < 0:
                self.timer_shutdown, self.outlet = -1.0, False
                return [self.settings.load_off] if self.settings.load_off else []
        elif self.timer_start >= 0:
            self.timer_start = self.timer_start - elapsed if self.online else self.settings.ondelay
            if self.timer_start < 0:
                self.timer_start, self.outlet = -1.0, True
                self.status = self.raw_status
                return [self.settings.load_on] if self.settings.load_on else []
        elif (
            not self.online
            and self.outlet
            and (self.charge < self.charge_low or self.runtime < self.runtime_low)
        ):
            self.instcmd("shutdown.return")
        return []

    # -- what is published -----------------------------------------------------------------

    def variables(self) -> list[Variable]:
        """The clone's variables: the source's (as clone.c copies them) and its own."""
        out = {name.lower(): Variable(name, value) for name, value in self.settings.defaults}
        for key, var in self._source.items():
            out[key] = var if self.typed else Variable(var.name, var.value)
            marked = _LOW_MARKS.get(key)
            if marked is not None:
                low_name, aux = marked
                mark = self.charge_low if key == "battery.charge" else self.runtime_low
                out[low_name] = Variable(low_name, _g(mark), rw=True, string=True, aux=aux)
        out["ups.status"] = Variable("ups.status", self.status)
        s = self.settings
        own = {
            "ups.delay.shutdown": str(s.offdelay),
            "ups.delay.start": str(s.ondelay),
            "ups.timer.shutdown": _timer(self.timer_shutdown),
            "ups.timer.start": _timer(self.timer_start),
            **dict(s.own),
            **dict(s.overrides),
        }
        for name, value in own.items():
            out[name.lower()] = Variable(name, value)
        return list(out.values())

    @property
    def commands(self) -> tuple[str, ...]:
        """The clone's commands, and the source's when they are forwarded."""
        if not self.typed:
            return OWN_COMMANDS
        extra = tuple(c for c in self.source_commands if c.lower() not in OWN_COMMANDS)
        return OWN_COMMANDS + extra


def _timer(value: float) -> str:
    """A timer as clone.c prints its ``long``: whole seconds, -1 while not counting."""
    return str(math.trunc(value)) if value >= 0 else "-1"
