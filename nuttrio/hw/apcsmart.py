"""APC Smart-UPS on a serial port, natively: NUT's ``apcsmart`` (3.2 in NUT 2.8.0).

General theory of operation
---------------------------
The protocol is single characters out, lines ending in CR LF back, at 2400 bps 8N1, with
*alerts* (``! $ % + # ? =``: power lost and back, low battery set and cleared, replace
battery, overload set and cleared) that the UPS sends at any moment, inside replies too.
Facts from ``drivers/apcsmart.c``, ``apcsmart.h`` and ``apcsmart_tabs.c``:

* start-up: ``Y`` until the UPS answers ``SM`` (five tries, ESC between them); the old
  firmware query ``V`` (or ``b``) is looked up in apcsmart's table of old models whose
  queries are known; otherwise ``a`` tells which queries and commands the UPS has: each
  known query is asked once and kept if it answers (not ``NA``), each known command is
  offered; for names two queries can give (ups.firmware from ``b`` or ``V``,
  ambient.0.temperature or device.uptime from ``T``) the first whose answer has the right
  form wins; ``^Z`` lists the choices of the EEPROM settings, which become writable
  enumerations; the text settings ups.id and battery.date become writable strings of 8;
* each update: ``Q`` (the status byte: CAL TRIM BOOST OL OB OVER LB RB, all clear = OFF),
  then the polled queries (every hour all of them); a query answering ``NA`` is dropped;
  any failure makes the data stale at once; once stale, the UPS is left alone for nine
  polls and then put in smart mode again;
* conversions: minutes and hours to seconds (battery.runtime, battery.runtime.low,
  ups.test.interval, device.uptime), the transfer reason letter to words, ups.mfr APC;
* alerts are applied to the status as they arrive and never reach a value;
* instant commands: load.on (``^N`` twice), load.off (``Z`` twice), shutdown.stayoff
  (``K`` twice), shutdown.return (``S``; ``at:NNN`` gives ``@NNN``; ``cs`` a simulated
  power failure then ``S``), calibrate.start/stop (``D`` after checking ``Q``),
  test.battery.start/stop (``W``), test.panel.start (``A``), test.failure.start (``U``),
  bypass.start/stop (``^``); the three *nasty* ones (load.off, shutdown.*) only run when
  asked twice 3 to 15 seconds apart (the first time is reported done, as NUT does);
* SET: an enumerated setting is stepped with ``-`` until it reads as asked; a text one is
  sent as ``-`` and eight characters;
* ups.conf: ``cable = 940-0095B`` (DTR on, RTS off), ``ttymode``, ``awd``, ``sdtype``,
  ``advorder``, ``cshdelay`` (checked as apcsmart does; the last four choose what
  ``upsdrv_shutdown`` sends, which nuttrio does not do).

A port that fails is reopened at the next poll (the data is stale meanwhile).
"""

from __future__ import annotations

import enum
import logging
import math
import re
from collections.abc import Mapping
from types import MappingProxyType

import attrs
import trio

from ..nutconf import ConfigError, UpsSection
from ..nutconf.common import strtol
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink, Variable
from .base import DriverContext
from .dstate import DriverArgs, DState, VarKind
from .dummy_table import StFlag
from .kit import DeviceSilent
from .serial_line import SerialLine, run_serial_driver, shutdown_session
from .transport import SerialSettings

__all__ = ["APC_VARS", "VARTAB", "ApcCore", "ApcFlag", "ApcSmart", "ApcVar", "apcsmart_factory"]

log = logging.getLogger(__name__)

_VERSION_INTERNAL = "3.2"


class ApcFlag(enum.Flag):
    """apcsmart's table flags and value formats that matter here."""

    NONE = 0
    POLL = enum.auto()
    STRING = enum.auto()
    MULTI = enum.auto()
    PACK = enum.auto()
    MINUTES = enum.auto()
    HOURS = enum.auto()
    REASON = enum.auto()


@attrs.frozen
class ApcVar:
    """One row of ``apc_vartab``: a NUT variable, its query, flags and required form."""

    name: str
    cmd: str
    flags: ApcFlag = ApcFlag.NONE
    regex: str | None = None


_P = ApcFlag.POLL
#: apcsmart's variables, in its order (the order of preference for shared names).
VARTAB: tuple[ApcVar, ...] = (
    ApcVar("ups.temperature", "C", _P),
    ApcVar("ups.load", "P", _P),
    ApcVar("ups.test.interval", "E", ApcFlag.HOURS),
    ApcVar("ups.test.result", "X", _P),
    ApcVar("ups.delay.start", "r"),
    ApcVar("ups.delay.shutdown", "p"),
    ApcVar("ups.id", "c", ApcFlag.STRING),
    ApcVar("ups.contacts", "i", _P),
    ApcVar("ups.display.language", "\x0c"),
    ApcVar("input.voltage", "L", _P),
    ApcVar("input.frequency", "F", _P),
    ApcVar("input.sensitivity", "s"),
    ApcVar("input.quality", "9", _P),
    ApcVar("input.transfer.low", "l"),
    ApcVar("input.transfer.high", "u"),
    ApcVar("input.transfer.reason", "G", _P | ApcFlag.REASON),
    ApcVar("input.voltage.maximum", "M", _P),
    ApcVar("input.voltage.minimum", "N", _P),
    ApcVar("output.current", "/", _P),
    ApcVar("output.voltage", "O", _P),
    ApcVar("output.voltage.nominal", "o"),
    ApcVar("ambient.humidity", "h", _P),
    ApcVar("ambient.0.humidity", "H", _P | ApcFlag.PACK),
    ApcVar("ambient.0.humidity.high", "{", _P | ApcFlag.PACK),
    ApcVar("ambient.0.humidity.low", "}", _P | ApcFlag.PACK),
    ApcVar("ambient.temperature", "t", _P),
    ApcVar(
        "ambient.0.temperature",
        "T",
        ApcFlag.MULTI | _P | ApcFlag.PACK,
        r"^[0-9]{2}\.[0-9]{2}$",
    ),
    ApcVar("ambient.0.temperature.high", "[", _P | ApcFlag.PACK),
    ApcVar("ambient.0.temperature.low", "]", _P | ApcFlag.PACK),
    ApcVar("battery.date", "x", ApcFlag.STRING),
    ApcVar("battery.charge", "f", _P),
    ApcVar("battery.charge.restart", "e"),
    ApcVar("battery.voltage", "B", _P),
    ApcVar("battery.voltage.nominal", "g"),
    ApcVar("battery.runtime", "j", _P | ApcFlag.MINUTES),
    ApcVar("battery.runtime.low", "q", ApcFlag.MINUTES),
    ApcVar("battery.packs", ">"),
    ApcVar("battery.packs.bad", "<"),
    ApcVar("battery.alarm.threshold", "k"),
    ApcVar("device.uptime", "T", ApcFlag.MULTI | _P | ApcFlag.HOURS, r"^[0-9]{3}\.[0-9]{1}$"),
    ApcVar("ups.serial", "n"),
    ApcVar("ups.mfr.date", "m"),
    ApcVar("ups.model", "\x01"),
    ApcVar("ups.firmware.aux", "v"),
    ApcVar("ups.firmware", "b", ApcFlag.MULTI, r"^[A-Za-z0-9]+\.[A-Za-z0-9]+\.[A-Za-z0-9]+$"),
    ApcVar("ups.firmware", "V", ApcFlag.MULTI),
)


@attrs.frozen
class ApcCmd:
    """One row of ``apc_cmdtab``."""

    name: str
    cmd: str
    ext: str | None = None
    nasty: bool = False
    repeat: bool = False


#: apcsmart's instant commands.
CMDTAB: tuple[ApcCmd, ...] = (
    ApcCmd("shutdown.return", "@", r"^[Aa][Tt]:[0-9]{1,3}$", nasty=True),
    ApcCmd("shutdown.return", "S", r"^([Cc][Ss]|)$", nasty=True),
    ApcCmd("shutdown.stayoff", "K", nasty=True, repeat=True),
    ApcCmd("load.off", "Z", nasty=True, repeat=True),
    ApcCmd("load.on", "\x0e", repeat=True),
    ApcCmd("calibrate.start", "D"),
    ApcCmd("calibrate.stop", "D"),
    ApcCmd("test.panel.start", "A"),
    ApcCmd("test.failure.start", "U"),
    ApcCmd("test.battery.start", "W"),
    ApcCmd("test.battery.stop", "W"),
    ApcCmd("bypass.start", "^"),
    ApcCmd("bypass.stop", "^"),
)

#: Old models without ``a``: firmware -> the query and command characters they have.
COMPAT: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            ("0XI", "0XM"), "@789ABCDEFGKLMNOPQRSTUVWXYZcefgjklmnopqrsuwxz/<>\\^\x0c\x16"
        ),
        **dict.fromkeys(("0ZI", "5UI", "5ZM"), "@79ABCDEFGKLMNOPQRSUVWXYZcefgjklmnopqrsuxz/<>"),
        **dict.fromkeys(
            ("6QD", "6QI", "6TD", "6TI", "7QD", "7QI", "7TD", "7TI", "8QD", "8QI", "8TD", "8TI"),
            "@79ABCDEFGKLMNOPQRSUVWXYZcefgjklmnopqrsuxz",
        ),
        "6JI": "@789ABCFGKLMNOPQSTUVWXYZfg",
        **dict.fromkeys(("7II", "9II", "9GI", "8II"), "@79ABCEFGKLMNOPQRSUVWXYZcfg"),
        "8GI": "@79ABCEFGKLMNOPQRSUVWXYZfg",
        "5.4.D": "@\x01ABPQRSUYbdfgjmnx9",
        "set\x01": "@789ABCFGKLMNOPQRSUVWXYZ",
    }
)

#: apcsmart's ups.conf keys.
APC_VARS: Mapping[str, VarKind] = MappingProxyType(
    {k: VarKind.VALUE for k in ("ttymode", "cable", "awd", "sdtype", "advorder", "cshdelay")}
)

_OPTION_FORMS = {
    "awd": r"^[0-9]{1,3}$",
    "sdtype": r"^[0-5]$",
    "advorder": r"^([0-4]{1,5}|[Nn][Oo])$",
    "cshdelay": r"^([0-9]\.?|[0-9]?\.[0-9])$",
}
_UNREPORTED = frozenset("\x1a\x7f~')-+8QRYayz")
_CMDSET_FORM = re.compile(r"^[0-9]\.[^.]*\.[^.]+(\.[^.]+)?$")
_ALERTS = "$!%+#?="
_IGNORE_AA = "\r|&"
_IGNORE_ALL = _IGNORE_AA + _ALERTS
_IGNORE_CAPS = "\r|&$!%+?="
_REASONS = {
    "R": "unacceptable utility voltage rate of change",
    "H": "high utility voltage",
    "L": "low utility voltage",
    "T": "line voltage notch or spike",
    "O": "no transfers yet since turnon",
    "S": "simulated power failure or UPS test",
}
_STATUS_WORDS = ("CAL", "TRIM", "BOOST", "OL", "OB", "OVER", "LB", "RB")
MINCMDTIME, MAXCMDTIME = 3.0, 15.0
#: Once the data is stale, the UPS is left alone until this poll, which tries smart mode.
STALE_PAUSE = 10
#: ups_status bits (apcsmart.h's APC_STAT_*) the shutdown looks at.
_OL, _OB, _LB = 1 << 3, 1 << 4, 1 << 6
#: ``sdtype`` -> its ``sdlist`` method (1, S then @, and 0, by the status, are apart).
_SDTYPE_METHOD = {2: 3, 3: 2, 4: 4, 5: 1}


def _hex(text: str) -> int:
    """``strtol(text, 0, 16)``."""
    match = re.match(r"\s*(?:0[xX])?([0-9A-Fa-f]+)", text)
    return int(match[1], 16) if match else 0


def _matches(regex: str | None, value: str) -> bool:
    return not regex or re.search(regex, value) is not None


def convert(var: ApcVar, raw: str) -> str:
    """Apcsmart's ``convert_data``: the value NUT publishes for an answer."""
    if ApcFlag.HOURS in var.flags:
        return str(3600 * strtol(raw))
    if ApcFlag.MINUTES in var.flags:
        return str(60 * strtol(raw))
    if ApcFlag.REASON in var.flags:
        return _REASONS.get(raw[:1], raw)
    return raw


class ApcCore(DState):
    """apcsmart's state without I/O: which variables exist, their flags, the status."""

    def __init__(self, args: DriverArgs) -> None:
        super().__init__()
        self.args = args
        self.present: set[int] = set()  # indexes into VARTAB
        self.rw: set[int] = set()
        self.enum: set[int] = set()
        self.commands_present: set[int] = set()  # indexes into CMDTAB
        self.ups_status = 0
        self.pack_counts: dict[int, int] = {}
        self._enums: dict[str, tuple[str, ...]] = {}

    def start(self) -> None:
        """main.c's settings from ups.conf."""
        self.args.apply_early(self)

    def variables(self) -> list[Variable]:
        """The variables, with the enumerations of the EEPROM settings."""
        return [
            attrs.evolve(v, enums=self._enums[v.name.lower()])
            if v.name.lower() in self._enums
            else v
            for v in super().variables()
        ]

    def lookup_char(self, cmd: str) -> int | None:
        """``vt_lookup_char``: the first present variable of query ``cmd``."""
        return next((i for i in sorted(self.present) if VARTAB[i].cmd == cmd), None)

    def lookup_name(self, name: str) -> int | None:
        """``vt_lookup_name``: the first present variable called ``name`` (any case)."""
        key = name.lower()
        return next((i for i in sorted(self.present) if VARTAB[i].name == key), None)

    def set_var(self, index: int, raw: str) -> None:
        """``apc_dstate_setinfo``: publish an answer (packed ones split on commas)."""
        var = VARTAB[index]
        if ApcFlag.PACK not in var.flags:
            self.setinfo(var.name, convert(var, raw))
            return
        fields = raw.split(",", 3)
        self.del_var(index, skip=len(fields))
        self.pack_counts[index] = len(fields)
        for n, field in enumerate(fields):
            name = var.name.replace(".0.", f".{n}.", 1)
            self.setinfo(name, convert(var, field) if field else "N/A")

    def del_var(self, index: int, skip: int = 0) -> None:
        """``apc_dstate_delinfo``: drop a variable (of a packed one, the fields from ``skip``)."""
        var = VARTAB[index]
        if ApcFlag.PACK not in var.flags:
            self.delinfo(var.name)
            return
        for n in range(skip, self.pack_counts.get(index, 0)):
            self.delinfo(var.name.replace(".0.", f".{n}.", 1))
        self.pack_counts[index] = min(skip, self.pack_counts.get(index, 0))

    def string_setup(self, index: int) -> None:
        """A text setting becomes RW STRING of 8."""
        var = VARTAB[index]
        if ApcFlag.STRING in var.flags:
            self.setflags(var.name, StFlag.RW | StFlag.STRING)
            self.setaux(var.name, 8)
            self.rw.add(index)

    def parse_caps(self, text: str) -> None:
        """``apc_getcaps``: the ``^Z`` answer's choices become enumerations."""
        firmware = self.getinfo("ups.firmware") or ""
        location = firmware[-1:] if firmware else ""
        if not text.startswith("#"):
            log.warning("UPS %s: unknown capability start char %r", self.args.name, text[:1])
            return
        matrix = text[1:2] == "#"
        pos = 0 if matrix else 1
        while pos < len(text):
            if matrix:
                pos += 2
            if pos + 4 > len(text):
                return
            cmd, loc = text[pos], text[pos + 1]
            count, width = ord(text[pos + 2]) - 48, ord(text[pos + 3]) - 48
            if count < 0 or width < 0:
                return
            pos += 4
            index = self.lookup_char(cmd)
            valid = index is not None and loc in (location, "4")
            valid = valid and ApcFlag.PACK not in VARTAB[index or 0].flags
            choices = [text[pos + k * width : pos + (k + 1) * width] for k in range(count)]
            pos += count * width
            if valid and index is not None:
                var = VARTAB[index]
                self.setflags(var.name, StFlag.RW)
                self.rw.add(index)
                self.enum.add(index)
                known = list(self._enums.get(var.name, ()))
                for choice in choices:  # dstate_addenum keeps each value once
                    value = convert(var, choice)
                    if value not in known:
                        known.append(value)
                self._enums[var.name] = tuple(known)

    def alert(self, ch: str) -> None:
        """``alert_handler``: apply one alert character to the status."""
        ol, ob, over, lb, rb = 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7
        changes = {
            "!": (ol, ob),
            "$": (ob, ol),
            "%": (0, lb),
            "+": (lb, 0),
            "#": (0, rb),
            "?": (0, over),
            "=": (over, 0),
        }
        clear, set_ = changes.get(ch, (0, 0))
        self.ups_status = (self.ups_status & ~clear) | set_
        self.commit_status()

    def commit_status(self) -> None:
        """``ups_status_set``."""
        words = [w for bit, w in enumerate(_STATUS_WORDS) if self.ups_status & (1 << bit)]
        self.status_commit(words or ["OFF"])

    def status_reply(self, text: str) -> bool:
        """Take the ``Q`` answer; whether it was good."""
        if not text or text == "NA":
            return False
        self.ups_status = _hex(text) & 0xFF
        self.commit_status()
        return True


@attrs.frozen
class Reply:
    """What ``apc_read`` returns: ``count`` < 0 error, 0 timeout, else the text's length."""

    count: int
    text: str = ""


class ApcLine:
    """apcsmart's reads and writes on a :class:`SerialLine` (alerts go to the core)."""

    def __init__(self, line: SerialLine, core: ApcCore) -> None:
        self.line = line
        self.core = core

    async def write(self, ch: str) -> None:
        """Send one character."""
        await self.line.send(ch.encode("latin-1"))

    async def flush(self, *, alerts: bool = False) -> None:
        """``apc_flush``: drop the input, or with ``alerts`` read it for its alerts."""
        if not alerts:
            await self.line.flush_input()
            return
        while (await self.read(wait=0.02, alerts=True)).count > 0:
            pass

    async def read(
        self,
        *,
        wait: float = 3.0,
        alerts: bool = False,
        ignore: str | None = None,
        asterisk: bool = False,
    ) -> Reply:
        """``apc_read``: a line without its ignored characters, alerts applied if asked."""
        ignore = ignore if ignore is not None else (_IGNORE_AA if alerts else _IGNORE_ALL)
        kept: list[str] = []
        while True:
            chunk = (await self.line.read_until(b"\n*", wait, drop=b"\r")).decode("latin-1")
            ended = chunk.endswith(("\n", "*"))
            body = chunk[:-1] if ended else chunk
            for ch in body:
                if ch in ignore or ch == "*":
                    continue
                if alerts and ch in _ALERTS:
                    self.core.alert(ch)
                    continue
                kept.append(ch)
            if chunk.endswith("*"):
                if asterisk:
                    await self.line.read_until(b"\n", 1.0)
                    return Reply(2, "OK")
                continue
            if ended:
                return Reply(len(kept), "".join(kept))
            return Reply(-1 if kept else 0, "".join(kept))

    async def ask(self, cmd: str, **read: object) -> Reply:
        """Flush (alerts kept if ``alerts``), send ``cmd``, read the answer."""
        await self.flush(alerts=bool(read.get("alerts")))
        await self.write(cmd)
        return await self.read(**read)  # type: ignore[arg-type]

    async def write_repeated(self, ch: str) -> bool:
        """``apc_write_rep``: the character twice, 1.3 s apart, if the first gets no answer."""
        await self.write(ch)
        if (await self.read(wait=0.2)).count:
            return False
        await trio.sleep(1.3)
        await self.write(ch)
        return True

    async def write_long(self, text: str) -> bool:
        """``apc_write_long``: the first character, 200 ms of silence, the rest 50 ms apart."""
        await self.write(text[0])
        if (await self.read(wait=0.2)).count:
            return False
        for ch in text[1:]:
            await trio.sleep(0.05)
            await self.write(ch)
        return True


class ApcSmart:
    """The ``apcsmart`` driver.

    Args:
        args: The section as main.c leaves it.
    """

    def __init__(self, args: DriverArgs) -> None:
        self.args = args
        self._last_nasty = -1e9

    def line(self) -> SerialLine:
        """The port: 2400 8N1; ``cable = 940-0095B`` drives DTR on and RTS off."""
        cable = (self.args.getval("cable") or "").lower() == "940-0095b"
        settings = SerialSettings(
            baudrate=2400,
            dtr=True if cable else None,
            rts=False if cable else None,
            exclusive=self.args.lock,
        )
        return SerialLine(self.args.port, settings)

    # -- start-up --------------------------------------------------------------------------

    async def smartmode(self, apc: ApcLine, tries: int) -> bool:
        """``Y`` until ``SM``, ESC between tries."""
        for _ in range(tries):
            reply = await apc.ask("Y", wait=1.5)
            if reply.count > 0 and reply.text == "SM":
                return True
            if reply.count < 0:
                await trio.sleep(1)
            await apc.write("\x1b")
            await apc.read(wait=1.5)
        return False

    async def verify(self, apc: ApcLine, core: ApcCore, index: int) -> None:
        """``var_verify``: ask a query once; keep the variable if it answers well."""
        var = VARTAB[index]
        if ApcFlag.MULTI in var.flags:
            core.present.add(index)
            return
        reply = await apc.ask(var.cmd)
        if reply.count < 1 or reply.text == "NA" or not _matches(var.regex, reply.text):
            return
        core.present.add(index)
        core.set_var(index, reply.text)
        core.string_setup(index)

    async def protocol_verify(self, apc: ApcLine, core: ApcCore, cmd: str) -> None:
        """One character of the ``a`` list: a query to verify, or a command to offer."""
        if cmd in _UNREPORTED:
            return
        rows = [i for i, v in enumerate(VARTAB) if v.cmd == cmd]
        for index in rows:
            await self.verify(apc, core, index)
        if rows:
            return
        for index, ct in enumerate(CMDTAB):
            if ct.cmd == cmd:
                core.commands_present.add(index)
                core.addcmd(ct.name)

    async def deprecate(self, apc: ApcLine, core: ApcCore) -> None:
        """``deprecate_vars``: settle the names two queries can give."""
        for index, var in enumerate(VARTAB):
            if ApcFlag.MULTI not in var.flags or index not in core.present:
                continue
            reply = await apc.ask(var.cmd)
            if reply.count < 1 or reply.text == "NA" or not _matches(var.regex, reply.text):
                core.present.discard(index)
                continue
            for later in range(index + 1, len(VARTAB)):
                if VARTAB[later].name == var.name or VARTAB[later].cmd == var.cmd:
                    core.present.discard(later)
            core.set_var(index, reply.text)
            core.string_setup(index)

    async def firmware_lookup(self, apc: ApcLine, core: ApcCore) -> int:
        """``firmware_table_lookup``: 1 if an old model was set up, 2 for 451.2.I, else 0."""
        reply = await apc.ask("V", wait=3.0)
        if reply.count < 0:
            return 0
        if not reply.count or reply.text == "NA":
            await apc.write("b")
            reply = await apc.read()
            if reply.count < 1:
                return 0
        firmware = reply.text
        if firmware == "451.2.I":
            return 2
        if re.fullmatch(r"[a-fA-F0-9]{2}", firmware):
            firmware = "set\x01"
        chars = COMPAT.get(firmware)
        if chars is None:
            return 0
        core.setinfo("ups.model", "Matrix-UPS" if firmware[:1] in "05" else "Smart-UPS")
        for ch in chars:
            await self.protocol_verify(apc, core, ch)
        await self.deprecate(apc, core)
        return 1

    async def old_setup(self, apc: ApcLine, core: ApcCore) -> None:
        """``oldapcsetup``: the queries every Smart-UPS has."""
        for name in (
            "ups.temperature",
            "ups.load",
            "input.voltage",
            "output.voltage",
            "battery.charge",
            "battery.voltage",
            "ups.model",
            "ups.serial",
            "ups.firmware",
            "output.current",
        ):
            for index, var in enumerate(VARTAB):
                if var.name == name:
                    await self.verify(apc, core, index)
        await self.deprecate(apc, core)
        if core.lookup_name("output.current") is not None:
            core.setinfo("ups.model", "Matrix-UPS")
        elif core.lookup_name("ups.model") is None:
            core.setinfo("ups.model", "Smart-UPS")

    async def baseinfo(self, apc: ApcLine, core: ApcCore) -> None:
        """``getbaseinfo``.

        Raises:
            DeviceSilent: If the UPS fails to answer ``a`` at all.
        """
        qco = await self.firmware_lookup(apc, core)
        if qco == 1:
            return
        reply = await apc.ask("a", wait=6.0, ignore="")
        if reply.count < 0:
            raise DeviceSilent("no answer to the capability query")
        if not reply.count or reply.text == "NA" or not _CMDSET_FORM.match(reply.text):
            log.info("UPS %s: very old or unknown APC model", self.args.name)
            await self.old_setup(apc, core)
            return
        cmds = reply.text.split(".")[2]
        for ch in cmds:
            await self.protocol_verify(apc, core, ch)
        await self.deprecate(apc, core)
        if "\x1a" in cmds:
            caps = await apc.ask("\x1a", wait=6.0, ignore=_IGNORE_CAPS)
            if caps.count >= 1 and caps.text != "NA":
                core.parse_caps(caps.text)

    async def initinfo(self, apc: ApcLine, core: ApcCore) -> None:
        """``upsdrv_initinfo``.

        Raises:
            DeviceSilent: If no APC Smart UPS answers on the port.
        """
        if not await self.smartmode(apc, 5):
            raise DeviceSilent(f"unable to detect an APC Smart protocol UPS on {self.args.port}")
        await self.baseinfo(apc, core)
        core.setinfo("ups.mfr", "APC")

    # -- updates ---------------------------------------------------------------------------

    async def poll_var(self, apc: ApcLine, core: ApcCore, index: int) -> bool:
        """``poll_data``: one present variable (dropped on ``NA``)."""
        reply = await apc.ask(VARTAB[index].cmd, alerts=True)
        if reply.count < 1:
            return False
        if reply.text == "NA":
            core.present.discard(index)
            core.del_var(index)
        else:
            core.set_var(index, reply.text)
        return True

    async def update(self, apc: ApcLine, core: ApcCore, *, full: bool) -> bool:
        """``update_status`` and ``update_info``; whether all went well."""
        reply = await apc.ask("Q", alerts=True)
        if reply.count < 1 or not core.status_reply(reply.text):
            return False
        for index in sorted(core.present):
            if (full or ApcFlag.POLL in VARTAB[index].flags) and not await self.poll_var(
                apc, core, index
            ):
                return False
        return True

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Detect the UPS, then update it every ``pollinterval`` and serve commands.

        Started after the first poll, or after STARTUP_PATIENCE seconds with the UPS
        stale while detection goes on (it is tried again at each poll until the UPS
        answers). Cancellation closes the port.
        The UPS is not sent back to dumb mode (``R``).
        """
        core = ApcCore(self.args)
        core.start()
        line = self.line()
        apc = ApcLine(line, core)
        ready = False
        stale = False
        waited = 0  # apcsmart's last_worked: polls left alone since the data went stale
        last_full = -math.inf

        async def poll(planned: float) -> None:
            nonlocal ready, stale, waited, last_full
            if not ready:
                await self.initinfo(apc, core)
                ready = True
                self.args.finish(core, _VERSION_INTERNAL)
            elif stale:
                last_full = -math.inf  # a full update when the UPS answers again
                waited += 1
                if waited < STALE_PAUSE:
                    raise DeviceSilent("left alone for a while after losing it")
                if not await self.smartmode(apc, 1):
                    raise DeviceSilent("no answer to Y")
                waited = 0
            full = planned - last_full > 3600
            if full:
                last_full = planned
            stale = True
            if not await self.update(apc, core, full=full):
                raise DeviceSilent("update failed")
            stale = False

        async def execute(command: DriverCommand) -> CommandStatus:
            try:
                if command.kind is CommandKind.SET:
                    return await self.setvar(apc, core, command.name, command.value or "")
                return await self.instcmd(apc, core, command.name, command.value)
            except DeviceSilent:
                return CommandStatus.FAILED

        await run_serial_driver(
            line,
            core,
            link,
            poll,
            execute,
            pollinterval=self.args.pollinterval,
            stale_after=1,
            task_status=task_status,
        )

    # -- the driver's -k -------------------------------------------------------------------

    async def shutdown(self) -> None:
        """``apcsmart -k`` (``upsdrv_shutdown``): smart mode, status, then ``sdtype``/``advorder``.

        As NUT, the port is opened for this alone (no detection), the status ``Q`` is
        taken only if its answer is one character long (else LB+OB is assumed, as
        apcsmart.c does), the outcome is not checked (``-k`` always ends well), and the
        UPS is sent back to dumb mode (``R``) as the driver's exit does.
        Cancellation closes the port.

        Raises:
            DriverFailed: If the port cannot be opened or fails.
        """
        core = ApcCore(self.args)
        line = self.line()
        apc = ApcLine(line, core)
        async with shutdown_session(line, self.args.name):
            if not await self.smartmode(apc, 1):
                log.warning("UPS %s: setting SmartMode failed", self.args.name)
            await apc.write("Q")
            reply = await apc.read(wait=1.5)
            core.ups_status = _hex(reply.text) if reply.count == 1 else _LB | _OB
            advorder = self.args.getval("advorder")
            if advorder and advorder[0].upper() != "N":
                for method in advorder:
                    if await self._sd_method(apc, core, int(method)) is CommandStatus.SUCCESS:
                        break
            else:
                await self._sd_simple(apc, core, int(self.args.getval("sdtype") or "0"))
            await apc.flush()
            await apc.write("R")  # upsdrv_cleanup at the driver's exit: back to dumb mode
            await apc.read()

    async def _sd_method(self, apc: ApcLine, core: ApcCore, method: int) -> CommandStatus:
        """One of apcsmart's ``sdlist``: 0 S, 1 @nnn, 2 K K, 3 Z Z, 4 the CS hack."""
        if method == 1:
            return await self._at(apc, self.args.getval("awd") or "000")
        if method == 2:
            return await self._repeat_then_ok(apc, "K", ignore_silence=False)
        if method == 3:
            return await self._repeat_then_ok(apc, "Z", ignore_silence=True)
        if method == 4:
            return await self._cs_hack(apc, core)
        return await self._soft(apc)

    async def _sd_simple(self, apc: ApcLine, core: ApcCore, sdtype: int) -> CommandStatus:
        """``upsdrv_shutdown_simple``: ``sdtype`` 0..5 as a method, or S-then-@ for 1."""
        if sdtype == 1:
            if core.ups_status & _OB and await self._soft(apc) is CommandStatus.SUCCESS:
                return CommandStatus.SUCCESS
            return await self._sd_method(apc, core, 1)
        if sdtype == 0:
            return await self._sd_method(apc, core, 1 if core.ups_status & _OL else 0)
        return await self._sd_method(apc, core, _SDTYPE_METHOD.get(sdtype, 0))

    async def _cs_hack(self, apc: ApcLine, core: ApcCore) -> CommandStatus:
        """``sdcmd_CS``: on line, simulate a power failure (``U``), wait ``cshdelay``, ``S``."""
        if core.ups_status & _OL:
            await apc.flush()
            await apc.write("U")
            if (await apc.read(wait=1.5)).count < 0:
                return CommandStatus.FAILED
            await trio.sleep(float(self.args.getval("cshdelay") or "3.5"))
        return await self._soft(apc)

    # -- commands ----------------------------------------------------------------------------

    async def _sdok(self, apc: ApcLine, *, ignore_silence: bool) -> CommandStatus:
        reply = await apc.read(wait=1.5, asterisk=True)
        if reply.count < 0:
            return CommandStatus.FAILED
        if (not reply.count and ignore_silence) or reply.text == "OK":
            return CommandStatus.SUCCESS
        return CommandStatus.FAILED

    async def _soft(self, apc: ApcLine) -> CommandStatus:
        await apc.flush()
        await apc.write("S")
        return await self._sdok(apc, ignore_silence=False)

    async def _at(self, apc: ApcLine, digits: str) -> CommandStatus:
        padded = digits.rjust(2 if len(digits) == 2 else 3, "0")
        await apc.flush()
        if not await apc.write_long("@" + padded):
            return CommandStatus.FAILED
        status = await self._sdok(apc, ignore_silence=False)
        if status is CommandStatus.SUCCESS or len(padded) == 3:
            return status
        await apc.write("Y")
        await apc.read(wait=1.5)
        return CommandStatus.FAILED

    async def _repeat_then_ok(
        self, apc: ApcLine, ch: str, *, ignore_silence: bool
    ) -> CommandStatus:
        await apc.flush()
        if not await apc.write_repeated(ch):
            return CommandStatus.FAILED
        return await self._sdok(apc, ignore_silence=ignore_silence)

    async def _calibrate(self, apc: ApcLine, start: bool) -> CommandStatus:
        reply = await apc.ask("Q", alerts=True)
        if reply.count < 1 or reply.text == "NA":
            return CommandStatus.SUCCESS  # apcsmart 3.2 reports every outcome as handled
        running = bool(_hex(reply.text) & 1)
        if running != start:
            await apc.write("D")
            await apc.read(alerts=True)
        return CommandStatus.SUCCESS

    def _nasty_confirmed(self) -> bool:
        """``instcmd_chktime``: a nasty command runs only if repeated 3 to 15 s later."""
        now = trio.current_time()
        elapsed, self._last_nasty = now - self._last_nasty, now
        return MINCMDTIME <= elapsed <= MAXCMDTIME

    def _find(self, core: ApcCore, name: str, ext: str | None) -> ApcCmd | CommandStatus:
        for index, ct in enumerate(CMDTAB):
            if ct.name != name.lower():
                continue
            if ct.ext is not None:
                if not _matches(ct.ext, ext or ""):
                    continue
            elif ext is not None:
                continue
            return ct if index in core.commands_present else CommandStatus.INVALID_ARGUMENT
        return CommandStatus.INVALID_ARGUMENT

    async def instcmd(
        self, apc: ApcLine, core: ApcCore, name: str, ext: str | None
    ) -> CommandStatus:
        """Apcsmart's ``instcmd``."""
        found = self._find(core, name, ext)
        if isinstance(found, CommandStatus):
            return found
        if found.nasty and not self._nasty_confirmed():
            log.info(
                "UPS %s: %s needs confirming (send it again in 3 to 15 s)", self.args.name, name
            )
            return CommandStatus.SUCCESS
        key = name.lower()
        if key in ("calibrate.start", "calibrate.stop"):
            return await self._calibrate(apc, key == "calibrate.start")
        if key == "load.on":
            await apc.flush()
            return (
                CommandStatus.SUCCESS if await apc.write_repeated("\x0e") else CommandStatus.FAILED
            )
        if key == "load.off":
            return await self._repeat_then_ok(apc, "Z", ignore_silence=True)
        if key == "shutdown.stayoff":
            return await self._repeat_then_ok(apc, "K", ignore_silence=False)
        if key == "shutdown.return":
            return await self._shutdown_return(apc, core, ext)
        return await self._simple(apc, found)

    async def _shutdown_return(self, apc: ApcLine, core: ApcCore, ext: str | None) -> CommandStatus:
        if not ext:
            return await self._soft(apc)
        if ext[0].upper() == "A":
            return await self._at(apc, ext[3:])
        return await self._cs_hack(apc, core)

    async def _simple(self, apc: ApcLine, ct: ApcCmd) -> CommandStatus:
        await apc.flush(alerts=True)
        if ct.repeat:
            if not await apc.write_repeated(ct.cmd):
                return CommandStatus.FAILED
        else:
            await apc.write(ct.cmd)
        reply = await apc.read(alerts=True)
        return (
            CommandStatus.SUCCESS
            if reply.count >= 1 and reply.text == "OK"
            else CommandStatus.FAILED
        )

    async def setvar(self, apc: ApcLine, core: ApcCore, name: str, value: str) -> CommandStatus:
        """Apcsmart's ``setvar``: step an enumeration, or write a text."""
        index = core.lookup_name(name)
        if index is None or index not in core.rw:
            return CommandStatus.UNKNOWN
        if index in core.enum:
            return await self._set_enum(apc, core, index, value)
        if ApcFlag.STRING in VARTAB[index].flags:
            return await self._set_string(apc, core, index, value)
        return CommandStatus.UNKNOWN

    async def _set_enum(self, apc: ApcLine, core: ApcCore, index: int, value: str) -> CommandStatus:
        var = VARTAB[index]
        orig = await apc.ask(var.cmd, alerts=True)
        if orig.count < 1 or orig.text == "NA":
            return CommandStatus.FAILED
        if convert(var, orig.text) == value:
            return CommandStatus.SUCCESS
        for _ in range(32):
            await apc.write("-")
            step = await apc.read(alerts=True)
            if step.count < 1 or step.text != "OK":
                return CommandStatus.FAILED
            await apc.write(var.cmd)
            now = await apc.read(alerts=True)
            if now.count < 1 or now.text == "NA":
                return CommandStatus.FAILED
            if convert(var, now.text) == value:
                await self.poll_var(apc, core, index)
                return CommandStatus.SUCCESS
            if convert(var, now.text) == convert(var, orig.text):
                log.error("UPS %s: %s wrapped without taking %r", self.args.name, var.name, value)
                return CommandStatus.FAILED
        await self.poll_var(apc, core, index)
        return CommandStatus.FAILED

    async def _set_string(
        self, apc: ApcLine, core: ApcCore, index: int, value: str
    ) -> CommandStatus:
        var = VARTAB[index]
        if len(value) > 8:
            return CommandStatus.FAILED
        current = await apc.ask(var.cmd, alerts=True)
        if current.count < 1 or current.text == "NA":
            return CommandStatus.FAILED
        if current.text == value:
            return CommandStatus.SUCCESS
        if not await apc.write_long("-" + value.ljust(8, "\r")):  # padded with CRs
            return CommandStatus.FAILED
        final = await apc.read(alerts=True)
        if final.count < 1 or final.text == "NO":
            return CommandStatus.FAILED
        await self.poll_var(apc, core, index)
        return CommandStatus.SUCCESS


def apcsmart_factory(section: UpsSection, context: DriverContext) -> ApcSmart:
    """Build the driver for a ``driver = apcsmart`` section (``DRIVERS["apcsmart"]``).

    Raises:
        ConfigError: For a key apcsmart does not know, or an option not in its form.
    """
    args = DriverArgs.from_section(section, APC_VARS, context.ups_globals)
    if not args.port:
        raise ConfigError(f"UPS [{section.name}]: no port given", section.path, section.lineno)
    for key, form in _OPTION_FORMS.items():
        value = args.getval(key)
        if value is not None and not re.search(form, value):
            raise args.error(f"invalid value ({value}) for option '{key}'")
    return ApcSmart(args)
