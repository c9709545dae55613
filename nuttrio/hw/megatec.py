"""Megatec/Q1 serial UPSes, natively: NUT's ``blazer_ser`` (and its core ``blazer.c``).

General theory of operation
---------------------------
A Megatec unit answers text queries ending in CR at 2400 bps 8N1: ``Q1`` (measurements
and eight status bits), ``F`` (ratings), ``I`` (vendor, model, firmware); it takes commands
(``Q`` beeper, ``T``/``TL``/``T<nn>`` tests, ``CT``, ``S<n>``/``S<n>R<mmmm>`` shutdowns,
``C``) and echoes a command it does not know. :class:`BlazerCore` is the sans-IO part: it
is given the replies and keeps NUT's variables exactly as blazer 1.58 of NUT 2.8.0 sets
them (facts from ``drivers/blazer.c`` and ``blazer_ser.c``):

* start-up tries the protocols ``megatec`` (``Q1``), ``mustek`` (``QS``), ``megatec/old``
  (``D``) and ``zinto`` (``Q1``, vendor from ``FW?``) in turn, three tries each (or only
  the one named by ``protocol``), then reads ratings (unless ``norating``) and vendor data
  (unless ``novendor``);
* ``Q1`` fields go to input.voltage, input.voltage.fault, output.voltage, ups.load,
  input.frequency, battery.voltage (times the detected number of battery packs) and
  ups.temperature, a field that is not a number being skipped; the bits give OL/OB, LB,
  TRIM/BYPASS/BOOST (from output/input voltage), CAL, FSD, ups.alarm, ups.type and
  ups.beeper.status; a reply shorter than 46 bytes or not starting with ``(`` is a failed
  read;
* battery.charge is estimated from battery.voltage between battery.voltage.low and .high
  (given with ``default.*``, else guessed as 104/120 and 130/120 of the nominal voltage);
  with ``runtimecal`` (and ``chargetime``, ``idleload``) battery.charge and
  battery.runtime are instead integrated over time, on mains and on battery;
* ups.delay.start is ``60 * ondelay`` (minutes, default 3) and ups.delay.shutdown
  ``offdelay`` (seconds 12..600, default 30, cut to a multiple of 6 below 60 and of 60
  above); shutdown.return sends ``S.<n>R<mmmm>`` or ``S<nn>R<mmmm>`` from them;
* the instant commands beeper.toggle, load.off, load.on, shutdown.return, shutdown.stayoff,
  shutdown.stop, test.battery.start (``T<nn>``, minutes 1..99, default 10),
  test.battery.start.deep, test.battery.start.quick, test.battery.stop; a command whose
  reply is neither empty nor ``ACK``/``(ACK`` failed.

:class:`BlazerSer` runs the core on the driver kit's polling loop through a
:class:`~nuttrio.hw.serial_line.SerialLine` (1 s per reply, as NUT). The data goes stale
at the fifth failed status read in a row (NUT counts MAXTRIES + 1 failures first) and
fresh at the next good one; a port that fails is reopened at the next poll, so an
unplugged adapter comes back by itself (NUT's driver would have to be restarted). Where
blazer.c would read a missing variable (and crash) nuttrio takes 0.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Generic, Protocol, TypeVar

import attrs
import trio

from ..nutconf import ConfigError, UpsSection
from ..nutconf.common import strtol
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink
from .base import DriverContext, DriverFailed
from .dstate import DriverArgs, DState, VarKind
from .kit import DeviceSilent
from .serial_line import SerialLine, run_serial_driver, shutdown_session
from .transport import SerialSettings

__all__ = [
    "BLAZER_VARS",
    "PROTOCOLS",
    "BlazerCore",
    "BlazerSer",
    "BlazerSettings",
    "MegatecProtocol",
    "MegatecSerialDriver",
    "blazer_ser_factory",
    "c_string",
    "strtod",
]

log = logging.getLogger(__name__)

#: Tries of each start-up read (NUT's MAXTRIES).
MAXTRIES = 3
#: Seconds to wait for a reply (blazer_ser's SER_WAIT_SEC).
REPLY_TIMEOUT = 1.0
_BLAZER_VERSION = "1.58"
PACKS = (120, 100, 80, 60, 48, 36, 30, 24, 18, 12, 8, 6, 4, 3, 2, 1, 0.5)
_NUMBER = re.compile(r"[0-9]*\.?[0-9]*")
_DIGITS_DOTS = frozenset("0123456789.")


def strtod(text: str) -> float:
    """C's ``strtod`` for the unsigned decimals Megatec units send (0 when none)."""
    match = _NUMBER.match(text.lstrip())
    digits = match[0] if match else ""
    return float(digits) if any(ch.isdigit() for ch in digits) else 0.0


def _tokens(text: str) -> Iterator[str]:
    """``strtok_r`` as blazer.c calls it: first on spaces, then on spaces and line ends."""
    first, _, rest = text.lstrip(" ").partition(" ")
    if first:
        yield first
    yield from re.split(r"[ \r\n]+", rest.strip(" \r\n")) if rest.strip(" \r\n") else ()


def c_string(text: str) -> str:
    """The text up to its first NUL, as C reads a buffer."""
    return text.split("\0", 1)[0]


@attrs.frozen
class MegatecProtocol:
    """One flavour of the protocol (blazer.c's ``command[]``)."""

    name: str
    status: bytes
    rating: bytes | None
    vendor: bytes | None


#: The flavours, in the order blazer tries them.
PROTOCOLS: tuple[MegatecProtocol, ...] = (
    MegatecProtocol("megatec", b"Q1\r", b"F\r", b"I\r"),
    MegatecProtocol("mustek", b"QS\r", b"F\r", b"I\r"),
    MegatecProtocol("megatec/old", b"D\r", b"F\r", b"I\r"),
    MegatecProtocol("zinto", b"Q1\r", b"F\r", b"FW?\r"),
)

#: blazer_ser's ups.conf keys (its ``addvar`` table).
BLAZER_VARS: Mapping[str, VarKind] = MappingProxyType(
    {
        "cablepower": VarKind.VALUE,
        "ondelay": VarKind.VALUE,
        "offdelay": VarKind.VALUE,
        "runtimecal": VarKind.VALUE,
        "chargetime": VarKind.VALUE,
        "idleload": VarKind.VALUE,
        "norating": VarKind.FLAG,
        "novendor": VarKind.FLAG,
        "protocol": VarKind.FLAG,
    }
)

#: ``cablepower`` -> (DTR, RTS).
CABLEPOWER: Mapping[str, tuple[bool, bool]] = MappingProxyType(
    {
        "normal": (True, False),
        "reverse": (False, True),
        "both": (True, True),
        "none": (False, False),
    }
)

#: Instant commands sent as they are.
_FIXED_COMMANDS: Mapping[str, bytes] = MappingProxyType(
    {
        "beeper.toggle": b"Q\r",
        "load.off": b"S00R0000\r",
        "load.on": b"C\r",
        "shutdown.stop": b"C\r",
        "test.battery.start.deep": b"TL\r",
        "test.battery.start.quick": b"T\r",
        "test.battery.stop": b"CT\r",
    }
)

#: The commands blazer offers, in its order.
BLAZER_COMMANDS = (
    "beeper.toggle",
    "load.off",
    "load.on",
    "shutdown.return",
    "shutdown.stayoff",
    "shutdown.stop",
    "test.battery.start",
    "test.battery.start.deep",
    "test.battery.start.quick",
    "test.battery.stop",
)


def _floats(text: str, count: int) -> tuple[float, ...] | None:
    """``sscanf(text, "%lf,%lf,...")``: the first ``count`` numbers, or ``None``."""
    out: list[float] = []
    for part in text.split(",")[:count]:
        match = re.match(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", part)
        if not match:
            break
        out.append(float(match[0]))
    return tuple(out) if len(out) == count else None


@attrs.frozen
class BlazerSettings:
    """blazer's own options, checked as ``blazer_initups``/``blazer_initbattery`` do.

    Attributes:
        ondelay: Minutes before the UPS starts again after a shutdown.
        offdelay: Seconds before it shuts down, cut to a settable value.
        runtimecal: ``(runtime_high, load_high, runtime_low, load_low)`` or ``None``.
        chargetime: Seconds to recharge from empty (with ``runtimecal``).
        idleload: The minimum load used for the runtime, as a fraction (with ``runtimecal``).
        protocol: The protocol to use, or ``None`` to try them all.
        norating: Skip the ratings (``F``).
        novendor: Skip the vendor data (``I``).
        dtr: DTR from ``cablepower``.
        rts: RTS from ``cablepower``.
    """

    ondelay: int = 3
    offdelay: int = 30
    runtimecal: tuple[float, float, float, float] | None = None
    chargetime: int = 43200
    idleload: float = 0.1
    protocol: str | None = None
    norating: bool = False
    novendor: bool = False
    dtr: bool = True
    rts: bool = False

    @classmethod
    def from_args(cls, args: DriverArgs) -> BlazerSettings:
        """Check the options of a blazer section.

        Raises:
            ConfigError: Where blazer exits: ondelay outside 0..9999, offdelay outside
                12..600, an unknown ``protocol``, a bad ``cablepower``, ``runtimecal``
                with fewer than four numbers or out of range, ``chargetime`` not positive,
                ``idleload`` outside 0..100.
        """
        ondelay = strtol(args.getval("ondelay") or "3")
        if not 0 <= ondelay <= 9999:
            raise args.error(f"start delay '{ondelay}' out of range [0..9999]")
        offdelay = strtol(args.getval("offdelay") or "30")
        if not 12 <= offdelay <= 600:
            raise args.error(f"shutdown delay '{offdelay}' out of range [12..600]")
        offdelay -= offdelay % (6 if offdelay < 60 else 60)
        cable = (args.getval("cablepower") or "normal").lower()
        if cable not in CABLEPOWER:
            raise args.error(f"value '{args.getval('cablepower')}' not valid for 'cablepower'")
        dtr, rts = CABLEPOWER[cable]
        runtimecal, chargetime, idleload = cls.runtime_options(args)
        protocol = args.getval("protocol")
        names = [p.name for p in PROTOCOLS]
        if protocol is not None and protocol.lower() not in names:
            # blazer would skip every protocol and exit: "No supported UPS detected".
            raise args.error(f"protocol {protocol!r} is none of {', '.join(names)}")
        return cls(
            ondelay=ondelay,
            offdelay=offdelay,
            protocol=protocol,
            norating=args.testvar("norating"),
            novendor=args.testvar("novendor"),
            dtr=dtr,
            rts=rts,
            runtimecal=runtimecal,
            chargetime=chargetime,
            idleload=idleload,
        )

    @staticmethod
    def runtime_options(
        args: DriverArgs,
    ) -> tuple[tuple[float, float, float, float] | None, int, float]:
        """``runtimecal``, ``chargetime`` and ``idleload`` (the latter two only with the first)."""
        raw = args.getval("runtimecal")
        if raw is None:
            return None, 43200, 0.1
        numbers = _floats(raw, 4)
        if numbers is None:
            raise args.error("insufficient parameters for runtimecal")
        rh, lh, rl, ll = numbers
        if rl < rh or rh <= 0:
            raise args.error("runtimecal: parameter out of range (runtime)")
        if lh > 100 or ll > lh or ll <= 0:
            raise args.error("runtimecal: parameter out of range (load)")
        if ll == lh:  # blazer divides by log(1) = 0 here
            raise args.error("runtimecal: the two loads must differ")
        chargetime = strtol(args.getval("chargetime") or "43200")
        if chargetime <= 0:
            raise args.error("charge time out of range [1..s]")
        idleload = strtod(args.getval("idleload") or "10") / 100
        if not 0 < idleload <= 1:
            raise args.error("idle load out of range [0..100]")
        return (rh, lh, rl, ll), chargetime, idleload


class BlazerCore(DState):
    """blazer's variables and calculations without I/O (see the module notes).

    The order is :meth:`start`, then :meth:`parse_status` / :meth:`parse_rating` /
    :meth:`parse_vendor` with the start-up replies, :meth:`init_battery`, then for each
    update :meth:`parse_status` and :meth:`after_status`; :meth:`instcmd_request` and
    :meth:`command_status` serve instant commands.

    Args:
        args: The section as main.c leaves it.
        settings: blazer's options.
    """

    def __init__(self, args: DriverArgs, settings: BlazerSettings) -> None:
        super().__init__()
        self.args = args
        self.settings = settings
        self.packs = 1.0
        self.volt_act = self.volt_high = self.volt_nom = self.volt_low = -1.0
        self.charge = -1.0
        self.runt_nom, self.runt_est, self.runt_exp = -1.0, 0.0, 0.0
        self.load_act, self.load_eff = 0.0, 1.0
        self.online = True
        self.lastpoll = 0.0

    def start(self) -> None:
        """main.c's settings, then ``blazer_initups``'s battery limits from ``default.*``."""
        self.args.apply_early(self)
        if (high := self.getinfo("battery.voltage.high")) is not None:
            self.volt_high = strtod(high)
        if (low := self.getinfo("battery.voltage.low")) is not None:
            self.volt_low = strtod(low)

    def _number(self, name: str) -> float:
        value = self.getinfo(name)
        return strtod(value) if value is not None else 0.0

    # -- the replies ---------------------------------------------------------------------

    def _battery(self, text: str) -> float:
        self.volt_act = self.packs * strtod(text)
        estimate = self.settings.runtimecal is None or self.getinfo("battery.charge") is None
        if estimate and self.volt_low > 0 and self.volt_high > self.volt_low:
            charge = 100 * (self.volt_act - self.volt_low) / (self.volt_high - self.volt_low)
            self.charge = min(max(charge, 0.0), 100.0)
            self.setinfo("battery.charge", f"{self.charge:.0f}")
        return self.volt_act

    def _load(self, text: str) -> float:
        self.load_act = strtod(text)
        self.load_eff = max((self.load_act / 100) ** self.runt_exp, self.settings.idleload)
        return self.load_act

    def _packs(self, text: str) -> float:
        nominal = self.getinfo("battery.voltage.nominal")
        self.volt_nom = strtod(nominal if nominal is not None else text)
        for packs in PACKS:
            if packs * self.volt_act > 1.2 * self.volt_nom:
                continue
            if packs * self.volt_act < 0.8 * self.volt_nom:
                log.info(
                    "UPS %s: can't autodetect number of battery packs [%.0f/%.2f]",
                    self.args.name,
                    self.volt_nom,
                    self.volt_act,
                )
                break
            self.packs = float(packs)
            break
        return self.volt_nom

    def _fields(
        self, text: str, table: tuple[tuple[str, str, Callable[[str], float]], ...]
    ) -> str | None:
        """Set the numeric fields of a reply; return the token after them (``None``: too few)."""
        tokens = _tokens(text)
        for name, fmt, conv in table:
            token = next(tokens, None)
            if token is None:
                return None
            if not set(token) <= _DIGITS_DOTS:
                continue
            self.setinfo(name, format(conv(token), fmt))
        return next(tokens, None)

    def parse_status(self, reply: bytes) -> bool:
        """Take a status reply (``Q1``); return whether it was good (NUT's ``blazer_status``)."""
        text = reply.decode("latin-1")
        if len(reply) < 46 or not text.startswith("("):
            return False
        table = (
            ("input.voltage", ".1f", strtod),
            ("input.voltage.fault", ".1f", strtod),
            ("output.voltage", ".1f", strtod),
            ("ups.load", ".0f", self._load),
            ("input.frequency", ".1f", strtod),
            ("battery.voltage", ".2f", self._battery),
            ("ups.temperature", ".1f", strtod),
        )
        bits = self._fields(c_string(text[1:]), table)
        if bits is None or len(bits) - len(bits.lstrip("01")) != 8:
            return False
        self._status_bits([ch == "1" for ch in bits[:8]])
        return True

    def _status_bits(self, bit: list[bool]) -> None:
        self.setinfo("ups.beeper.status", "enabled" if bit[7] else "disabled")
        self.setinfo("ups.type", "offline / line interactive" if bit[4] else "online")
        self.online = not bit[0]
        status = ["OL" if self.online else "OB"]
        if bit[1]:
            status.append("LB")
        if bit[2]:
            vi, vo = self._number("input.voltage"), self._number("output.voltage")
            for limit, word in ((0.5, ""), (0.95, "TRIM"), (1.05, "BYPASS"), (1.5, "BOOST")):
                if vo < limit * vi:
                    status += [word] if word else []
                    break
        if bit[5]:
            status.append("CAL")
        alarms = ["UPS selftest failed!"] if bit[3] else []
        if bit[6]:
            alarms.append("Shutdown imminent!")
            status.append("FSD")
        self.alarm_commit(alarms)
        self.status_commit(status)

    def parse_rating(self, reply: bytes) -> bool:
        """Take the ratings (``F``); return whether the reply was good."""
        text = reply.decode("latin-1")
        if len(reply) < 22 or not text.startswith("#"):
            return False
        table = (
            ("input.voltage.nominal", ".0f", strtod),
            ("input.current.nominal", ".1f", strtod),
            ("battery.voltage.nominal", ".1f", self._packs),
            ("input.frequency.nominal", ".0f", strtod),
        )
        tokens = _tokens(c_string(text[1:]))
        for name, fmt, conv in table:
            token = next(tokens, None)
            if token is None:
                return False
            if set(token) <= _DIGITS_DOTS:
                self.setinfo(name, format(conv(token), fmt))
        return True

    def parse_vendor(self, reply: bytes) -> bool:
        """Take the vendor data (``I``); return whether the reply was good."""
        text = reply.decode("latin-1")
        if len(reply) < 39 or not text.startswith("#"):
            return False
        for name, start, length in (
            ("ups.mfr", 1, 15),
            ("ups.model", 17, 10),
            ("ups.firmware", 28, 10),
        ):
            self.setinfo(name, c_string(text[start : start + length]).rstrip(" "))
        return True

    # -- battery -------------------------------------------------------------------------

    def init_battery(self, now: float) -> None:
        """``blazer_initbattery`` and the rest of ``blazer_initinfo`` (delays, commands).

        Raises:
            DeviceSilent: With ``runtimecal``, when no battery charge could be determined
                (blazer exits: "Initial battery charge undetermined").
        """
        if self.volt_nom != 1 and (self.volt_high == -1 or self.volt_low == -1):
            self.volt_low = 104 * self.volt_nom / 120
            self.volt_high = 130 * self.volt_nom / 120
            self.setinfo("battery.voltage.low", f"{self.volt_low:.2f}")
            self.setinfo("battery.voltage.high", f"{self.volt_high:.2f}")
        cal = self.settings.runtimecal
        if cal is not None:
            self.lastpoll = now
            rh, lh, rl, ll = cal
            self.runt_exp = math.log(rl / rh) / math.log(lh / ll)
            self.runt_nom = rh * (lh / 100) ** self.runt_exp
            if self.charge < 0:
                self.volt_low, self.volt_high = self.volt_nom, 1.15 * self.volt_nom
                self._battery(self.getinfo("battery.voltage") or "")
            charge = self.getinfo("battery.charge")
            if charge is None:
                raise DeviceSilent("initial battery charge undetermined")
            self.runt_est = self.runt_nom * strtod(charge) / 100
        self.setinfo("ups.delay.start", str(60 * self.settings.ondelay))
        self.setinfo("ups.delay.shutdown", str(self.settings.offdelay))
        for command in BLAZER_COMMANDS:
            self.addcmd(command)

    def after_status(self, now: float) -> None:
        """The runtime integration after a good status read (with ``runtimecal``)."""
        if self.settings.runtimecal is None:
            return
        elapsed = now - self.lastpoll
        if self.online:
            self.runt_est += self.runt_nom * elapsed / self.settings.chargetime
            self.runt_est = min(self.runt_est, self.runt_nom)
        else:
            self.runt_est = max(self.runt_est - self.load_eff * elapsed, 0.0)
        self.setinfo("battery.charge", f"{100 * self.runt_est / self.runt_nom:.0f}")
        self.setinfo("battery.runtime", f"{self.runt_est / self.load_eff:.0f}")
        self.lastpoll = now

    # -- commands ------------------------------------------------------------------------

    def _off(self, stay: bool) -> bytes:
        off = self.settings.offdelay
        head = f"S.{off // 6}" if off < 60 else f"S{off // 60:02d}"
        if stay:
            return f"{head}R0000\r".encode()
        if self.settings.ondelay == 0:
            return f"{head}\r".encode()
        return f"{head}R{self.settings.ondelay:04d}\r".encode()

    def instcmd_request(self, name: str, extra: str | None) -> bytes | CommandStatus:
        """The bytes to send for an instant command, or the status when none is sent."""
        key = name.lower()
        if key in _FIXED_COMMANDS:
            return _FIXED_COMMANDS[key]
        if key in ("shutdown.return", "shutdown.stayoff"):
            return self._off(key == "shutdown.stayoff")
        if key == "test.battery.start":
            delay = strtol(extra) if extra is not None else 10
            if not 1 <= delay <= 99:
                log.error("UPS %s: %s: delay [%s] out of range", self.args.name, name, extra)
                return CommandStatus.FAILED
            return f"T{delay:02d}\r".encode()
        return CommandStatus.UNKNOWN

    @staticmethod
    def command_status(reply: bytes) -> CommandStatus:
        """A command's outcome from its reply: none or ``ACK``/``(ACK`` is success."""
        if reply and not reply.startswith((b"ACK", b"(ACK")):
            return CommandStatus.FAILED
        return CommandStatus.SUCCESS


class _CablePower(Protocol):
    """Options that say how the port's DTR and RTS lines are driven (``cablepower``)."""

    @property
    def dtr(self) -> bool: ...

    @property
    def rts(self) -> bool: ...


SettingsT = TypeVar("SettingsT", bound=_CablePower)


class MegatecSerialDriver(Generic[SettingsT]):
    """What blazer_ser and nutdrv_qx share on the serial side: the section, the options, the port.

    Args:
        args: The section as main.c leaves it.
        settings: The driver's options.
        reply_timeout: Seconds to wait for each reply.
    """

    def __init__(
        self, args: DriverArgs, settings: SettingsT, *, reply_timeout: float = REPLY_TIMEOUT
    ) -> None:
        self.args = args
        self.settings = settings
        self.reply_timeout = reply_timeout

    def line(self) -> SerialLine:
        """The port as both drivers set it: 2400 8N1, DTR/RTS from ``cablepower``."""
        serial = SerialSettings(
            baudrate=2400, dtr=self.settings.dtr, rts=self.settings.rts, exclusive=self.args.lock
        )
        return SerialLine(self.args.port, serial, settle=0.1)


class BlazerSer(MegatecSerialDriver[BlazerSettings]):
    """The ``blazer_ser`` driver: :class:`BlazerCore` on a serial port, on the kit's loop."""

    async def _ask(self, line: SerialLine, request: bytes) -> bytes:
        return await line.exchange(request, b"\r", self.reply_timeout)

    async def _tries(
        self, line: SerialLine, request: bytes, parse: Callable[[bytes], bool]
    ) -> bool:
        for _ in range(MAXTRIES):
            if parse(await self._ask(line, request)):
                return True
        return False

    async def initinfo(self, core: BlazerCore, line: SerialLine, now: float) -> MegatecProtocol:
        """``blazer_initinfo``: find the protocol, read ratings and vendor data.

        Returns:
            The protocol the UPS answers.

        Raises:
            DeviceSilent: If no protocol gets a good status reply (blazer exits then:
                "No supported UPS detected"; nuttrio tries again at the next poll).
        """
        wanted = self.settings.protocol
        for protocol in PROTOCOLS:
            if wanted is not None and wanted.lower() != protocol.name:
                continue
            if await self._tries(line, protocol.status, core.parse_status):
                log.info("UPS %s: Megatec unit detected (%s)", self.args.name, protocol.name)
                break
        else:
            raise DeviceSilent("no supported UPS detected")
        if protocol.rating is not None and not self.settings.norating:
            await self._tries(line, protocol.rating, core.parse_rating)
        if protocol.vendor is not None and not self.settings.novendor:
            await self._tries(line, protocol.vendor, core.parse_vendor)
        core.init_battery(now)
        return protocol

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Detect the UPS, then poll it every ``pollinterval`` and serve commands.

        Started after the first poll, or after STARTUP_PATIENCE seconds with the UPS
        stale while detection goes on (it is tried again at each poll until the UPS
        answers). Cancellation closes the port.
        """
        core = BlazerCore(self.args, self.settings)
        core.start()
        line = self.line()
        protocol: MegatecProtocol | None = None

        async def poll(planned: float) -> None:
            nonlocal protocol
            first = protocol is None
            if protocol is None:
                protocol = await self.initinfo(core, line, planned)
            if not core.parse_status(await self._ask(line, protocol.status)):
                raise DeviceSilent("status read failed")
            core.after_status(planned)
            if first:
                self.args.finish(core, _BLAZER_VERSION)

        async def execute(command: DriverCommand) -> CommandStatus:
            if command.kind is CommandKind.SET:
                return CommandStatus.UNKNOWN
            request = core.instcmd_request(command.name, command.value)
            if isinstance(request, CommandStatus):
                return request
            try:
                status = core.command_status(await self._ask(line, request))
            except DeviceSilent:
                return CommandStatus.FAILED
            log.info("UPS %s: instcmd %s: %s", self.args.name, command.name, status.name)
            return status

        await run_serial_driver(
            line,
            core,
            link,
            poll,
            execute,
            pollinterval=self.args.pollinterval,
            stale_after=MAXTRIES + 2,
            task_status=task_status,
        )

    async def shutdown(self) -> None:
        """``blazer_ser -k`` (``upsdrv_shutdown``): shutdown.stop, then shutdown.return.

        Each is tried up to MAXTRIES times until it is answered well (no answer or
        ``ACK``), as blazer.c does; ``offdelay``/``ondelay`` make the ``S..R....``.
        Cancellation closes the port.

        Raises:
            DriverFailed: If shutdown.return never got a good answer ("Shutdown
                failed!", blazer's exit 1) or the port failed.
        """
        core = BlazerCore(self.args, self.settings)
        line = self.line()
        async with shutdown_session(line, self.args.name):
            if not await self._command_tries(line, core, "shutdown.stop"):
                log.info("UPS %s: no shutdown pending", self.args.name)
            if not await self._command_tries(line, core, "shutdown.return"):
                raise DriverFailed(f"UPS {self.args.name}: shutdown failed")
            log.info("UPS %s: shutting down in %d s", self.args.name, self.settings.offdelay)

    async def _command_tries(self, line: SerialLine, core: BlazerCore, name: str) -> bool:
        request = core.instcmd_request(name, None)
        assert isinstance(request, bytes)
        for _ in range(MAXTRIES):
            if core.command_status(await self._ask(line, request)) is CommandStatus.SUCCESS:
                return True
        return False


def blazer_ser_factory(section: UpsSection, context: DriverContext) -> BlazerSer:
    """Build the driver for a ``driver = blazer_ser`` section (``DRIVERS["blazer_ser"]``).

    Raises:
        ConfigError: For a key blazer_ser does not know, or an option it rejects.
    """
    args = DriverArgs.from_section(section, BLAZER_VARS, context.ups_globals)
    if not args.port:
        raise ConfigError(f"UPS [{section.name}]: no port given", section.path, section.lineno)
    return BlazerSer(args, BlazerSettings.from_args(args))
