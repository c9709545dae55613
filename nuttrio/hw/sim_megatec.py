"""A simulated Megatec/Q1 UPS (the protocol of ``blazer_ser`` and ``nutdrv_qx``), sans-IO.

The model answers what a typical Megatec unit answers (facts from the Megatec protocol
description and NUT's ``blazer*.c``/``nutdrv_qx_megatec.c``):

* ``Q1`` -> ``(MMM.M NNN.N PPP.P QQQ RR.R S.SS TT.T b7b6b5b4b3b2b1b0``: input voltage,
  input fault voltage, output voltage, load %, input frequency, battery voltage,
  temperature, then the status bits (utility fail, battery low, boost/buck active, UPS
  failed, standby type, test in progress, shutdown active, beeper on);
* ``F`` -> ``#MMM.M QQQ SS.SS RR.R`` (ratings), ``I`` -> ``#`` + 15-character company,
  10-character model, 10-character version;
* commands: ``Q`` toggles the beeper; ``T`` (10 s), ``TL`` (until cancelled) and ``T<nn>``
  (minutes) start a test, ``CT`` cancels it; ``S<n>`` and ``S<n>R<mmmm>`` start a shutdown,
  ``C`` cancels it. They are answered ``(ACK`` (configurable: :attr:`MegatecState.ack`);
* anything else is echoed back, as real units do (so nutdrv_qx's probes fail fast).

Every command line received is appended to :attr:`MegatecModel.received`, so that a test
sees what a driver sent. All replies end in CR.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import attrs

__all__ = ["MegatecModel", "MegatecSession", "MegatecState"]

_SHUTDOWN = re.compile(r"S(\.[2-9]|0[1-9]|10)(?:R(\d{4}))?")
_TEST_MINUTES = re.compile(r"T(\d\d)")


@attrs.define
class MegatecState:
    """What the simulated UPS reports (change it through :meth:`MegatecModel.change`).

    Attributes mirror the ``Q1``/``F``/``I`` fields; ``None`` for a number prints
    dashes (a field the unit does not measure). ``ack`` is the reply to a valid command
    (``b""`` for none). ``status_queries`` and ``vendor_query`` name the dialect: ``QS``
    for a Mustek, ``D`` for old Megatec firmware, ``FW?`` as the vendor query of a Zinto.
    """

    input_voltage: float | None = 230.0
    input_fault_voltage: float | None = 230.0
    output_voltage: float | None = 230.0
    load: int | None = 21
    input_frequency: float | None = 50.0
    battery_voltage: float | None = 27.3
    temperature: float | None = 25.0
    utility_fail: bool = False
    battery_low: bool = False
    boost_buck: bool = False
    ups_failed: bool = False
    standby: bool = True
    test: bool = False
    shutdown: bool = False
    beeper: bool = True
    nominal_voltage: float = 230.0
    nominal_current: int = 4
    nominal_battery_voltage: float = 24.0
    nominal_frequency: float = 50.0
    company: str = "nuttrio"
    model: str = "SimQ1 1000"
    version: str = "V1.0"
    answers_rating: bool = True
    answers_vendor: bool = True
    ack: bytes = b"(ACK\r"
    status_queries: tuple[str, ...] = ("Q1",)
    vendor_query: str = "I"
    test_until: float | None = None
    shutdown_spec: str | None = None


def _num(value: float | None, width: int, decimals: int) -> str:
    if value is None:
        return "-" * (width - decimals - 1) + "." + "-" * decimals if decimals else "-" * width
    return f"{value:0{width}.{decimals}f}"


class MegatecModel:
    """A Megatec/Q1 UPS shared by all its ports; thread-safe.

    Args:
        state: The initial state (a default healthy standby unit on mains).
        clock: Seconds, monotonic (test durations end by it).
    """

    def __init__(
        self, state: MegatecState | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.state = state or MegatecState()
        self.clock = clock
        self.received: list[str] = []
        self._lock = threading.Lock()

    def session(self) -> MegatecSession:
        """A new port's session."""
        return MegatecSession(self)

    def change(self, **changes: object) -> None:
        """Change state fields at once, e.g. ``change(utility_fail=True, load=80)``."""
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.state, name):
                    raise AttributeError(f"MegatecState has no field {name!r}")
                setattr(self.state, name, value)

    def commands(self) -> list[str]:
        """The command lines received so far that are not queries (``Q1``, ``F``, ``I``)."""
        with self._lock:
            queries = {*self.state.status_queries, "F", self.state.vendor_query}
            return [c for c in self.received if c not in queries]

    def answer(self, line: str) -> bytes:
        """The reply to one command line (without its CR)."""
        with self._lock:
            self.received.append(line)
            st = self.state
            if st.test_until is not None and self.clock() >= st.test_until:
                st.test, st.test_until = False, None
            if line in st.status_queries:
                return _q1(st)
            if line == "F":
                return _rating(st)
            if line == st.vendor_query:
                return _vendor(st)
            if self._command(st, line):
                return st.ack
            return line.encode("latin-1") + b"\r"

    def _command(self, st: MegatecState, line: str) -> bool:
        now = self.clock()
        if line == "Q":
            st.beeper = not st.beeper
        elif line == "T":
            st.test, st.test_until = True, now + 10
        elif line == "TL":
            st.test, st.test_until = True, None
        elif (m := _TEST_MINUTES.fullmatch(line)) and 1 <= int(m[1]) <= 99:
            st.test, st.test_until = True, now + 60 * int(m[1])
        elif line == "CT":
            st.test, st.test_until = False, None
        elif _SHUTDOWN.fullmatch(line):
            st.shutdown, st.shutdown_spec = True, line
        elif line == "C":
            st.shutdown, st.shutdown_spec = False, None
        else:
            return False
        return True


def _q1(st: MegatecState) -> bytes:
    bits = (
        st.utility_fail,
        st.battery_low,
        st.boost_buck,
        st.ups_failed,
        st.standby,
        st.test,
        st.shutdown,
        st.beeper,
    )
    battery = st.battery_voltage
    fields = [
        _num(st.input_voltage, 5, 1),
        _num(st.input_fault_voltage, 5, 1),
        _num(st.output_voltage, 5, 1),
        _num(st.load, 3, 0),
        _num(st.input_frequency, 4, 1),
        _num(battery, 4, 2) if battery is None or battery < 10 else _num(battery, 4, 1),
        _num(st.temperature, 4, 1),
        "".join("1" if bit else "0" for bit in bits),
    ]
    return ("(" + " ".join(fields) + "\r").encode("latin-1")


def _rating(st: MegatecState) -> bytes:
    if not st.answers_rating:
        return b"F\r"
    battery = f"{st.nominal_battery_voltage:05.1f}"
    text = (
        f"#{st.nominal_voltage:05.1f} {st.nominal_current:03d} {battery} "
        f"{st.nominal_frequency:04.1f}\r"
    )
    return text.encode("latin-1")


def _vendor(st: MegatecState) -> bytes:
    if not st.answers_vendor:
        return b"I\r"
    text = f"#{st.company:<15.15} {st.model:<10.10} {st.version:<10.10}\r"
    return text.encode("latin-1")


class MegatecSession:
    """One port: splits what the driver writes into CR-terminated command lines."""

    def __init__(self, model: MegatecModel) -> None:
        self.model = model
        self._buf = b""
        #: The command lines this port received, in order.
        self.received: list[str] = []

    def receive(self, data: bytes) -> bytes:
        """Answer every complete command line in ``data`` (plus what was kept before)."""
        self._buf += data.replace(b"\n", b"\r")
        out = b""
        while b"\r" in self._buf:
            line, _, self._buf = self._buf.partition(b"\r")
            if line:
                text = line.decode("latin-1")
                self.received.append(text)
                out += self.model.answer(text)
        return out

    def unsolicited(self) -> bytes:
        """A Megatec unit never speaks unasked."""
        return b""
