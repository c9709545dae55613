"""The usbhid-ups subdrivers as data: which devices each claims, names, hid2nut rows.

General theory of operation
---------------------------
A :class:`Subdriver` is read from its table file (:mod:`nuttrio.hw.hid.tables`, facts
taken from NUT 2.8.0's ``*-hid.c``): the ``(vendor, product, hook)`` ids it claims, its
vendor usage names, its lookups (HID value -> NUT value lists, or a named converter) and
its rows. A row is NUT's ``hid_info_t``: a NUT variable (or ``BOOL`` for a status bit, or
an instant command with the ``cmd`` flag), a usage path, flags, a printf format or the
default of a driver-side (``absent``) variable, and a lookup.

What cannot be data is here as small named functions: the converters (dates, string
indexes, Kelvin, per-model scales), the claim hooks (APC's ``max_report_size`` for some
Back-UPS, the CyberPower and Tripp Lite battery scales, disabling the interrupt pipe),
the model/manufacturer formatters and the report-descriptor fixes. A row whose converter
nuttrio does not have is left out, and :func:`unsupported_rows` lists it.

The subdrivers are tried in NUT's order (``mge`` first, then alphabetical), then
nuttrio's ``generic`` (standard usages only, from every table) for any other device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Protocol

import attrs

from ...nutconf.common import atoi
from .descriptor import ReportDescriptor
from .usages import UsageTable, entries_of, load_table_file, standard_usages

__all__ = [
    "ConvertContext",
    "DeviceIds",
    "Lookup",
    "Row",
    "Subdriver",
    "find_subdriver",
    "subdriver_names",
    "subdrivers",
    "unsupported_rows",
]


class ConvertContext(Protocol):
    """What a converter may ask the driver."""

    def string(self, index: int) -> str:
        """USB string ``index`` ("" if none)."""
        ...

    def info(self, name: str) -> str | None:
        """A NUT variable's current value."""
        ...

    @property
    def quirks(self) -> dict[str, float]:
        """Per-device settings the claim hooks made (scales, flags)."""
        ...


Converter = Callable[[float, ConvertContext], str | None]
Reverse = Callable[[str], float | None]


def _fmt(fmt: str) -> Converter:
    return lambda value, ctx: fmt % value


def _date(value: float, ctx: ConvertContext) -> str | None:
    v = int(value)
    if v == 0:
        return "not set"
    return f"{1980 + (v >> 9):04d}/{(v >> 5) & 0x0F:02d}/{v & 0x1F:02d}"


def _date_reverse(text: str) -> float | None:
    try:
        year, month, day = (int(p) for p in text.split("/"))
    except ValueError:
        return None
    if year - 1980 > 127 or month > 12 or day > 31:
        return 0
    return float(((year - 1980) << 9) + (month << 5) + day)


def _apc_date(value: float, ctx: ConvertContext) -> str | None:
    v = int(value)
    if v == 0:
        return "not set"
    year = (v & 0xF) + 10 * ((v >> 4) & 0xF)
    month = ((v >> 16) & 0xF) + 10 * ((v >> 20) & 0xF)
    day = ((v >> 8) & 0xF) + 10 * ((v >> 12) & 0xF)
    year += 1900 if year >= 70 else 2000
    return f"{year:04d}/{month:02d}/{day:02d}"


def _apc_date_reverse(text: str) -> float | None:
    try:
        year, month, day = (int(p) for p in text.split("/"))
    except ValueError:
        return None
    if year >= 2070 or month > 12 or day > 31:
        return 0
    year %= 100
    date = ((year // 10 & 0x0F) << 4) + (year % 10)
    date += ((month // 10 & 0x0F) << 20) + ((month % 10) << 16)
    date += ((day // 10 & 0x0F) << 12) + ((day % 10) << 8)
    return float(date)


def _kelvin(value: float, ctx: ConvertContext) -> str | None:
    return f"{value - 273.15:.1f}" if 273 <= value <= 373 else f"{value:.1f}"


def _stringid(value: float, ctx: ConvertContext) -> str | None:
    return ctx.string(int(value))


def _cps_battvolt(value: float, ctx: ConvertContext) -> str | None:
    quirks = ctx.quirks
    if quirks.get("cps_check_scale") and not quirks.get("cps_scale_checked"):
        nominal = ctx.info("battery.voltage.nominal")
        try:
            nominal_v = float(nominal) if nominal is not None else 0.0
        except ValueError:
            nominal_v = 0.0
        if nominal_v:
            if value / nominal_v > 1.4:  # NUT's battery_voltage_sanity_check
                quirks["battery_scale"] = 2.0 / 3
            quirks["cps_scale_checked"] = 1
    return f"{quirks.get('battery_scale', 1.0) * value:.1f}"


def _scaled(key: str) -> Converter:
    return lambda value, ctx: f"{ctx.quirks.get(key, 1.0) * value:.1f}"


def _tripplite_chemistry(value: float, ctx: ConvertContext) -> str | None:
    if ctx.info("ups.productid") in ("1003", "2005"):  # AVR 550U, OMNI1000LCD firmware bugs
        return "unknown"
    return ctx.string(int(value))


def _local(fmt: str, length: int) -> Converter:
    def convert(value: float, ctx: ConvertContext) -> str | None:
        text = time.strftime(fmt, time.localtime(int(value)))
        return text if len(text) == length else None

    return convert


_ABM_STATUS = {1: "charging", 2: "discharging", 3: "floating", 4: "resting", 6: "off"}
_ABM_FLAG = {1: "chrg", 3: "chrg", 2: "dischrg"}


def _abm_enabled(value: float, ctx: ConvertContext) -> str | None:
    """Eaton: remember whether Advanced Battery Monitoring is on; publish nothing."""
    ctx.quirks["abm"] = int(value)
    return None


def _abm(ctx: ConvertContext) -> int:
    return int(ctx.quirks.get("abm", -1))  # -1 unknown, 0 disabled, 1 enabled


def _abm_status(value: float, ctx: ConvertContext) -> str | None:
    return None if _abm(ctx) == 0 else _ABM_STATUS.get(int(value))


def _abm_flag(value: float, ctx: ConvertContext) -> str | None:
    return None if _abm(ctx) == 0 else _ABM_FLAG.get(int(value))


def _abm_legacy(token: str) -> Converter:
    """Eaton's legacy CHRG/DISCHRG bits count only while ABM is disabled."""

    def convert(value: float, ctx: ConvertContext) -> str | None:
        return token if _abm(ctx) == 0 and value == 1 else "!" + token

    return convert


def _eaton_realpower(value: float, ctx: ConvertContext) -> str | None:
    """ups.realpower from load, nominal power and power factor (0.80 by default)."""
    load, nominal = ctx.info("ups.load"), ctx.info("ups.power.nominal")
    if load is None or nominal is None:
        return None
    factor_text = ctx.info("output.powerfactor")
    factor = 0.80 if factor_text is None else atoi(factor_text)  # NUT's atoi: "0.9" is 0
    return f"{round(atoi(load) * 0.01 * atoi(nominal) * factor):.0f}"


def _eaton_converter_online(value: float, ctx: ConvertContext) -> str | None:
    if "off" in getattr(ctx, "bits", set()):
        return None
    return "!online" if value == 0 else "online"


def _eaton_country(value: float, ctx: ConvertContext) -> str | None:
    ctx.quirks["country"] = int(value)
    return None


#: mge-hid.c's model families (``mge_type``): the high byte is the family.
MGE_OFFLINE, MGE_PEGASUS, MGE_3S, MGE_DEFAULT = 0x000, 0x100, 0x110, 0x200
MGE_EVOLUTION, MGE_EVOLUTION_650, MGE_PULSAR_M, EATON_5P = 0x300, 0x301, 0x400, 0x500


def _mge_family(ctx: ConvertContext) -> int:
    return int(ctx.quirks.get("mge_type", MGE_DEFAULT)) & 0xFF00


def _mge_battery_voltage(value: float, ctx: ConvertContext) -> str | None:
    """battery.voltage from UPS.PowerSummary: Evolution, Pulsar M and 5P only."""
    return f"{value:.1f}" if _mge_family(ctx) in (MGE_EVOLUTION, MGE_PULSAR_M, EATON_5P) else None


def _mge_battery_voltage_nominal(value: float, ctx: ConvertContext) -> str | None:
    """battery.voltage.nominal from UPS.PowerSummary (the Evolution 650 says 12 V)."""
    if _mge_family(ctx) not in (MGE_EVOLUTION, MGE_PULSAR_M, EATON_5P):
        return None
    if int(ctx.quirks.get("mge_type", MGE_DEFAULT)) == MGE_EVOLUTION_650:
        value = 12.0
    return f"{value:.0f}"


def _pegasus(ctx: ConvertContext) -> bool:
    """Protection Station, Ellipse ECO and 3S 700/750.

    mge-hid.c meant the 3S only outside Europe, but it tests ``mge_type & 0xFF00``, which
    is MGE_PEGASUS's 0x100 for MGE_3S's 0x110: its country test is never reached, and
    every 3S 700/750 gets the rows. nuttrio does what NUT does.
    """
    return _mge_family(ctx) == MGE_PEGASUS


def _pegasus_threshold(value: float, ctx: ConvertContext) -> str | None:
    return f"{value:.0f}" if _pegasus(ctx) else None


def _pegasus_yes_no(value: float, ctx: ConvertContext) -> str | None:
    return ("no" if value == 0 else "yes") if _pegasus(ctx) else None


_LV = frozenset({100, 110, 120, 127})
_HV208 = frozenset({200, 208})
_HV230 = frozenset({220, 230, 240})


def _crossing_allowed(nominal: int, v: int, ctx: ConvertContext) -> bool:
    """A 208 V unit offering 230 V or a 230 V one offering 208 V (mge-hid.c's rules)."""
    line_interactive = _mge_family(ctx) >= MGE_DEFAULT
    if nominal in _HV208 and v in _HV230:
        return line_interactive
    if nominal in _HV230 and v in _HV208:
        return line_interactive  # COUNTRY_EUROPE_208 or not, NUT accepts them then
    return False


def _mge_nominal_output_voltage(value: float, ctx: ConvertContext) -> str | None:
    """output.voltage.nominal within the voltage class of the first value read.

    Line-interactive and online families (``mge_type`` >= MGE_DEFAULT) may also cross
    between 200/208 V and 220/230/240 V; offline ones may not; low-voltage units stay low.
    """
    nominal = int(ctx.quirks.setdefault("nominal_output_voltage", float(int(value))))
    v = int(value)
    for group in (_LV, _HV208, _HV230):
        if nominal in group:
            ok = v in group or _crossing_allowed(nominal, v, ctx)
            return f"{value:.0f}" if ok else None
    return f"{value:.0f}"


def mge_model(iproduct: str, imodel: str) -> tuple[str, int]:
    """mge-hid.c's get_model_name: the model name and family (``mge_type``).

    The first entry of the table whose iProduct and iModel equal the strings gives the
    family (MGE_DEFAULT when none does) and the name, or "<iProduct> <iModel>" when it
    names none.
    """
    for product, model, family, name in _mge_models():
        if product == iproduct and model == imodel:
            return (name or f"{iproduct} {imodel}"), family
    return f"{iproduct} {imodel}", MGE_DEFAULT


@cache
def _mge_models() -> tuple[tuple[str, str, int, str | None], ...]:
    raw = load_table_file("mge")["models"]
    assert isinstance(raw, list)
    return tuple((p, m, int(t, 16), n) for p, m, t, n in raw)


#: Converters by the name of NUT's lookup that uses them.
CONVERTERS: Mapping[str, Converter] = {
    "date_conversion": _date,
    "hex_conversion": lambda value, ctx: f"{int(value) & 0xFFFFFFFFFFFFFFFF:08x}",
    "stringid_conversion": _stringid,
    "divide_by_10_conversion": lambda value, ctx: f"{value * 0.1:0.1f}",
    "kelvin_celsius_conversion": _kelvin,
    "apc_date_conversion": _apc_date,
    "cps_battvolt": _cps_battvolt,
    "cps_battcharge": lambda value, ctx: f"{min(value, 100.0):.0f}",
    "tripplite_chemistry": _tripplite_chemistry,
    "tripplite_battvolt": _scaled("battery_scale"),
    "tripplite_iovolt": _scaled("io_voltage_scale"),
    "tripplite_iofreq": _scaled("io_frequency_scale"),
    "tripplite_ioamp": _scaled("io_current_scale"),
    "mge_date_conversion": _local("%Y/%m/%d", 10),
    "mge_time_conversion": _local("%H:%M:%S", 8),
    "mge_powerfactor_conversion": lambda value, ctx: f"{value / 100:.2f}",
    "mge_battery_capacity": lambda value, ctx: f"{value / 3600:.2f}",
    "eaton_abm_enabled_info": _abm_enabled,
    "eaton_abm_status_info": _abm_status,
    "eaton_abm_chrg_dischrg_info": _abm_flag,
    "eaton_discharging_info": _abm_legacy("dischrg"),
    "eaton_charging_info": _abm_legacy("chrg"),
    "eaton_compute_realpower_info": _eaton_realpower,
    "eaton_converter_online_info": _eaton_converter_online,
    "eaton_check_country_info": _eaton_country,
    "nominal_output_voltage_info": _mge_nominal_output_voltage,
    "mge_battery_voltage": _mge_battery_voltage,
    "mge_battery_voltage_nominal": _mge_battery_voltage_nominal,
    "pegasus_threshold_info": _pegasus_threshold,
    "pegasus_yes_no_info": _pegasus_yes_no,
}

#: NUT value -> HID value for the converters that can be written.
REVERSES: Mapping[str, Reverse] = {
    "date_conversion": _date_reverse,
    "apc_date_conversion": _apc_date_reverse,
    "pegasus_yes_no_info": lambda text: 1.0 if text.startswith("yes") else 0.0,
}

#: Claim hooks: what they set in the device's quirks.
HOOKS: Mapping[str, Mapping[str, float]] = {
    "disable_interrupt_pipe": {"pollonly": 1},
    "cps_battery_scale": {"cps_check_scale": 1},
    "battery_scale_1dot0": {"battery_scale": 1.0},
    "battery_scale_0dot1": {"battery_scale": 0.1},
    "smart1500lcdt_scale": {
        "battery_scale": 100000.0,
        "io_voltage_scale": 100000.0,
        "io_frequency_scale": 0.01,
        "io_current_scale": 0.01,
    },
}

#: Products whose names start so need APC's max_report_size tweak.
APC_MAX_REPORT = ("Back-UPS ES 525", "Back-UPS CS")


@attrs.frozen
class Lookup:
    """A NUT lookup table: listed values, or a converter function."""

    name: str
    values: tuple[tuple[int, str], ...] = ()
    converter: Converter | None = None
    reverse: Reverse | None = None

    def to_nut(self, value: float, ctx: ConvertContext) -> str | None:
        """The NUT value for a HID value (``None``: no entry, the row is skipped)."""
        if self.converter is not None:
            return self.converter(value, ctx)
        for hid, nut in self.values:
            if hid == int(value):
                return nut
        return None

    def to_hid(self, text: str) -> float | None:
        """The HID value for a NUT value (``None``: no entry)."""
        if self.reverse is not None:
            return self.reverse(text)
        for hid, nut in self.values:
            if nut == text:
                return float(hid)
        return None

    def enum_values(self, ctx: ConvertContext) -> tuple[str, ...]:
        """The NUT values it lists (for ENUM variables).

        With a converter, those it accepts now (usbhid-ups asks it for each HID value).
        """
        return tuple(
            nut for hid, nut in self.values if self.converter is None or self.to_nut(hid, ctx)
        )


@attrs.frozen
class Row:
    """One hid2nut row (NUT's ``hid_info_t``)."""

    var: str
    path: str | None
    flags: frozenset[str] = frozenset()
    length: int = 0
    dfl: str | None = None
    lookup: Lookup | None = None

    @property
    def is_command(self) -> bool:
        """An instant command (its ``dfl`` is the value written)."""
        return "cmd" in self.flags

    @property
    def is_bool(self) -> bool:
        """A status bit row (its lookup yields a status token)."""
        return self.var == "BOOL"

    @property
    def absent(self) -> bool:
        """A driver-side variable, published with ``dfl`` when its path exists."""
        return "absent" in self.flags


@attrs.frozen
class DeviceIds:
    """What a subdriver is matched against."""

    vendorid: int
    productid: int
    manufacturer: str = ""
    product: str = ""
    serial: str = ""


@attrs.frozen
class Subdriver:
    """One subdriver (NUT's ``subdriver_t``)."""

    name: str
    version: str
    usages: UsageTable
    rows: tuple[Row, ...]
    devices: tuple[tuple[int, int, str | None], ...] = ()
    skipped: tuple[str, ...] = ()
    model_paths: tuple[str, ...] = ()

    @property
    def vendors(self) -> frozenset[int]:
        """The vendor ids it knows."""
        return frozenset(vid for vid, _, _ in self.devices)

    def claim(self, ids: DeviceIds, *, productid_given: bool = False) -> bool:
        """Whether this subdriver drives the device (NUT's ``claim``).

        A known vendor with an unknown product is taken only when the user gave
        ``productid`` (NUT's POSSIBLY_SUPPORTED); ``generic`` takes any device.
        """
        if self.name == "generic":
            return True
        needs = _CLAIM_NEEDS.get((self.name, ids.vendorid))
        if needs is not None and needs not in ids.manufacturer + " " + ids.product:
            return False
        if any(vid == ids.vendorid and pid == ids.productid for vid, pid, _ in self.devices):
            return True
        return productid_given and ids.vendorid in self.vendors

    def quirks(self, ids: DeviceIds) -> dict[str, float]:
        """The settings the claim hooks make for this device."""
        quirks: dict[str, float] = {}
        if (ids.vendorid, ids.productid) == (0x09AE, 0x1330):
            quirks["skip_report"] = 0x54  # SU3000LCD2UHV firmware bug: usbhid-ups skips it
        for vid, pid, hook in self.devices:
            if vid == ids.vendorid and pid == ids.productid and hook:
                quirks.update(HOOKS.get(hook, {}))
                if hook == "general_apc_check" and ids.product.startswith(APC_MAX_REPORT):
                    quirks["max_report_size"] = 1
        return quirks

    def identity(self, ids: DeviceIds) -> dict[str, str]:
        """ups.mfr / ups.model / ups.serial (and APC's firmware) as the formatters give."""
        mfr = ids.manufacturer or _DEFAULT_MFR.get(self.name, "")
        out = {"ups.mfr": mfr, "ups.model": ids.product, "ups.serial": ids.serial}
        if self.name == "apc" and "FW:" in ids.product:
            model, _, rest = ids.product.partition("FW:")
            out["ups.model"] = model[:-1] if model else model
            firmware, sep, usb = rest.partition("USB FW:")
            out["ups.firmware"] = firmware[:-1] if sep and firmware else firmware
            if sep:
                out["ups.firmware.aux"] = usb
        return {k: v for k, v in out.items() if v or k != "ups.serial"}

    def format_model(self, ids: DeviceIds, imodel: str) -> tuple[str, int] | None:
        """mge-hid.c's format_model: (ups.model, mge_type) from iProduct and ``imodel``.

        ``imodel`` is the UPS.PowerSummary.iModel string, else the ConfigApparentPower
        number (the driver reads :attr:`model_paths` for it). ``None``: keep iProduct
        (not mge, no model string, or a Dell unit, whose iProduct is already the name).
        """
        if not self.model_paths or not imodel or ids.vendorid in _MODEL_AS_IS:
            return None
        return mge_model(ids.product or "unknown", imodel)

    def fix_report_desc(self, desc: ReportDescriptor, ids: DeviceIds) -> ReportDescriptor:
        """The descriptor with this subdriver's fixes applied (NUT's ``fix_report_desc``)."""
        fix = _FIXES.get(self.name)
        return fix(desc, ids) if fix is not None else desc


#: (subdriver, vendor id) -> text the USB strings must hold for the claim: mge-hid takes
#: Phoenixtec's 06da only for AEG-branded units (liebert-hid, not in nuttrio, has the rest).
_CLAIM_NEEDS = {("mge", 0x06DA): "AEG"}

#: Vendors whose iProduct is the full model name already (mge-hid.c: Dell).
_MODEL_AS_IS = frozenset({0x047C})

_DEFAULT_MFR = {"apc": "APC", "cps": "CPS", "mge": "Eaton"}

_HVT = 0x00840054  # HighVoltageTransfer
_VOLTAGE = 0x00840030
_CONFIG_VOLTAGE = 0x00840040


def _fix_apc(desc: ReportDescriptor, ids: DeviceIds) -> ReportDescriptor:
    """Back-UPS (051d:0002) input voltage limits too small for 230 V regions."""
    if (ids.vendorid, ids.productid) != (0x051D, 0x0002):
        return desc
    hvt = desc.find_id_node(0x33, _HVT)
    if hvt is None:
        return desc
    voltage = desc.find_id_node(0x31, _VOLTAGE)
    if voltage is not None and hvt.log_max > voltage.log_max:
        desc = desc.with_limits(voltage, 0, hvt.log_max * 2)
    config = desc.find_id_node(0x30, _CONFIG_VOLTAGE)
    if config is not None and hvt.log_max > config.log_max:
        desc = desc.with_limits(config, config.log_min, 255)
    return desc


def _fix_cps(desc: ReportDescriptor, ids: DeviceIds) -> ReportDescriptor:
    """CyberPower 0764:0501/0601: voltage limits copied from HighVoltageTransfer.

    When the output voltage (report 18) has the HighVoltageTransfer's (report 16) limits,
    it gets 0..511, and so does the input voltage (report 15) if it has them too. NUT
    2.8.0 did this for 0501 and logged, without fixing, the input voltage; nuttrio does
    what NUT 2.8.1 and later do.
    """
    if ids.vendorid != 0x0764 or ids.productid not in (0x0501, 0x0601):
        return desc
    hvt = desc.find_id_node(16, _HVT)
    output = desc.find_id_node(18, _VOLTAGE)
    if hvt is None or output is None:
        return desc
    limits = (hvt.log_min, hvt.log_max)
    if (output.log_min, output.log_max) != limits:
        return desc
    desc = desc.with_limits(output, 0, 511)
    source = desc.find_id_node(15, _VOLTAGE)
    if source is not None and (source.log_min, source.log_max) == limits:
        desc = desc.with_limits(source, 0, 511)
    return desc


_FIXES: Mapping[str, Callable[[ReportDescriptor, DeviceIds], ReportDescriptor]] = {
    "apc": _fix_apc,
    "cps": _fix_cps,
}


def _lookups(raw: object, common: Mapping[str, Lookup]) -> dict[str, Lookup]:
    assert isinstance(raw, dict)
    out = dict(common)
    for name, spec in raw.items():
        values = tuple((int(v), str(t)) for v, t in spec.get("values", ()))
        if name in CONVERTERS:
            out[name] = Lookup(name, values, CONVERTERS[name], REVERSES.get(name))
        elif values:
            out[name] = Lookup(name, values=values)
    return out


@cache
def _common_lookups() -> dict[str, Lookup]:
    return _lookups(load_table_file("common")["lookups"], {})


def _rows(raw: object, lookups: Mapping[str, Lookup]) -> tuple[tuple[Row, ...], tuple[str, ...]]:
    assert isinstance(raw, list)
    rows, skipped = [], []
    for spec in raw:
        name = spec.get("lookup")
        lookup = lookups.get(name) if name else None
        if name and lookup is None:
            skipped.append(f"{spec['var']} <- {spec.get('path')} (converter {name})")
            continue
        rows.append(
            Row(
                var=spec["var"],
                path=spec.get("path"),
                flags=frozenset(spec.get("flags", ())),
                length=int(spec.get("len", 0)),
                dfl=spec.get("dfl"),
                lookup=lookup,
            )
        )
    return tuple(rows), tuple(skipped)


def _list(raw: object) -> list[object]:
    assert isinstance(raw, list)
    return raw


def _load(name: str) -> Subdriver:
    data = load_table_file(name)
    lookups = _lookups(data["lookups"], _common_lookups())
    rows, skipped = _rows(data["rows"], lookups)
    devices = data["devices"]
    assert isinstance(devices, list)
    return Subdriver(
        name=name,
        version=str(data["version"]),
        usages=UsageTable(entries_of(data["usages"])).then(standard_usages()),
        rows=rows,
        devices=tuple((int(v, 16), int(p, 16), h) for v, p, h in devices),
        skipped=skipped,
        model_paths=tuple(str(p) for p in _list(data.get("model_paths", []))),
    )


def _generic(specific: Sequence[Subdriver]) -> Subdriver:
    """Rows of every table whose paths use standard usages only (first of each kind)."""
    std = standard_usages()
    seen: set[tuple[str, str | None, str | None]] = set()
    rows = []
    for sub in specific:
        for row in sub.rows:
            key = (row.var, row.path, row.dfl)
            standard = row.path is None or std.parse_path(row.path) is not None
            lookup_ok = row.lookup is None or row.lookup.name in _common_lookups()
            if standard and lookup_ok and key not in seen and "[" not in (row.path or ""):
                seen.add(key)
                rows.append(row)
    return Subdriver(
        name="generic", version="nuttrio generic HID 0.1", usages=std, rows=tuple(rows)
    )


@cache
def subdrivers() -> tuple[Subdriver, ...]:
    """All subdrivers in the order they are tried."""
    specific = tuple(_load(name) for name in ("mge", "apc", "cps", "tripplite"))
    return (*specific, _generic(specific))


def subdriver_names() -> list[str]:
    """The names ``subdriver =`` accepts."""
    return [sub.name for sub in subdrivers()]


def find_subdriver(
    ids: DeviceIds,
    *,
    forced: str | None = None,
    productid_given: bool = False,
    specific: bool = False,
) -> Subdriver | None:
    """The subdriver for a device: the first that claims it, or the one ``forced``.

    ``forced`` is a name (``apc``) or the start of a version string (``APC HID``), in
    any case. With ``specific``, the ``generic`` subdriver is not tried (matching a bus
    full of keyboards must not claim them all).
    """
    for sub in subdrivers():
        if specific and forced is None and sub.name == "generic":
            continue
        if forced is not None:
            wanted = forced.lower()
            if sub.name == wanted or sub.version.lower().startswith(wanted):
                return sub
        elif sub.claim(ids, productid_given=productid_given):
            return sub
    return None


def unsupported_rows() -> dict[str, tuple[str, ...]]:
    """Per subdriver, the rows left out because their converter is not in nuttrio."""
    return {sub.name: sub.skipped for sub in subdrivers() if sub.skipped}
