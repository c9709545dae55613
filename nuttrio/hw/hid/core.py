"""The usbhid-ups state machine, I/O-free: report cache, walks, ups.status, commands.

General theory of operation
---------------------------
:class:`HidCore` is told what the device said and answers with NUT variables. The driver
(:mod:`.driver`) does the USB I/O around it in three steps per poll:

1. :meth:`HidCore.reports_to_read` lists the report ids the coming walk needs that the
   :class:`ReportCache` does not hold fresh; the driver GET_REPORTs each and files the
   answer (:meth:`ReportCache.store`) or the failure (:meth:`ReportCache.fail`);
2. :meth:`HidCore.strings_to_read` lists the USB string indexes the walk will print
   (``iDeviceChemistry``...); the driver reads them into :attr:`HidCore.strings`;
3. :meth:`HidCore.walk` runs NUT's walk (``init``, ``quick`` or ``full``): each row of
   the subdriver's table whose path resolved reads its field, converts it and sets its
   NUT variable, status bit or instant command; then ``ups.status`` (and, on full walks,
   ``ups.alarm``) are rebuilt as usbhid-ups 2.8.0 builds them.

Interrupt-IN reports go to :meth:`HidCore.apply_interrupt`, which files them and updates
the variables of their Input fields at once (each event mapped to the same-path Feature
field's row, as NUT does). SET VAR and INSTCMD become :class:`Write` plans
(:meth:`HidCore.plan_setvar`, :meth:`HidCore.plan_instcmd`): the bytes of each
SET_REPORT, built on the cached report so other fields keep their bytes; the driver sends
them in order (waiting ``pause`` seconds before each) and calls :meth:`HidCore.written`.

Rows resolve once, at the init walk: the first row for a NUT variable whose path exists
and whose value reads wins (later rows for it are dropped), so one table serves several
firmware layouts; ``BOOL`` and ``ups.alarm`` rows may repeat.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ...state import Variable
from ..dstate import ignorelb_words
from .codec import decode, encode
from .descriptor import ATTR_CONSTANT, Field, ItemType, ReportDescriptor
from .subdrivers import DeviceIds, Row, Subdriver

__all__ = [
    "HidCore",
    "HidSettings",
    "ReportCache",
    "ReportFailure",
    "WalkMode",
    "Write",
    "status_line",
]

log = logging.getLogger(__name__)


class WalkMode(enum.Enum):
    """NUT's walk modes."""

    INIT = "init"
    QUICK = "quick"
    FULL = "full"


class ReportFailure(enum.Enum):
    """Why a report could not be read (the walk skips its rows)."""

    STALL = "stall"
    TIMEOUT = "timeout"
    SHORT = "short"


@attrs.define
class ReportCache:
    """One buffer per report id, shared by its Input and Feature fields (NUT's reportbuf).

    A buffer starts as zeros of the descriptor's length; a reply shorter than that
    overwrites only its own bytes (broken firmware is common, NUT keeps what it can).
    """

    lengths: dict[int, int]
    data: dict[int, bytes] = attrs.field(factory=dict)
    stamps: dict[int, float] = attrs.field(factory=dict)
    failed: dict[int, ReportFailure] = attrs.field(factory=dict)

    @classmethod
    def for_descriptor(cls, desc: ReportDescriptor) -> ReportCache:
        """An empty cache sized for ``desc``."""
        lengths = {rid: desc.buffer_length(rid) for rid in desc.report_ids()}
        return cls(lengths=lengths, data={rid: bytes(n) for rid, n in lengths.items()})

    def fresh(self, report_id: int, now: float, age: float) -> bool:
        """Whether the buffer was filled less than ``age`` seconds ago."""
        stamp = self.stamps.get(report_id)
        return stamp is not None and stamp + age > now

    def store(self, report: bytes, now: float) -> bool:
        """File a report (id byte first); returns whether it had the expected length."""
        rid = report[0]
        length = self.lengths.get(rid, len(report))
        old = self.data.get(rid, bytes(length))
        keep = report[:length]
        self.data[rid] = keep + old[len(keep) :]
        self.stamps[rid] = now
        self.failed.pop(rid, None)
        return len(report) == length

    def fail(self, report_id: int, why: ReportFailure) -> None:
        """Remember that ``report_id`` could not be read for this walk."""
        self.failed[report_id] = why
        self.stamps.pop(report_id, None)

    def flush(self) -> None:
        """Expire every buffer (after a SET_REPORT, as NUT does)."""
        self.stamps.clear()


@attrs.frozen
class HidSettings:
    """The ups.conf options the core uses (validated by the driver's factory).

    Attributes:
        offdelay: ``ups.delay.shutdown`` (seconds; ``None`` keeps the table's default).
        ondelay: ``ups.delay.start``.
        lowbatt: ``battery.charge.low`` override.
        onlinedischarge: Treat OL+DISCHRG as OB.
        onlinedischarge_calibration: Treat OL+DISCHRG as calibrating (CAL).
        ignorelb: NUT's driver-wide ``ignorelb``: the device's LB is dropped and LB comes
            from ``battery.charge`` < ``battery.charge.low`` (or the runtime's) only.
        lbrb_log_delay_sec: Seconds LB and RB are held back while the UPS is online and
            calibrating (NUT 2.8.1+; 0: never).
        lbrb_log_delay_without_calibrating: Hold them back when not calibrating too.
        interruptonly: Read Input fields, never poll.
        pollinterval: The report cache's age limit (seconds).
        pollfreq: Seconds between full walks.
    """

    offdelay: int | None = None
    ondelay: int | None = None
    lowbatt: int | None = None
    onlinedischarge: bool = False
    onlinedischarge_calibration: bool = False
    ignorelb: bool = False
    lbrb_log_delay_sec: int = 0
    lbrb_log_delay_without_calibrating: bool = False
    interruptonly: bool = False
    pollinterval: float = 2.0
    pollfreq: float = 30.0


@attrs.frozen
class Write:
    """One SET_REPORT to send: ``report`` (id byte first), after ``pause`` seconds."""

    report: bytes
    pause: float = 0.0


@attrs.define
class _Var:
    value: str
    rw: bool = False
    string: bool = False
    aux: int = 0
    enums: tuple[str, ...] = ()


#: Status tokens and what ups.status / ups.alarm make of them (usbhid-ups.c).
STATUS_TOKENS = frozenset(
    (
        "online",
        "dischrg",
        "chrg",
        "lowbatt",
        "overload",
        "replacebatt",
        "shutdownimm",
        "trim",
        "boost",
        "bypassauto",
        "bypassman",
        "off",
        "cal",
        "overheat",
        "commfault",
        "depleted",
        "timelimitexp",
        "fullycharged",
        "awaitingpower",
        "fanfail",
        "nobattery",
        "battvoltlo",
        "battvolthi",
        "chargerfail",
        "vrange",
        "frange",
    )
)

_ALARMS = (
    ("replacebatt", "Replace battery!"),
    ("shutdownimm", "Shutdown imminent!"),
    ("fanfail", "Fan failure!"),
    ("nobattery", "No battery installed!"),
    ("battvoltlo", "Battery voltage too low!"),
    ("battvolthi", "Battery voltage too high!"),
    ("chargerfail", "Battery charger fail!"),
    ("overheat", "Temperature too high!"),
    ("commfault", "Internal UPS fault!"),
    ("awaitingpower", "Awaiting power!"),
    ("bypassauto", "Automatic bypass mode!"),
    ("bypassman", "Manual bypass mode!"),
)

#: (token(s) that set it, token that blocks it, NUT status word), after OL/OB.
_STATUS_WORDS = (
    (("dischrg",), "depleted", "DISCHRG"),
    (("chrg",), "fullycharged", "CHRG"),
    (("lowbatt", "timelimitexp", "shutdownimm"), None, "LB"),
    (("overload",), None, "OVER"),
    (("replacebatt",), None, "RB"),
    (("trim",), None, "TRIM"),
    (("boost",), None, "BOOST"),
    (("bypassauto", "bypassman"), None, "BYPASS"),
    (("off",), None, "OFF"),
    (("cal",), None, "CAL"),
)


def status_line(
    bits: Iterable[str], *, onlinedischarge: bool = False, calibration: bool = False
) -> str:
    """``ups.status`` from the status tokens set, as usbhid-ups 2.8.0's ups_status_set.

    ``onlinedischarge`` (``onlinedischarge_onbattery`` in later NUT) reads OL+DISCHRG as
    OB; ``calibration`` (NUT 2.8.1's ``onlinedischarge_calibration``) reads it as CAL.
    """
    on = set(bits)
    if calibration and "online" in on and "dischrg" in on:
        on.add("cal")
    words = []
    if "online" not in on or ("dischrg" in on and onlinedischarge):
        words.append("OB")
    else:
        words.append("OL")
    for setters, blocker, word in _STATUS_WORDS:
        if any(s in on for s in setters) and (blocker is None or blocker not in on):
            words.append(word)
    return " ".join(words)


def alarm_text(bits: Iterable[str]) -> str:
    """``ups.alarm`` from the status tokens (empty when there is none)."""
    on = set(bits)
    return " ".join(text for token, text in _ALARMS if token in on)


class HidCore:
    """usbhid-ups for one device: what it has read, and what NUT would publish.

    Args:
        desc: The parsed (and subdriver-fixed) report descriptor.
        subdriver: The subdriver driving it.
        ids: The device's ids and strings.
        settings: The ups.conf options.
        quirks: What the subdriver's claim hooks set (scales, ``pollonly``...).
    """

    def __init__(
        self,
        desc: ReportDescriptor,
        subdriver: Subdriver,
        ids: DeviceIds,
        settings: HidSettings | None = None,
        quirks: dict[str, float] | None = None,
    ) -> None:
        self.desc = desc
        self.subdriver = subdriver
        self.ids = ids
        self.settings = settings or HidSettings()
        self._quirks = quirks if quirks is not None else subdriver.quirks(ids)
        self.cache = ReportCache.for_descriptor(desc)
        self.strings: dict[int, str] = {}
        self.bits: set[str] = set()
        self.alarms: list[str] = []
        self._vars: dict[str, _Var] = {}
        self._commands: list[str] = []
        self._bound: list[tuple[Row, Field]] | None = None
        self._candidates = self._resolve()
        self._model_fields = self._resolve_paths(subdriver.model_paths)
        self.changed = False  # a SET was done: the next walk is a full one
        self.now = 0.0  # the time of the last reports_to_read / apply_interrupt
        self._held_since: dict[str, float | None] = {"LB": None, "RB": None}
        self._identity()

    # -- the ConvertContext the converters see ------------------------------------------

    def string(self, index: int) -> str:
        """USB string ``index`` as read ("" if unknown)."""
        return self.strings.get(index, "")

    def info(self, name: str) -> str | None:
        """A variable's current value."""
        var = self._vars.get(name.lower())
        return None if var is None else var.value

    @property
    def quirks(self) -> dict[str, float]:
        """Per-device settings (scales, ABM state, ``pollonly``, ``max_report_size``)."""
        return self._quirks

    # -- what the driver publishes ------------------------------------------------------

    def variables(self) -> list[Variable]:
        """The variables as NUT would publish them now."""
        return [
            Variable(
                name=name,
                value=var.value,
                rw=var.rw,
                string=var.string,
                aux=var.aux,
                enums=var.enums,
            )
            for name, var in self._vars.items()
        ]

    @property
    def commands(self) -> Sequence[str]:
        """The instant commands offered."""
        return tuple(self._commands)

    def setinfo(self, name: str, value: str, **flags: object) -> None:
        """Set a variable (flags only when given), as dstate_setinfo/setflags do."""
        var = self._vars.get(name)
        if var is None:
            var = self._vars[name] = _Var(value)
        var.value = value
        for key, flag in flags.items():
            setattr(var, key, flag)

    def delinfo(self, name: str) -> None:
        """Delete a variable if present."""
        self._vars.pop(name, None)

    # -- resolution ---------------------------------------------------------------------

    def _kind(self) -> ItemType:
        return ItemType.INPUT if self.settings.interruptonly else ItemType.FEATURE

    def _resolve(self) -> list[tuple[Row, Field | None]]:
        """Each row with the field its path names (``None``: absent in this device)."""
        kind = self._kind()
        skip = self._quirks.get("skip_report")
        out: list[tuple[Row, Field | None]] = []
        for row in self.subdriver.rows:
            if row.path is None:
                continue
            path = self.subdriver.usages.parse_path(row.path)
            field = None if path is None else self.desc.find(path, kind)
            out.append((row, None if field is not None and field.report_id == skip else field))
        return out

    def _resolve_paths(self, paths: Sequence[str]) -> list[Field | None]:
        out: list[Field | None] = []
        for text in paths:
            path = self.subdriver.usages.parse_path(text)
            out.append(None if path is None else self.desc.find(path, ItemType.FEATURE))
        return out

    def _model_string_index(self) -> int:
        field = self._model_fields[0] if self._model_fields else None
        value = None if field is None else self._read(field)
        return int(value) if value else 0

    def _format_model(self) -> None:
        """The subdriver's model formatter (mge: iProduct + iModel, and the family)."""
        imodel = self.string(self._model_string_index())
        if not imodel and len(self._model_fields) > 1 and self._model_fields[1] is not None:
            power = self._read(self._model_fields[1])
            imodel = "" if power is None else str(int(power))
        found = self.subdriver.format_model(self.ids, imodel)
        if found is not None:
            name, family = found
            self._quirks["mge_type"] = family
            self.setinfo("ups.model", name)
            self.setinfo("device.model", name)

    def _identity(self) -> None:
        for name, value in self.subdriver.identity(self.ids).items():
            self.setinfo(name, value)
        for name in ("mfr", "model", "serial"):
            copied = self.info(f"ups.{name}")
            if copied is not None:
                self.setinfo(f"device.{name}", copied)
        self.setinfo("device.type", "ups")
        self.setinfo("ups.vendorid", f"{self.ids.vendorid:04x}")
        self.setinfo("ups.productid", f"{self.ids.productid:04x}")
        self.setinfo("driver.version.data", self.subdriver.version)

    def _rows_for(self, mode: WalkMode) -> list[tuple[Row, Field]]:
        if mode is WalkMode.INIT or self._bound is None:
            return [(row, f) for row, f in self._candidates if f is not None]
        if mode is WalkMode.QUICK:
            return [(r, f) for r, f in self._bound if "quick_poll" in r.flags]
        skip = {"absent", "cmd", "static"}
        return [
            (r, f)
            for r, f in self._bound
            if not (skip & r.flags) and ("semi_static" not in r.flags or self.changed)
        ]

    @property
    def initialised(self) -> bool:
        """Whether the init walk has run (rows are bound)."""
        return self._bound is not None

    # -- step 1 and 2: what to read -----------------------------------------------------

    def reports_to_read(self, mode: WalkMode, now: float) -> list[int]:
        """Report ids the walk needs that are not fresh in the cache."""
        self.now = now
        if self.settings.interruptonly:
            return []
        wanted: dict[int, None] = {}
        if mode is WalkMode.INIT:
            for model_field in self._model_fields:
                if model_field is not None:
                    wanted[model_field.report_id] = None
        for row, field in self._rows_for(mode):
            if row.absent and mode is WalkMode.INIT:
                continue
            if not self.cache.fresh(field.report_id, now, self.settings.pollinterval):
                wanted[field.report_id] = None
        return list(wanted)

    def strings_to_read(self, mode: WalkMode) -> list[int]:
        """USB string indexes the walk's ``stringid`` rows will print, not read yet."""
        wanted: dict[int, None] = {}
        index = self._model_string_index() if mode is WalkMode.INIT else 0
        if index and index not in self.strings:
            wanted[index] = None
        for row, field in self._rows_for(mode):
            name = row.lookup.name if row.lookup else ""
            if name in ("stringid_conversion", "tripplite_chemistry"):
                value = self._read(field)
                if value is not None and int(value) and int(value) not in self.strings:
                    wanted[int(value)] = None
        return list(wanted)

    # -- step 3: the walk ---------------------------------------------------------------

    def _read(self, field: Field) -> float | None:
        if field.report_id in self.cache.failed:
            return None
        return decode(self.cache.data.get(field.report_id, b""), field)

    def walk(self, mode: WalkMode) -> None:
        """Run one walk over the cached reports and rebuild ``ups.status``."""
        rows = self._rows_for(mode)
        if mode is WalkMode.INIT:
            self._bound = []
            self._format_model()
        if mode is WalkMode.FULL:
            self.alarms = []  # NUT's alarm_init: the walk's ups.alarm rows refill it
        for row, field in rows:
            if mode is WalkMode.INIT and not self._init_row(row, field):
                continue
            value = self._read(field)
            if value is None:
                continue
            if row.is_command:
                if row.var not in self._commands:
                    self._commands.append(row.var)
                continue
            if self._set_value(row, value) and mode is WalkMode.INIT:
                self._init_flags(row)
        if mode is WalkMode.INIT:
            self._after_init()
        if mode is WalkMode.FULL:
            self.changed = False
            if alarm_text(self.bits):
                self.alarms.append(alarm_text(self.bits))
            self._publish_alarm()
        self._publish_status()

    def _init_row(self, row: Row, field: Field) -> bool:
        """NUT's init rules; binds the row and says whether to read it now."""
        assert self._bound is not None
        if row.absent:
            if self.info(row.var) is None:
                self.setinfo(
                    row.var,
                    row.dfl or "",
                    rw="rw" in row.flags,
                    string="string" in row.flags,
                    aux=row.length,
                )
            self._bound.append((row, field))
            return False
        if row.var.startswith("ups.alarm") or row.is_bool or row.is_command:
            self._bound.append((row, field))
            return True
        if self.info(row.var) is None:
            self._bound.append((row, field))
            return True
        return False

    def _init_flags(self, row: Row) -> None:
        var = self._vars.get(row.var)
        if var is None:
            return
        var.rw = "rw" in row.flags
        var.string = "string" in row.flags
        var.aux = row.length if var.string else 0
        if "enum" in row.flags and var.rw and row.lookup is not None:
            var.enums = row.lookup.enum_values(self)

    def _set_value(self, row: Row, value: float) -> bool:
        """NUT's ups_infoval_set: returns whether a variable (not a bit) was set."""
        if row.lookup is not None:
            text = row.lookup.to_nut(value, self)
            if text is None:
                return False
            if row.is_bool:
                self._set_bit(text)
                return False
            if row.var.startswith("ups.alarm"):
                self.alarms.append(text)
                return False
            self.setinfo(row.var, text)
            return True
        self.setinfo(row.var, (row.dfl or "%g") % value)
        return True

    def _set_bit(self, token: str) -> None:
        clear = token.startswith("!")
        name = token.lstrip("!").lower()
        if name not in STATUS_TOKENS:
            return
        if clear:
            self.bits.discard(name)
        else:
            self.bits.add(name)

    def _after_init(self) -> None:
        s = self.settings
        for name, value in (
            ("battery.charge.low", s.lowbatt),
            ("ups.delay.start", s.ondelay),
            ("ups.delay.shutdown", s.offdelay),
        ):
            if value is not None and self.info(name) is not None:
                self.setinfo(name, str(value))
        has_off, has_on = self._bound_cmd("load.off.delay"), self._bound_cmd("load.on.delay")
        extra = (["load.off"] if has_off else []) + (["load.on"] if has_on else [])
        if has_off and has_on:
            extra += ["shutdown.return", "shutdown.stayoff"]
        for cmd in extra:
            if cmd not in self._commands:
                self._commands.append(cmd)

    def _bound_cmd(self, name: str) -> tuple[Row, Field] | None:
        for row, field in self._bound or ():
            if row.var == name:
                return row, field
        return None

    def _publish_status(self) -> None:
        if "vrange" in self.bits:
            self.setinfo("input.transfer.reason", "input voltage out of range")
        elif "frange" in self.bits:
            self.setinfo("input.transfer.reason", "input frequency out of range")
        else:
            self.delinfo("input.transfer.reason")
        line = status_line(
            self.bits,
            onlinedischarge=self.settings.onlinedischarge,
            calibration=self.settings.onlinedischarge_calibration,
        )
        words = self._hold_lbrb(line.split())
        if self.settings.ignorelb:
            words = ignorelb_words(words, self.info)
        self.setinfo("ups.status", " ".join(words))

    def _hold_lbrb(self, words: list[str]) -> list[str]:
        """NUT 2.8.1+'s ``lbrb_log_delay_sec``: LB and RB held back for a while.

        They appear only once they have lasted longer than the delay while the UPS is
        online and calibrating (or with ``lbrb_log_delay_without_calibrating``, online at
        all); RB waits only while LB does. Off the line, or with no delay, at once.
        """
        s = self.settings
        calibrating = "CAL" in words or s.lbrb_log_delay_without_calibrating
        hold = s.lbrb_log_delay_sec >= 1 and calibrating and "online" in self.bits
        for word in self._held_since:
            if word not in words:
                self._held_since[word] = None
        return [w for w in words if w not in self._held_since or self._held(w, hold)]

    def _held(self, word: str, hold: bool) -> bool:
        """Whether ``word`` shows now (and start its delay when it does not)."""
        if not hold or (word == "RB" and self._held_since["LB"] is None):
            return True
        since = self._held_since[word]
        if since is None:
            self._held_since[word] = self.now
            return False
        return self.now - since > self.settings.lbrb_log_delay_sec

    def _publish_alarm(self) -> None:
        text = " ".join(self.alarms)
        if text:
            self.setinfo("ups.alarm", text)
        else:
            self.delinfo("ups.alarm")

    # -- interrupt reports --------------------------------------------------------------

    def apply_interrupt(self, report: bytes, now: float) -> int:
        """File an interrupt-IN report and apply its Input fields' values now.

        Returns:
            How many fields mapped to a row of the table (0: NUT ignores the report).
        """
        if not report:
            return 0
        self.now = now
        self.cache.store(report, now)
        used = 0
        for field in self.desc.fields:
            if field.report_id != report[0] or field.kind is not ItemType.INPUT:
                continue
            target = self.desc.find(field.path, self._kind()) or self.desc.find(
                field.path, ItemType.INPUT
            )
            for row, bound in self._bound or ():
                if bound is target and not row.absent:
                    value = self._read(field)
                    if value is not None and not row.is_command:
                        self._set_value(row, value)
                        used += 1
                    break
        self._publish_status()
        return used

    # -- writes -------------------------------------------------------------------------

    def _write(self, row: Row, field: Field, text: str) -> Write | None:
        if field.attribute == ATTR_CONSTANT:
            return None
        if row.lookup is not None:
            value = row.lookup.to_hid(text)
            if value is None:
                value = -1.0  # NUT's hu_find_valinfo answers -1 for no match
        else:
            try:
                value = float(int(float(text))) if text.strip() else 0.0
            except ValueError:
                value = 0.0  # atol of garbage
        rid = field.report_id
        report = self.cache.data.get(rid, bytes(self.cache.lengths.get(rid, 1)))
        # NUT sets the bits in the cached buffer itself: a second write to the same
        # report (a composite command) keeps the first one's bits
        self.cache.data[rid] = encode(report, field, value)
        return Write(self.cache.data[rid])

    def plan_setvar(self, name: str, value: str) -> list[Write] | None:
        """The SET_REPORTs for ``SET VAR name value``; ``[]`` if only driver state changes.

        Returns ``None`` when NUT would answer the variable is unknown or not writable.
        """
        for row, field in self._bound or ():
            if row.var.lower() != name.lower():
                continue
            if "rw" not in row.flags:
                return None
            if row.absent:
                self.setinfo(row.var, value)
                return []
            write = self._write(row, field, value)
            return None if write is None else [write]
        return None

    def plan_instcmd(self, name: str, extra: str | None = None) -> list[Write] | None:
        """The SET_REPORTs for an instant command (``None``: not offered)."""
        name = {"beeper.off": "beeper.disable", "beeper.on": "beeper.enable"}.get(name, name)
        found = self._bound_cmd(name)
        if found is not None:
            row, field = found
            if not row.is_command:
                return None
            write = self._write(row, field, extra if extra is not None else row.dfl or "0")
            return None if write is None else [write]
        return self._composite(name)

    def _composite(self, name: str) -> list[Write] | None:
        if name == "load.off":
            return self.plan_instcmd("load.off.delay", "0")
        if name == "load.on":
            return self.plan_instcmd("load.on.delay", "0")
        if name not in ("shutdown.return", "shutdown.stayoff"):
            return None
        writes: list[Write] = []
        if self.info("ups.start.auto") is not None:
            auto = self.plan_setvar("ups.start.auto", "yes" if name == "shutdown.return" else "no")
            writes += auto or []
        on_delay = self.info("ups.delay.start") if name == "shutdown.return" else "-1"
        first = self.plan_instcmd("load.on.delay", on_delay)
        second = self.plan_instcmd("load.off.delay", self.info("ups.delay.shutdown"))
        if first is None or second is None:
            return None
        return writes + first + [attrs.evolve(w, pause=0.125) for w in second]

    def written(self) -> None:
        """The plan's SET_REPORTs were sent: flush the cache, full walk next."""
        self.cache.flush()
        self.changed = True

    def report_bytes(self) -> Mapping[int, bytes]:
        """The cached reports (for explore and recording)."""
        return dict(self.cache.data)
