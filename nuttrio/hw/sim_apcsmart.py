"""A simulated APC Smart-UPS (the protocol of NUT's ``apcsmart``), sans-IO.

The model answers as a Smart-UPS of the 2000s does (facts from APC's Smart protocol
description and NUT's ``apcsmart*.c``): ``Y`` gives ``SM``; single-character queries give
their value; ``a`` lists the protocol version, the alert characters and the query and
command characters it knows; ``^Z`` lists the choices of the settable (EEPROM) values;
``Q`` is the status byte in hex (bits: 0 CAL, 1 TRIM, 2 BOOST, 3 OL, 4 OB, 5 OVER, 6 LB,
7 RB); an unknown character gives ``NA``. Every reply ends in CR LF.

Settings: ``-`` right after the query of a settable value moves it to its next choice
and answers ``OK``; right after the query of a text value (``c``, ``x``) it takes the
next eight characters as the new text (then ``OK``).

Commands: ``S`` (soft shutdown, on battery only: ``OK``, else ``NO``), ``@`` and three
digits (shutdown with return: ``OK``), ``K`` twice (delayed shutdown: ``OK`` after the
second), ``Z`` twice (off at once, no answer), ``^N`` twice (on, no answer), ``W`` (battery
test), ``A`` (panel test), ``U`` (simulated power failure), ``D`` (runtime calibration,
toggles CAL), ``^`` (bypass): ``OK``. ``R`` answers ``BYE``.

A change of the status through :meth:`ApcModel.change` sends the alert characters
(``!`` on battery, ``$`` back on line, ``%``/``+`` low battery set/cleared, ``#``
replace battery, ``?``/``=`` overload set/cleared) to every port, unasked, as a real
unit does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import attrs

__all__ = ["DEFAULT_VALUES", "ApcModel", "ApcSession", "ApcStatus"]

#: The queries a simulated Smart-UPS 1000 answers, with their values.
DEFAULT_VALUES: Mapping[str, str] = {
    "\x01": "Smart-UPS 1000",
    "b": "651.13.I",
    "n": "NS0123456789",
    "m": "01/15/20",
    "f": "100.0",
    "j": "0042:",
    "P": "012.4",
    "L": "231.4",
    "O": "231.4",
    "B": "27.43",
    "F": "50.00",
    "C": "031.5",
    "g": "024",
    "l": "196",
    "u": "253",
    "q": "02",
    "p": "020",
    "r": "000",
    "e": "00",
    "k": "0",
    "s": "H",
    "E": "336",
    "X": "NO",
    "G": "O",
    "M": "235.2",
    "N": "225.6",
    "o": "230",
    "9": "FF",
    "c": "UPS_IDEN",
    "x": "01/15/20",
    ">": "000",
}

#: The choices of the settable values (``^Z``), in the unit's order.
DEFAULT_CHOICES: Mapping[str, tuple[str, ...]] = {
    "u": ("253", "264", "271", "280"),
    "l": ("196", "188", "208", "204"),
    "p": ("020", "180", "300", "600"),
    "r": ("000", "060", "180", "300"),
    "q": ("02", "05", "07", "10"),
    "e": ("00", "15", "50", "90"),
    "k": ("0", "T", "L", "N"),
    "s": ("H", "M", "L", "L"),
    "E": ("336", "168", "ON ", "OFF"),
}

_TEXTS = frozenset("cx")
_COMMANDS = "\x0eSKZUWAD^@"
_ALERTS = "!$%+?=#|"
_END = b"\r\n"


@attrs.define
class ApcStatus:
    """The status bits of the simulated unit."""

    calibration: bool = False
    trim: bool = False
    boost: bool = False
    online: bool = True
    on_battery: bool = False
    overload: bool = False
    low_battery: bool = False
    replace_battery: bool = False

    def byte(self) -> int:
        """The ``Q`` byte."""
        bits = (
            self.calibration,
            self.trim,
            self.boost,
            self.online,
            self.on_battery,
            self.overload,
            self.low_battery,
            self.replace_battery,
        )
        return sum(1 << i for i, bit in enumerate(bits) if bit)


def _alerts(old: ApcStatus, new: ApcStatus) -> bytes:
    out = b""
    if new.on_battery and not old.on_battery:
        out += b"!"
    if new.online and not old.online:
        out += b"$"
    for attr, on, off in (("low_battery", b"%", b"+"), ("overload", b"?", b"=")):
        was, now = getattr(old, attr), getattr(new, attr)
        if now != was:
            out += on if now else off
    if new.replace_battery and not old.replace_battery:
        out += b"#"
    return out


class ApcModel:
    """An APC Smart-UPS shared by all its ports; thread-safe.

    Args:
        values: The query answers (:data:`DEFAULT_VALUES` by default).
        choices: The settable values' choices (:data:`DEFAULT_CHOICES` by default).
    """

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        choices: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.values = dict(DEFAULT_VALUES if values is None else values)
        self.choices = dict(DEFAULT_CHOICES if choices is None else choices)
        self.status = ApcStatus()
        self.shutdowns: list[str] = []
        self._lock = threading.Lock()
        self._sessions: list[ApcSession] = []

    def session(self) -> ApcSession:
        """A new port's session."""
        session = ApcSession(self)
        with self._lock:
            self._sessions.append(session)
        return session

    def change(self, **changes: object) -> None:
        """Change status bits (``on_battery=True, online=False``) and send the alerts."""
        with self._lock:
            old = attrs.evolve(self.status)
            for name, value in changes.items():
                if not hasattr(self.status, name):
                    raise AttributeError(f"ApcStatus has no field {name!r}")
                setattr(self.status, name, value)
            alerts = _alerts(old, self.status)
            for session in self._sessions:
                session.outbox += alerts

    def set_value(self, query: str, value: str) -> None:
        """Change what a query answers."""
        with self._lock:
            self.values[query] = value

    def capabilities(self) -> bytes:
        """The ``a`` answer: protocol 3, the alerts, every query and command character."""
        chars = "".join(sorted(set(self.values) | set(_COMMANDS) | {"Q", "a", "\x1a"}))
        return f"3.{_ALERTS}.{chars}".encode("latin-1")

    def eeprom(self) -> bytes:
        """The ``^Z`` answer: for each settable value its choices (location 4: all)."""
        parts = ["#"]
        for query, options in self.choices.items():
            width = len(options[0])
            parts.append(f"{query}4{len(options)}{width}{''.join(options)}")
        return "".join(parts).encode("latin-1")

    def query(self, char: str) -> bytes | None:
        """The answer to a query, or ``None`` if it is not one."""
        with self._lock:
            if char == "Q":
                return f"{self.status.byte():02X}".encode()
            if char == "a":
                return self.capabilities()
            if char == "\x1a":
                return self.eeprom()
            value = self.values.get(char)
            return None if value is None else value.encode("latin-1")

    def next_choice(self, char: str) -> bool:
        """Move a settable value to its next choice; whether it is settable."""
        with self._lock:
            options = self.choices.get(char)
            if not options or char not in self.values:
                return False
            current = self.values[char]
            index = options.index(current) if current in options else -1
            self.values[char] = options[(index + 1) % len(options)]
            return True

    def command(self, char: str, repeated: bool) -> bytes:
        """Carry out a command character; the answer (may be empty)."""
        with self._lock:
            st = self.status
            if char == "S":
                if not st.on_battery:
                    return b"NO"
                self.shutdowns.append("S")
                return b"OK"
            if char in "KZ\x0e":
                if not repeated:
                    return b""
                self.shutdowns.append(char * 2)
                return b"OK" if char == "K" else b""
            if char == "D":
                st.calibration = not st.calibration
            if char == "W":
                self.values["X"] = "OK"
            return b"OK"


class ApcSession:
    """One port: single-character requests, with the multi-character ones kept whole."""

    def __init__(self, model: ApcModel) -> None:
        self.model = model
        #: The requests this port received (``@000`` and ``-TEXT`` as one each).
        self.received: list[str] = []
        self.outbox = b""
        self._last = ""
        self._pending = ""  # "@digits" or "-text" being collected

    def unsolicited(self) -> bytes:
        """Alerts not yet sent."""
        out, self.outbox = self.outbox, b""
        return out

    def receive(self, data: bytes) -> bytes:
        """Answer each character of ``data``."""
        out = b""
        for ch in data.decode("latin-1"):
            out += self._char(ch)
        return out

    def _collect(self, ch: str) -> bytes:
        self._pending += ch
        head = self._pending[0]
        if head == "@" and not ch.isdigit():
            self._pending = ""
            return b"NA" + _END
        if head == "@" and len(self._pending) == 4:
            request, self._pending = self._pending, ""
            self.received.append(request)
            self.model.shutdowns.append(request)
            return b"OK" + _END
        if head == "-" and len(self._pending) == 9:
            request, self._pending = self._pending, ""
            self.received.append(request)
            self.model.set_value(self._last, request[1:].rstrip(" \r"))
            return b"OK" + _END
        return b""

    def _char(self, ch: str) -> bytes:
        if ch == "\x7f":
            self._pending = ""
            return b""
        if self._pending:
            return self._collect(ch)
        if ch == "@":
            self._pending = "@"
            return b""
        if ch == "-" and self._last in _TEXTS:
            self._pending = "-"
            return b""
        repeated = ch == self._last
        self.received.append(ch)
        previous, self._last = self._last, ch
        return self._answer(ch, previous, repeated)

    def _answer(self, ch: str, previous: str, repeated: bool) -> bytes:
        if ch == "Y":
            return b"SM" + _END
        if ch == "\x1b":
            return b""
        if ch == "R":
            return b"BYE" + _END
        if ch == "-":
            self._last = previous  # a further "-" moves the same value on
            return (b"OK" if self.model.next_choice(previous) else b"NA") + _END
        value = self.model.query(ch)
        if value is not None:
            return value + _END
        if ch in _COMMANDS:
            reply = self.model.command(ch, repeated)
            if ch in "KZ\x0e" and repeated:
                self._last = ""
            return reply + _END if reply else b""
        return b"NA" + _END
