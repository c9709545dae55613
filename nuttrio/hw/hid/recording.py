"""Recorded USB HID devices: nuttrio's recording files, and the other formats read as ones.

A :class:`Recording` is what a replay needs to stand in for a device: its USB ids and
strings, its report descriptor, one answer per feature report id, and optionally the
interrupt-IN reports it sent with their times. Three kinds of file load as a recording
(:func:`load_recording` tells them apart by their content):

* nuttrio's own JSON, written by ``nuttrio hid-record`` (:meth:`Recording.to_json`);
* a NUT ``usbhid-ups -DDD -x explore`` log, as nut-ddl ``.dev`` files carry it in
  comments (:func:`parse_explore_log`): the descriptor from the ``Report Descriptor``
  lines and each report's first ``Report[get|err]`` bytes;
* an esp32-nut fixture (``report_descriptor_hex`` and ``scenarios``).

The string descriptors a dump does not show are rebuilt where it says what they hold:
the ``iManufacturer``/``iProduct``/``iSerialNumber`` items' values index the USB strings
it printed, and ``iDeviceChemistry`` indexes the ``battery.type`` of the dump's upsc part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

__all__ = [
    "ExploreLine",
    "ExploreLog",
    "Recording",
    "RecordingError",
    "load_recording",
    "parse_explore_log",
]

FORMAT = "nuttrio-hid-recording/1"


class RecordingError(ValueError):
    """A file is no recording nuttrio can read (the message says why)."""


def _hex(data: bytes) -> str:
    return data.hex(" ")


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("0x", "").replace(",", " "))


@attrs.frozen
class Recording:
    """One device as recorded.

    Attributes:
        vendorid: USB idVendor.
        productid: USB idProduct.
        manufacturer: The iManufacturer string ("" if none).
        product: The iProduct string.
        serial: The iSerialNumber string.
        descriptor: The HID report descriptor.
        features: Report id -> the whole report (id byte first) GET_REPORT returned.
        interrupts: ``(seconds since the start, report)`` read from interrupt IN.
        strings: USB string index -> text.
        bus: The bus number as recorded ("" if unknown).
        device: The device address ("" if unknown).
        release: bcdDevice.
        source: Where it was loaded from (for messages).
    """

    vendorid: int
    productid: int
    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    descriptor: bytes = b""
    features: Mapping[int, bytes] = attrs.field(factory=dict)
    interrupts: tuple[tuple[float, bytes], ...] = ()
    strings: Mapping[int, str] = attrs.field(factory=dict)
    bus: str = ""
    device: str = ""
    release: int = 0x0100
    source: str = ""

    def to_json(self) -> str:
        """The recording as nuttrio's JSON file (see docs/hid-recording.md)."""
        doc = {
            "format": FORMAT,
            "vendorid": f"{self.vendorid:04x}",
            "productid": f"{self.productid:04x}",
            "manufacturer": self.manufacturer,
            "product": self.product,
            "serial": self.serial,
            "bus": self.bus,
            "device": self.device,
            "release": f"{self.release:04x}",
            "strings": {str(k): v for k, v in sorted(self.strings.items())},
            "report_descriptor": _hex(self.descriptor),
            "feature_reports": {f"{k:02x}": _hex(v) for k, v in sorted(self.features.items())},
            "interrupt_reports": [[round(t, 6), _hex(data)] for t, data in self.interrupts],
        }
        return json.dumps(doc, indent=1) + "\n"


def _from_nuttrio(doc: Mapping[str, object], source: str) -> Recording:
    def text(key: str) -> str:
        return str(doc.get(key, ""))

    features = doc.get("feature_reports", {})
    interrupts = doc.get("interrupt_reports", [])
    strings = doc.get("strings", {})
    assert isinstance(features, dict)
    assert isinstance(interrupts, list)
    assert isinstance(strings, dict)
    return Recording(
        vendorid=int(text("vendorid"), 16),
        productid=int(text("productid"), 16),
        manufacturer=text("manufacturer"),
        product=text("product"),
        serial=text("serial"),
        descriptor=_unhex(text("report_descriptor")),
        features={int(k, 16): _unhex(v) for k, v in features.items()},
        interrupts=tuple((float(t), _unhex(d)) for t, d in interrupts),
        strings={int(k): str(v) for k, v in strings.items()},
        bus=text("bus"),
        device=text("device"),
        release=int(text("release") or "0100", 16),
        source=source,
    )


def _from_esp32(doc: Mapping[str, object], source: str) -> Recording:
    raw = doc["report_descriptor_hex"]
    assert isinstance(raw, list)
    features: dict[int, bytes] = {}
    interrupts: list[tuple[float, bytes]] = []
    scenarios = doc.get("scenarios", [])
    assert isinstance(scenarios, list)
    for k, scenario in enumerate(scenarios):
        for report in scenario.get("reports", []):
            data = bytes(report["data"])
            kind = report.get("report_type", report.get("type", 3))
            if kind == 3:
                features.setdefault(data[0], data)
            else:
                interrupts.append((float(k), data))
    return Recording(
        vendorid=int(str(doc["vid"]), 16),
        productid=int(str(doc["pid"]), 16),
        manufacturer=str(doc.get("manufacturer", "")),
        product=str(doc.get("product", "")),
        serial=str(doc.get("serial_number", "")),
        descriptor=bytes(int(str(b), 16) for b in raw),
        features=features,
        interrupts=tuple(interrupts),
        source=source,
    )


# ---------------------------------------------------------------------------------------
# NUT explore logs

_LINE = re.compile(r"^#?\s*(?:\d+\.\d+\s+)?\[D(\d)\]\s?(.*)$")
_HEXLINE = re.compile(r"^\s+((?:[0-9a-f]{2}\s*)+)$")
_REPORT = re.compile(r"^Report\[(get|buf|err|int|set)\]: \((\d+) bytes\) => ((?:[0-9a-f]{2}\s*)*)$")
_PATH = re.compile(
    r"^Path: (\S+), Type: (\w+), ReportID: 0x([0-9a-f]{2}), Offset: (\d+), Size: (\d+)"
    r"(?:, Value: (\S+))?$"
)
_DEVINFO = re.compile(
    r"^- (VendorID|ProductID|Manufacturer|Product|Serial Number|Bus|Device"
    r"|Device release number): ?(.*)$"
)
_UPSC = re.compile(r"^([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+): (.*)$")


@attrs.frozen
class ExploreLine:
    """One ``Path:`` line of an explore log, with the report bytes shown just before it.

    Attributes:
        path: The usage path string.
        kind: ``Input``, ``Output`` or ``Feature``.
        report_id: The report id.
        offset: The bit offset.
        size: The bit size.
        value: NUT's ``%g`` of the value, or ``None`` when it printed none.
        report: The latest ``Report[...]`` bytes for this id before the line.
        level: The debug level of the line (1 for the dump, 2 for events).
    """

    path: str
    kind: str
    report_id: int
    offset: int
    size: int
    value: str | None
    report: bytes
    level: int


@attrs.frozen
class ExploreLog:
    """What a ``usbhid-ups -x explore`` log says (:func:`parse_explore_log`).

    Attributes:
        descriptor: The report descriptor bytes.
        declared_size: The size NUT said it has.
        objects: The ``N HID objects found`` count.
        lines: Every ``Path:`` line in order.
        device: The ``- VendorID: ...`` facts.
        first_reports: Report id -> its first ``Report[get|err]`` bytes.
        warnings: Lines NUT's parser logged (``HIDParse: LogMax is less than LogMin...``).
        upsc: The ``var: value`` lines outside the log (the upsc part of a ``.dev``).
    """

    descriptor: bytes
    declared_size: int
    objects: int
    lines: tuple[ExploreLine, ...]
    device: Mapping[str, str]
    first_reports: Mapping[int, bytes]
    warnings: tuple[str, ...]
    upsc: Mapping[str, str]


def _debug_lines(text: str) -> Iterator[tuple[int, str]]:
    for raw in text.splitlines():
        match = _LINE.match(raw.rstrip("\n"))
        if match:
            yield int(match.group(1)), match.group(2)
        elif "HIDParse:" in raw:
            yield 0, raw[raw.index("HIDParse:") :]
        elif _UPSC.match(raw) is not None:
            yield -1, raw


def parse_explore_log(text: str) -> ExploreLog:
    """Read a NUT ``usbhid-ups -DDD -x explore`` log (bare, or in a ``.dev``'s comments).

    Raises:
        RecordingError: If the text holds no ``Report Descriptor`` dump.
    """
    descriptor = bytearray()
    declared = -1
    in_descriptor = False
    objects = 0
    lines: list[ExploreLine] = []
    device: dict[str, str] = {}
    reports: dict[int, bytes] = {}
    first: dict[int, bytes] = {}
    warnings: list[str] = []
    upsc: dict[str, str] = {}
    for level, body in _debug_lines(text):
        if level == -1:
            name, _, value = body.partition(": ")
            upsc.setdefault(name, value)
            continue
        if level == 0:
            warnings.append(body)
            continue
        if in_descriptor and (hexline := _HEXLINE.match(body)):
            descriptor += bytes.fromhex(hexline.group(1))
            continue
        in_descriptor = False
        if body.startswith("Report Descriptor: ("):
            declared = int(body.split("(")[1].split()[0])
            descriptor = bytearray(bytes.fromhex(body.split("=>", 1)[1]))
            in_descriptor = True
        elif (report := _REPORT.match(body)) is not None:
            data = bytes.fromhex(report.group(3))
            if data:
                reports[data[0]] = data
                if report.group(1) in ("get", "err"):
                    first.setdefault(data[0], data)
        elif (path := _PATH.match(body)) is not None:
            rid = int(path.group(3), 16)
            lines.append(
                ExploreLine(
                    path=path.group(1),
                    kind=path.group(2),
                    report_id=rid,
                    offset=int(path.group(4)),
                    size=int(path.group(5)),
                    value=path.group(6),
                    report=reports.get(rid, b""),
                    level=level,
                )
            )
        elif body.endswith("HID objects found"):
            objects = int(body.split()[0])
        elif (info := _DEVINFO.match(body)) is not None:
            device.setdefault(info.group(1), info.group(2))
    if declared < 0:
        raise RecordingError("no 'Report Descriptor' dump in this log")
    return ExploreLog(
        descriptor=bytes(descriptor),
        declared_size=declared,
        objects=objects,
        lines=tuple(lines),
        device=device,
        first_reports=first,
        warnings=tuple(warnings),
        upsc=upsc,
    )


def _raw_bits(report: bytes, offset: int, size: int) -> int:
    whole = int.from_bytes(report[1:], "little")
    return (whole >> offset) & ((1 << size) - 1)


def _strings_from_log(log: ExploreLog) -> dict[int, str]:
    """USB string index -> text, from the string-index items the log decoded."""
    known = {
        "iManufacturer": log.device.get("Manufacturer", ""),
        "iProduct": log.device.get("Product", ""),
        "iSerialNumber": log.device.get("Serial Number", ""),
        "iDeviceChemistry": log.upsc.get("battery.type", ""),
    }
    strings: dict[int, str] = {}
    for line in log.lines:
        text = known.get(line.path.rsplit(".", 1)[-1])
        if text and line.kind == "Feature" and line.report:
            index = _raw_bits(line.report, line.offset, line.size)
            if index:
                strings.setdefault(index, text)
    return strings


def _from_explore(text: str, source: str) -> Recording:
    log = parse_explore_log(text)
    dev = log.device
    return Recording(
        vendorid=int(dev.get("VendorID", "0"), 16),
        productid=int(dev.get("ProductID", "0"), 16),
        manufacturer=dev.get("Manufacturer", ""),
        product=dev.get("Product", ""),
        serial=dev.get("Serial Number", ""),
        descriptor=log.descriptor,
        features=dict(log.first_reports),
        strings=_strings_from_log(log),
        bus=dev.get("Bus", ""),
        device=dev.get("Device", ""),
        release=int(dev.get("Device release number", "0100") or "0100", 16),
        source=source,
    )


def load_recording(path: Path | str) -> Recording:
    """Load a recording from nuttrio's JSON, an explore log / ``.dev``, or esp32-nut JSON.

    Raises:
        OSError: If the file cannot be read.
        RecordingError: If it is none of those (the message names the file).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
            if doc.get("format", "").startswith("nuttrio-hid-recording"):
                return _from_nuttrio(doc, str(path))
            if "report_descriptor_hex" in doc:
                return _from_esp32(doc, str(path))
            raise RecordingError("JSON without 'report_descriptor' or 'report_descriptor_hex'")
        return _from_explore(text, str(path))
    except (RecordingError, ValueError, KeyError, AssertionError, TypeError) as exc:
        raise RecordingError(f"{path}: not a HID recording nuttrio can read: {exc}") from exc
