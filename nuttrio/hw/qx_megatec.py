"""nutdrv_qx with its ``megatec`` subdriver, natively: blazer_ser's UPSes, NUT's newer way.

General theory of operation
---------------------------
``nutdrv_qx`` (0.32 in NUT 2.8.0, subdriver "Megatec 0.06") reads the same ``Q1``/``F``/``I``
replies as blazer_ser (see :mod:`nuttrio.hw.megatec`), but through a table of *items*: each
names a NUT variable, the query, the reply's minimum length and first character, the
columns it takes and how it is printed, and flags saying when it is read. Facts from
``drivers/nutdrv_qx.c``, ``nutdrv_qx_megatec.c`` and ``nutdrv_qx_blazer-common.c``:

* *claim*: input.voltage from ``Q1`` and (unless ``novendor``) ups.firmware from ``I``;
  only the megatec subdriver is native, so ``protocol`` must be ``megatec`` or absent;
* *init walk*: every item once (those already set, e.g. by ``default.*``, are left); an item
  whose reply is bad is skipped for good, except the status bits, whose failure fails the
  start-up; STATIC items (ups.type, the ratings, device.mfr, device.model, ups.firmware)
  are read only here; ups.delay.start (default 180 s, 0..599940) and ups.delay.shutdown
  (30 s, 12..600) are writable and checked against their ranges (``ondelay``/``offdelay``
  are seconds here, not blazer's minutes);
* *quick update* every ``pollinterval``: only the status bits (OL, LB, TRIM/BYPASS/BOOST,
  CAL, FSD) from a fresh ``Q1``; bits once set stay set until the next full update;
* *full update* every ``pollfreq`` seconds (default 30) or right after a command or a SET:
  the measurements, the status bits from scratch, ups.alarm and ups.beeper.status, and
  battery.charge from battery.voltage (or integrated with ``runtimecal``);
* consecutive items of one query share one reply within a walk;
* a command is good when the UPS answers nothing or exactly ``ACK`` (``(ACK`` fails here,
  unlike blazer); test.battery.start takes seconds (60..5940, default 600).

The data goes stale at the fifth failed update in a row, as in NUT.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from types import MappingProxyType

import attrs
import trio

from ..nutconf import ConfigError, UpsSection
from ..nutconf.common import strtol
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink, Variable
from .base import DriverContext, DriverFailed
from .dstate import DriverArgs, DState, VarKind
from .dummy_table import StFlag
from .kit import DeviceSilent
from .megatec import (
    CABLEPOWER,
    MAXTRIES,
    PACKS,
    BlazerSettings,
    MegatecSerialDriver,
    c_string,
    strtod,
)
from .serial_line import SerialLine, run_serial_driver, shutdown_session

__all__ = [
    "MEGATEC_ITEMS",
    "QX_VARS",
    "QxFlag",
    "QxItem",
    "QxMegatec",
    "QxMegatecCore",
    "QxSettings",
    "Walk",
    "nutdrv_qx_factory",
]

log = logging.getLogger(__name__)

_VERSION_INTERNAL = "0.32"
DEFAULT_POLLFREQ = 30


class Walk(enum.Enum):
    """nutdrv_qx's walk modes."""

    INIT = "init"
    QUICK = "quick"
    FULL = "full"


class QxFlag(enum.Flag):
    """When and how an item is used (nutdrv_qx's ``QX_FLAG_*``)."""

    NONE = 0
    STATIC = enum.auto()
    QUICK_POLL = enum.auto()
    ABSENT = enum.auto()
    CMD = enum.auto()
    SETVAR = enum.auto()
    RANGE = enum.auto()
    TRIM = enum.auto()


@attrs.frozen
class QxItem:
    """One row of the subdriver's table.

    Attributes:
        name: The NUT variable (or command).
        query: The bytes sent (``None`` for driver-side variables).
        length: The shortest good reply.
        leading: The reply's first character (``""``: any).
        start: First column of the value.
        end: Last column (inclusive; 0: up to the CR).
        fmt: How a number is printed (``None``: a text; status bits have a ``bit``).
        flags: When the item is used.
        dfl: Default value (driver-side variables).
        ranges: Allowed values of a writable variable.
    """

    name: str
    query: bytes | None
    length: int = 0
    leading: str = ""
    start: int = 0
    end: int = 0
    fmt: str | None = None
    flags: QxFlag = QxFlag.NONE
    dfl: str | None = None
    ranges: tuple[tuple[int, int], ...] = ()

    @property
    def bit(self) -> bool:
        """Whether this is one of the Q1 status bits."""
        return self.query == b"Q1\r" and self.start >= 38


def _q1(name: str, start: int, end: int, fmt: str | None, flags: QxFlag = QxFlag.NONE) -> QxItem:
    return QxItem(name, b"Q1\r", 47, "(", start, end, fmt, flags)


def _f(name: str, start: int, end: int, fmt: str) -> QxItem:
    return QxItem(name, b"F\r", 22, "#", start, end, fmt, QxFlag.STATIC)


def _i(name: str, start: int, end: int) -> QxItem:
    return QxItem(name, b"I\r", 39, "#", start, end, None, QxFlag.STATIC | QxFlag.TRIM)


def _cmd(name: str, query: bytes) -> QxItem:
    return QxItem(name, query, flags=QxFlag.CMD)


_QUICK = QxFlag.QUICK_POLL
_DELAY = QxFlag.ABSENT | QxFlag.SETVAR | QxFlag.RANGE

#: The megatec subdriver's table, in its order.
MEGATEC_ITEMS: tuple[QxItem, ...] = (
    _q1("input.voltage", 1, 5, ".1f"),
    _q1("input.voltage.fault", 7, 11, ".1f"),
    _q1("output.voltage", 13, 17, ".1f"),
    _q1("ups.load", 19, 21, ".0f"),
    _q1("input.frequency", 23, 26, ".1f"),
    _q1("battery.voltage", 28, 31, ".2f"),
    _q1("ups.temperature", 33, 36, ".1f"),
    _q1("ups.status", 38, 38, None, _QUICK),
    _q1("ups.status", 39, 39, None, _QUICK),
    _q1("ups.status", 40, 40, None, _QUICK),
    _q1("ups.alarm", 41, 41, None),
    _q1("ups.type", 42, 42, None, QxFlag.STATIC),
    _q1("ups.status", 43, 43, None, _QUICK),
    _q1("ups.status", 44, 44, None, _QUICK),
    _q1("ups.beeper.status", 45, 45, None),
    _f("input.voltage.nominal", 1, 5, ".0f"),
    _f("input.current.nominal", 7, 9, ".1f"),
    _f("battery.voltage.nominal", 11, 15, ".1f"),
    _f("input.frequency.nominal", 17, 20, ".0f"),
    _i("device.mfr", 1, 15),
    _i("device.model", 17, 26),
    _i("ups.firmware", 28, 37),
    _cmd("beeper.toggle", b"Q\r"),
    _cmd("load.off", b"S00R0000\r"),
    _cmd("load.on", b"C\r"),
    _cmd("shutdown.return", b""),
    _cmd("shutdown.stayoff", b""),
    _cmd("shutdown.stop", b"C\r"),
    _cmd("test.battery.start", b""),
    _cmd("test.battery.start.deep", b"TL\r"),
    _cmd("test.battery.start.quick", b"T\r"),
    _cmd("test.battery.stop", b"CT\r"),
    QxItem("ups.delay.start", None, flags=_DELAY, dfl="180", ranges=((0, 599940),)),
    QxItem("ups.delay.shutdown", None, flags=_DELAY, dfl="30", ranges=((12, 600),)),
)

#: nutdrv_qx's ups.conf keys for a serial megatec unit (its and the subdriver's addvar).
QX_VARS: Mapping[str, VarKind] = MappingProxyType(
    {
        "ondelay": VarKind.VALUE,
        "offdelay": VarKind.VALUE,
        "stayoff": VarKind.FLAG,
        "pollfreq": VarKind.VALUE,
        "protocol": VarKind.VALUE,
        "runtimecal": VarKind.VALUE,
        "chargetime": VarKind.VALUE,
        "idleload": VarKind.VALUE,
        "cablepower": VarKind.VALUE,
        "norating": VarKind.FLAG,
        "novendor": VarKind.FLAG,
        "ignoresab": VarKind.FLAG,
    }
)

#: ups_status_set's order.
_STATUS_ORDER = ("DISCHRG", "CHRG", "LB", "OVER", "RB", "TRIM", "BOOST", "BYPASS", "OFF", "CAL")
_KNOWN_STATUS = frozenset({"OL", "FSD", *_STATUS_ORDER})


@attrs.frozen
class QxSettings:
    """nutdrv_qx's own options for a megatec unit.

    Attributes:
        pollfreq: Seconds between full updates.
        skip: Items left out (``norating``, ``novendor``, ``ignoresab``).
        runtimecal, chargetime, idleload: As for blazer.
        dtr, rts: From ``cablepower``.
    """

    pollfreq: int = DEFAULT_POLLFREQ
    skip: frozenset[tuple[str, int]] = frozenset()
    runtimecal: tuple[float, float, float, float] | None = None
    chargetime: int = 43200
    idleload: float = 0.1
    dtr: bool = True
    rts: bool = False

    @classmethod
    def from_args(cls, args: DriverArgs) -> QxSettings:
        """Check the options.

        Raises:
            ConfigError: For a protocol other than megatec (the only one nuttrio has for
                nutdrv_qx), a bad ``cablepower``, or bad runtime options.
        """
        protocol = args.getval("protocol")
        if protocol is not None and protocol.lower() != "megatec":
            raise args.error(
                f"nutdrv_qx protocol {protocol!r} is not available natively in nuttrio "
                "(only 'megatec')"
            )
        cable = (args.getval("cablepower") or "normal").lower()
        if cable not in CABLEPOWER:
            raise args.error(f"value '{args.getval('cablepower')}' not valid for 'cablepower'")
        runtimecal, chargetime, idleload = BlazerSettings.runtime_options(args)
        skip: set[tuple[str, int]] = set()
        for item in MEGATEC_ITEMS:
            if args.testvar("norating") and item.query == b"F\r":
                skip.add((item.name, item.start))
            if args.testvar("novendor") and item.query == b"I\r":
                skip.add((item.name, item.start))
        if args.testvar("ignoresab"):
            skip.add(("ups.status", 44))
        for option, item_name in (
            ("ondelay", "ups.delay.start"),
            ("offdelay", "ups.delay.shutdown"),
        ):
            value = args.getval(option)
            item = next(i for i in MEGATEC_ITEMS if i.name == item_name)
            if value is not None and not (
                set(value) <= set("0123456789 .")
                and any(low <= strtol(value) <= high for low, high in item.ranges)
            ):
                low, high = item.ranges[0]
                raise args.error(f"{option} '{value}' out of range [{low}..{high}] seconds")
        pollfreq = args.getval("pollfreq")
        return cls(
            pollfreq=strtol(pollfreq) if pollfreq is not None else DEFAULT_POLLFREQ,
            skip=frozenset(skip),
            runtimecal=runtimecal,
            chargetime=chargetime,
            idleload=idleload,
            dtr=CABLEPOWER[cable][0],
            rts=CABLEPOWER[cable][1],
        )


def _find(name: str, flag: QxFlag) -> QxItem | None:
    """``find_nut_info``: the item named ``name`` (any case) with ``flag``."""
    key = name.lower()
    return next((i for i in MEGATEC_ITEMS if flag in i.flags and i.name == key), None)


class WalkFailed(DeviceSilent):
    """A walk stopped at a status bit that could not be read."""


class QxMegatecCore(DState):
    """nutdrv_qx's state for a megatec unit, without I/O.

    The caller gives :meth:`walk` a function that sends a query and returns the reply.
    """

    def __init__(self, args: DriverArgs, settings: QxSettings) -> None:
        super().__init__()
        self.args = args
        self.settings = settings
        self.skipped = {(n, s) for n, s in settings.skip}
        self.ups_status: set[str] = set()
        self.alarms: list[str] = []
        self.packs = 1.0
        self.volt_act = self.volt_high = self.volt_nom = self.volt_low = -1.0
        self.chrg_act = -1.0
        self.runt_act = -1.0
        self.runt_nom, self.runt_est, self.runt_exp = -1.0, 0.0, 0.0
        self.load_eff = 1.0
        self.lastpoll = 0.0
        self.battery_lastpoll = 0.0
        self.data_changed = False
        self._ranges: dict[str, tuple[tuple[int, int], ...]] = {}

    def start(self) -> None:
        """main.c's settings from ups.conf."""
        self.args.apply_early(self)

    def variables(self) -> list[Variable]:
        """The variables, with the writable delays' ranges."""
        return [
            attrs.evolve(v, ranges=self._ranges[v.name.lower()])
            if v.name.lower() in self._ranges
            else v
            for v in super().variables()
        ]

    # -- one item ------------------------------------------------------------------------

    @staticmethod
    def value_of(item: QxItem, reply: bytes) -> str | None:
        """``qx_process_answer``: the item's columns of ``reply``, or ``None`` if it is bad."""
        text = reply.decode("latin-1")
        if item.length and len(reply) < item.length:
            return None
        if item.leading and not text.startswith(item.leading):
            return None
        text = c_string(text)
        if item.end:
            return text[item.start : item.end + 1]
        return text.split("\r", 1)[0][item.start :]

    def _bit(self, item: QxItem, value: str) -> str | None:
        """``blazer_process_status_bits``: the word for one bit (``None``: bad)."""
        if len(value) - len(value.lstrip("01")) != 1:
            return None
        on = value[0] == "1"
        if item.start == 40:
            if not on:
                return ""
            vi, vo = self._number("input.voltage"), self._number("output.voltage")
            for limit, word in ((0.5, None), (0.95, "TRIM"), (1.05, "BYPASS"), (1.5, "BOOST")):
                if vo < limit * vi:
                    return word
            return None
        words = {
            38: ("!OL", "OL"),
            39: ("LB", "!LB"),
            41: ("UPS selftest failed!", ""),
            42: ("offline / line interactive", "online"),
            43: ("CAL", "!CAL"),
            44: ("FSD", "!FSD"),
            45: ("enabled", "disabled"),
        }
        return words[item.start][0 if on else 1]

    def _number(self, name: str) -> float:
        value = self.getinfo(name)
        return strtod(value) if value is not None else 0.0

    def infoval_set(self, item: QxItem, value: str) -> int:
        """``ups_infoval_set``: 1 if set, 0 for a status or alarm word, -1 if bad."""
        if item.bit:
            word = self._bit(item, value)
            if word is None:
                return -1
            if item.name == "ups.status":
                if word:
                    self._update_status(word)
                return 0
            if item.name == "ups.alarm":
                if word:
                    self.alarms.append(word)
                return 0
            value = word
        else:
            if QxFlag.TRIM in item.flags:
                value = value.strip("# ")
            if item.fmt is not None:
                if not set(value) <= set("0123456789 ."):
                    return -1
                value = format(strtod(value), item.fmt)
        if not value:
            return -1
        self.setinfo(item.name, value)
        if item.name == "battery.charge":
            self.chrg_act = float(strtol(value))
        return 1

    def _update_status(self, word: str) -> None:
        name = word.lstrip("!").upper()
        if name in _KNOWN_STATUS:
            if word.startswith("!"):
                self.ups_status.discard(name)
            else:
                self.ups_status.add(name)

    # -- walks ---------------------------------------------------------------------------

    def wanted(self, item: QxItem, mode: Walk) -> bool:
        """Whether a walk in ``mode`` reads ``item``."""
        if (item.name, item.start) in self.skipped:
            return False
        if mode is Walk.QUICK:
            return QxFlag.QUICK_POLL in item.flags
        if mode is Walk.FULL:
            return not item.flags & (QxFlag.ABSENT | QxFlag.CMD | QxFlag.SETVAR | QxFlag.STATIC)
        if item.name in ("ups.status", "ups.alarm"):
            return True
        return self.getinfo(item.name) is None

    def init_absent(self, item: QxItem) -> None:
        """A driver-side variable at init: its default, writable, with its range."""
        if self.getinfo(item.name) is None and item.dfl is not None:
            self.setinfo(item.name, item.dfl)
            self.setflags(item.name, StFlag.RW)
            self._ranges[item.name.lower()] = item.ranges

    # -- battery -------------------------------------------------------------------------

    def battery(self) -> bool:
        """``qx_battery``: battery.charge from the voltage (once per full walk)."""
        value = self.getinfo("battery.voltage")
        if value is None:
            return False
        self.volt_act = self.packs * strtod(value)
        if self.chrg_act == -1 and self.volt_low > 0 and self.volt_high > self.volt_low:
            charge = 100 * (self.volt_act - self.volt_low) / (self.volt_high - self.volt_low)
            self.chrg_act = min(max(charge, 0.0), 100.0)
            self.setinfo("battery.charge", f"{self.chrg_act:.0f}")
        return True

    def _limits(self) -> None:
        for name, attr in (
            ("battery.voltage.high", "volt_high"),
            ("battery.voltage.low", "volt_low"),
            ("battery.voltage.nominal", "volt_nom"),
        ):
            if (value := self.getinfo(name)) is not None:
                setattr(self, attr, strtod(value))
        if self.volt_nom != -1 and (self.volt_low == -1 or self.volt_high == -1):
            self.volt_low = 104 * self.volt_nom / 120
            self.volt_high = 130 * self.volt_nom / 120
            self.setinfo("battery.voltage.low", f"{self.volt_low:.2f}")
            self.setinfo("battery.voltage.high", f"{self.volt_high:.2f}")

    def _detect_packs(self) -> None:
        packs = self.getinfo("battery.packs")
        if packs is not None and set(packs) <= set("0123456789 ."):
            self.packs = strtod(packs)
            return
        if not self.battery() or self.volt_nom == -1:
            return
        for count in PACKS:
            if count * self.volt_act > 1.2 * self.volt_nom:
                continue
            if count * self.volt_act >= 0.8 * self.volt_nom:
                self.packs = float(count)
            break

    def init_battery(self, now: float) -> None:
        """``qx_initbattery``.

        Raises:
            DeviceSilent: With ``runtimecal``, when no battery charge can be determined.
        """
        if self.getinfo("battery.charge") is not None and self.getinfo("battery.runtime"):
            return
        self._limits()
        self._detect_packs()
        self.battery()
        cal = self.settings.runtimecal
        if cal is None:
            return
        self.battery_lastpoll = now
        rh, lh, rl, ll = cal
        self.runt_exp = math.log(rl / rh) / math.log(lh / ll)
        self.runt_nom = rh * (lh / 100) ** self.runt_exp
        if self.getinfo("battery.charge") is None and self.volt_nom != -1:
            self.volt_low, self.volt_high = self.volt_nom, 1.15 * self.volt_nom
            self.battery()
        charge = self.getinfo("battery.charge")
        if charge is None:
            raise DeviceSilent("initial battery charge undetermined")
        self.runt_est = self.runt_nom * strtod(charge) / 100

    def after_full_walk(self, now: float) -> None:
        """The battery estimate at the end of a full walk."""
        if self.runt_act != -1 and self.chrg_act != -1:
            return
        if self.settings.runtimecal is None:
            self.battery()
            return
        elapsed = now - self.battery_lastpoll
        if "OL" in self.ups_status:
            gained = self.runt_nom * elapsed / self.settings.chargetime
            self.runt_est = min(self.runt_est + gained, self.runt_nom)
        else:
            self.runt_est = max(self.runt_est - self.load_eff * elapsed, 0.0)
        self._cap_by_voltage()
        if self.chrg_act == -1:
            self.setinfo("battery.charge", f"{100 * self.runt_est / self.runt_nom:.0f}")
        load = self.getinfo("ups.load")
        if self.runt_act == -1 and load is not None:
            self.load_eff = max((strtod(load) / 100) ** self.runt_exp, self.settings.idleload)
            self.setinfo("battery.runtime", f"{self.runt_est / self.load_eff:.0f}")
        self.battery_lastpoll = now

    def _cap_by_voltage(self) -> None:
        value = self.getinfo("battery.voltage")
        if value is None:
            return
        self.volt_act = self.packs * strtod(value)
        if self.volt_act > 0 and self.volt_low > 0 and self.volt_high > self.volt_low:
            charge = (self.volt_act - self.volt_low) / (self.volt_high - self.volt_low)
            charge = min(max(charge, 0.0), 1.0)
            if charge < self.runt_est / self.runt_nom:
                self.runt_est = charge * self.runt_nom

    # -- status, commands, SET -------------------------------------------------------------

    def commit_status(self, *, full: bool) -> None:
        """``ups_alarm_set``/``alarm_commit`` (full updates) and ``ups_status_set``."""
        if full:
            if "RB" in self.ups_status:
                self.alarms.append("Replace battery!")
            if "FSD" in self.ups_status:
                self.alarms.append("Shutdown imminent!")
            self.alarm_commit(self.alarms)
        words = ["OL" if "OL" in self.ups_status else "OB"]
        words += [w for w in _STATUS_ORDER if w in self.ups_status]
        if "FSD" in self.ups_status:
            words.append("FSD")
        self.status_commit(words)

    def command_request(self, item: QxItem, extra: str | None) -> bytes | None:
        """The bytes of a command (``None``: refused, FAILED)."""
        if item.query:
            return item.query
        off = strtol(self.getinfo("ups.delay.shutdown") or "0")
        head = f".{off // 6}" if off < 60 else f"{off // 60:02d}"
        if off < 0:
            return None
        if item.name == "shutdown.return":
            on = strtol(self.getinfo("ups.delay.start") or "0") // 60
            return f"S{head}\r".encode() if on <= 0 else f"S{head}R{on:04d}\r".encode()
        if item.name == "shutdown.stayoff":
            return f"S{head}R0000\r".encode()
        delay = strtol(extra) if extra else 600
        if not 60 <= delay <= 5940:
            log.error("UPS %s: battery test time %d out of range [60..5940]", self.args.name, delay)
            return None
        return f"T{delay // 60:02d}\r".encode()

    @staticmethod
    def command_status(reply: bytes) -> CommandStatus:
        """Nothing, or exactly ``ACK`` up to the CR, is success."""
        answer = c_string(reply.decode("latin-1")).split("\r", 1)[0]
        if answer and answer.lower() != "ack":
            return CommandStatus.FAILED
        return CommandStatus.SUCCESS

    def setvar(self, name: str, value: str) -> CommandStatus:
        """SET of ups.delay.start or ups.delay.shutdown (range-checked, then cut)."""
        item = _find(name, QxFlag.SETVAR)
        if item is None or not value:
            return CommandStatus.UNKNOWN
        if (self.getinfo(item.name) or "").lower() == value.lower():
            return CommandStatus.SUCCESS
        if not set(value) <= set("0123456789 ."):
            return CommandStatus.UNKNOWN
        wanted = strtol(value)
        if not any(low <= wanted <= high for low, high in item.ranges):
            return CommandStatus.UNKNOWN
        if item.name == "ups.delay.start":
            wanted -= wanted % 60
        else:
            wanted -= wanted % (6 if wanted < 60 else 60)
        self.setinfo(item.name, str(wanted))
        self.data_changed = True
        return CommandStatus.SUCCESS


class QxMegatec(MegatecSerialDriver[QxSettings]):
    """The ``nutdrv_qx`` driver for a megatec unit on a serial port."""

    async def _walk(self, core: QxMegatecCore, line: SerialLine, mode: Walk) -> None:
        """``qx_ups_walk``; raises :class:`WalkFailed` where it returns FALSE."""
        previous: tuple[bytes | None, bytes] = (None, b"")
        for item in MEGATEC_ITEMS:
            if not core.wanted(item, mode):
                continue
            if mode is Walk.INIT and QxFlag.ABSENT in item.flags:
                core.init_absent(item)
                continue
            if QxFlag.CMD in item.flags:
                core.addcmd(item.name)
                continue
            if QxFlag.SETVAR in item.flags or item.query is None:
                continue
            if previous[0] == item.query and previous[1]:
                reply = previous[1]
            else:
                reply = await line.exchange(item.query, b"\r", self.reply_timeout)
            previous = (item.query, reply)
            value = core.value_of(item, reply)
            quick = QxFlag.QUICK_POLL in item.flags
            if value is None:
                if quick:
                    raise WalkFailed(f"{item.name} unreadable")
                if mode is Walk.INIT:
                    core.skipped.add((item.name, item.start))
                continue
            if core.infoval_set(item, value) == -1 and quick:
                raise WalkFailed(f"{item.name}: bad value {value!r}")

    async def _claim(self, core: QxMegatecCore, line: SerialLine) -> None:
        probes = [MEGATEC_ITEMS[0]]
        if not self.args.testvar("novendor"):
            probes.append(next(i for i in MEGATEC_ITEMS if i.name == "ups.firmware"))
        for item in probes:
            reply = await line.exchange(item.query or b"", b"\r", self.reply_timeout)
            value = core.value_of(item, reply)
            if value is None or core.infoval_set(item, value) != 1:
                core.delinfo("input.voltage")
                raise DeviceSilent("no megatec UPS answers")

    async def initinfo(self, core: QxMegatecCore, line: SerialLine, now: float) -> None:
        """Claim, init walk, battery, delays (``upsdrv_initups``/``upsdrv_initinfo``).

        Raises:
            DeviceSilent: If the UPS does not answer as a megatec unit.
            ConfigError: If ``ondelay``/``offdelay`` are out of range (NUT exits then).
        """
        await self._claim(core, line)
        core.setinfo("driver.version.data", "Megatec 0.06")
        await self._walk(core, line, Walk.INIT)
        core.init_battery(now)
        self._apply_delays(core)
        core.setinfo("driver.parameter.pollfreq", str(self.settings.pollfreq))
        core.lastpoll = now
        core.data_changed = False

    def _apply_delays(self, core: QxMegatecCore) -> None:
        """ups.delay.start/shutdown: their defaults if unset, then ``ondelay``/``offdelay``.

        Raises:
            ConfigError: If an option is out of range (NUT exits then).
        """
        for option, name in (("ondelay", "ups.delay.start"), ("offdelay", "ups.delay.shutdown")):
            item = _find(name, QxFlag.SETVAR)
            if item is not None and item.dfl is not None and core.getinfo(name) is None:
                core.setinfo(name, item.dfl)
            value = self.args.getval(option)
            if value is not None and core.setvar(name, value) is not CommandStatus.SUCCESS:
                raise self.args.error(f"{option} '{value}' out of range")

    async def shutdown(self) -> None:
        """``nutdrv_qx -k``: claim the UPS, the delays, shutdown.stop, then the shutdown.

        As nutdrv_qx.c: the megatec claim (``upsdrv_initups``), ups.delay.* from their
        defaults and ``ondelay``/``offdelay``, shutdown.stop up to MAXTRIES times until
        it is taken, then shutdown.stayoff (with the ``stayoff`` flag) or
        shutdown.return up to MAXTRIES times. Cancellation closes the port.

        Raises:
            DriverFailed: If no megatec UPS answers, or the shutdown was never taken.
        """
        core = QxMegatecCore(self.args, self.settings)
        core.start()
        line = self.line()
        final = "shutdown.stayoff" if self.args.testvar("stayoff") else "shutdown.return"
        async with shutdown_session(line, self.args.name):
            await self._claim(core, line)
            self._apply_delays(core)
            if not await self._tries(core, line, "shutdown.stop"):
                log.info("UPS %s: no shutdown pending", self.args.name)
            if not await self._tries(core, line, final):
                raise DriverFailed(f"UPS {self.args.name}: shutdown failed")

    async def _tries(self, core: QxMegatecCore, line: SerialLine, name: str) -> bool:
        for _ in range(MAXTRIES):
            if await self.instcmd(core, line, name, None) is CommandStatus.SUCCESS:
                return True
        return False

    async def update(self, core: QxMegatecCore, line: SerialLine, now: float) -> None:
        """``upsdrv_updateinfo``: a full or a quick walk, then the status."""
        full = now > core.lastpoll + self.settings.pollfreq or core.data_changed
        if full:
            core.ups_status.clear()
            core.alarms = []
            core.chrg_act = core.runt_act = -1.0
            await self._walk(core, line, Walk.FULL)
            core.after_full_walk(now)
            core.lastpoll = now
            core.data_changed = False
        else:
            await self._walk(core, line, Walk.QUICK)
        core.commit_status(full=full)

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Detect the UPS, then update it every ``pollinterval`` and serve commands.

        Started after the first poll, or after STARTUP_PATIENCE seconds with the UPS
        stale while detection goes on (it is tried again at each poll until the UPS
        answers). Cancellation closes the port.
        """
        core = QxMegatecCore(self.args, self.settings)
        core.start()
        line = self.line()
        ready = False

        async def poll(planned: float) -> None:
            nonlocal ready
            if not ready:
                await self.initinfo(core, line, planned)
                ready = True
                await self.update(core, line, planned)
                self.args.finish(core, _VERSION_INTERNAL)
                return
            await self.update(core, line, planned)

        async def execute(command: DriverCommand) -> CommandStatus:
            if command.kind is CommandKind.SET:
                return core.setvar(command.name, command.value or "")
            return await self.instcmd(core, line, command.name, command.value)

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

    async def instcmd(
        self, core: QxMegatecCore, line: SerialLine, name: str, extra: str | None
    ) -> CommandStatus:
        """Send one instant command and judge its reply."""
        item = _find(name, QxFlag.CMD)
        if item is None:
            return CommandStatus.INVALID_ARGUMENT
        request = core.command_request(item, extra)
        if request is None:
            return CommandStatus.FAILED
        try:
            status = core.command_status(await line.exchange(request, b"\r", self.reply_timeout))
        except DeviceSilent:
            return CommandStatus.FAILED
        if status is CommandStatus.SUCCESS:
            core.data_changed = True
        return status


def nutdrv_qx_factory(section: UpsSection, context: DriverContext) -> QxMegatec:
    """Build the driver for a ``driver = nutdrv_qx`` section on a serial port (megatec).

    Raises:
        ConfigError: For a key nutdrv_qx does not know, a protocol other than megatec, a
            USB port (``port = auto``), or a bad option.
    """
    args = DriverArgs.from_section(section, QX_VARS, context.ups_globals)
    if not args.port or args.port == "auto":
        raise ConfigError(
            f"UPS [{section.name}]: nutdrv_qx on USB (port = {section.port!r}) is not available "
            "natively in nuttrio; give the serial port",
            section.path,
            section.lineno,
        )
    return QxMegatec(args, QxSettings.from_args(args))
