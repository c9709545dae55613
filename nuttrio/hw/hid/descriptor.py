"""The HID report-descriptor parser, with usbhid-ups's semantics (I/O-free).

General theory of operation
---------------------------
NUT's parser is deliberately small, and mapping tables only line up if a port reads a
descriptor exactly as it does, so this one does:

* Items handled: the main items Input, Output, Feature, Collection and End Collection; the
  globals Usage Page, Logical/Physical Minimum/Maximum, Unit Exponent, Unit, Report Size,
  Report ID and Report Count; the local Usage. Long items are skipped, everything else
  (Usage Minimum/Maximum, Push/Pop, String Index, Delimiter) is ignored.
* A 1- or 2-byte Usage gets the current page in its high 16 bits; a 4-byte one carries
  its own page. Usages stack up; each Collection and each Report Count unit of a main item
  takes the first one. The local state is reset after every Collection, End Collection and
  completed main item.
* A Collection pushes its usage on the path; a vendor collection type (``>= 0x80``) also
  pushes an index node ``0x00FF00nn`` (shown ``[n]``). End Collection pops both.
* Each Report Count unit of a main item is one :class:`Field` with its own bit offset in
  its (report id, type); a unit with no usage left is padding: it moves the offset and
  counts toward the report's length but is no field.
* Logical and physical limits are signed at their encoded width; a Logical Maximum that
  reads smaller than the Logical Minimum is re-read unsigned (``25 ff`` is 255), as NUT
  does with a warning. A Unit Exponent above 7 is negative (4-bit two's complement).

A descriptor that ends inside an item or with collections still open (a truncated read) is
parsed as far as it goes and the problem is listed in :attr:`ReportDescriptor.problems`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator

import attrs

__all__ = ["Field", "HIDParseError", "ItemType", "ReportDescriptor", "parse_descriptor"]

#: Item sizes by the two low bits of the prefix byte.
_ITEM_SIZES = (0, 1, 2, 4)


class HIDParseError(ValueError):
    """The bytes are no report descriptor at all (no field could be read)."""


class ItemType(enum.IntEnum):
    """A main item's kind, numbered by its prefix (tag and type bits)."""

    INPUT = 0x80
    OUTPUT = 0x90
    FEATURE = 0xB0

    @property
    def label(self) -> str:
        """``Input``, ``Output`` or ``Feature``, as NUT prints it."""
        return self.name.capitalize()


#: Bit 0 of a main item's data: Constant; NUT refuses to write an item whose data is
#: exactly that (0x01).
ATTR_CONSTANT = 0x01


@attrs.frozen
class Field:
    """One data field of a report: what NUT calls a HID object.

    Attributes:
        path: The usage path, each node ``page << 16 | usage`` (index nodes
            ``0x00FF00nn``).
        kind: Input, Output or Feature.
        report_id: The report it sits in (0 when the descriptor has no Report ID).
        offset: Its first bit, after the report id byte.
        size: Its width in bits.
        attribute: The main item's data byte (bit 0 Constant, bit 1 Variable, ...).
        log_min: Logical Minimum.
        log_max: Logical Maximum (after NUT's unsigned re-read when it was < LogMin).
        phys_min: Physical Minimum, ``None`` if never given.
        phys_max: Physical Maximum, ``None`` if never given.
        unit: The Unit code (e.g. ``0x00F0D121`` volt).
        unit_exp: The Unit Exponent, -8..7.
    """

    path: tuple[int, ...]
    kind: ItemType
    report_id: int
    offset: int
    size: int
    attribute: int = 0
    log_min: int = 0
    log_max: int = 0
    phys_min: int | None = None
    phys_max: int | None = None
    unit: int = 0
    unit_exp: int = 0

    @property
    def leaf(self) -> int:
        """The field's own usage (the last node of its path)."""
        return self.path[-1]


@attrs.frozen
class ReportDescriptor:
    """A parsed report descriptor.

    Attributes:
        fields: The fields in descriptor order.
        report_lengths: Report id -> data bytes after the id byte (NUT's ``replen``),
            counting padding.
        warnings: What NUT would log while parsing (LogMax re-read unsigned).
        problems: Why the descriptor looks truncated or broken (empty if it is whole).
    """

    fields: tuple[Field, ...]
    report_lengths: dict[int, int]
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def find(self, path: tuple[int, ...], kind: ItemType = ItemType.FEATURE) -> Field | None:
        """The first field of ``kind`` whose path starts with ``path`` (NUT's lookup)."""
        n = len(path)
        for field in self.fields:
            if field.kind == kind and field.path[:n] == path:
                return field
        return None

    def find_id_node(self, report_id: int, node: int) -> Field | None:
        """The first field of report ``report_id`` whose own usage is ``node``."""
        for field in self.fields:
            if field.report_id == report_id and field.path and field.path[-1] == node:
                return field
        return None

    def report_ids(self) -> list[int]:
        """The report ids that carry fields, in first-seen order."""
        return list(dict.fromkeys(field.report_id for field in self.fields))

    def buffer_length(self, report_id: int) -> int:
        """The bytes of a whole report including its id byte (NUT's buffer length)."""
        return self.report_lengths.get(report_id, 0) + 1

    def with_limits(self, field: Field, log_min: int, log_max: int) -> ReportDescriptor:
        """A copy with ``field``'s logical limits changed (a report-descriptor fix)."""
        fixed = attrs.evolve(field, log_min=log_min, log_max=log_max)
        fields = tuple(fixed if f is field else f for f in self.fields)
        return attrs.evolve(self, fields=fields)


def _signed(value: int, size: int) -> int:
    """``value`` read as a two's complement integer of ``size`` bytes (4 bytes or less)."""
    if size == 0:
        return value
    bits = 8 * size
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


@attrs.define
class _Globals:
    report_id: int = 0
    size: int = 0
    count: int = 0
    log_min: int = 0
    log_max: int = 0
    phys_min: int | None = None
    phys_max: int | None = None
    unit: int = 0
    unit_exp: int = 0
    page: int = 0


def _items(data: bytes, problems: list[str]) -> Iterator[tuple[int, int, int]]:
    """(prefix, value, data size) for each short item; long items are skipped."""
    pos = 0
    while pos < len(data):
        prefix = data[pos]
        size = _ITEM_SIZES[prefix & 0x03]
        if pos + 1 + size > len(data):
            problems.append(f"descriptor ends inside the item at byte {pos}")
            return
        value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
        pos += 1 + size
        if prefix & 0xFC == 0xFC:  # long item: its data size is the first data byte
            pos += value & 0xFF
            continue
        yield prefix, value, size


class _Parser:
    """The state NUT's parser keeps while it walks a descriptor."""

    def __init__(self) -> None:
        self.g = _Globals()
        self.usages: list[int] = []
        self.path: list[int] = []
        self.offsets: dict[tuple[int, ItemType], int] = {}
        self.fields: list[Field] = []
        self.lengths: dict[int, int] = {}
        self.warnings: list[str] = []
        self.depth = 0

    def _take_usage(self) -> int:
        return self.usages.pop(0) if self.usages else 0

    def collection(self, value: int) -> None:
        self.path.append(self._take_usage())
        self.depth += 1
        if value >= 0x80:
            self.path.append(0x00FF0000 | (value & 0x7F))
        self.usages.clear()

    def end_collection(self) -> None:
        popped = self.path.pop() if self.path else 0
        if popped & 0xFFFF0000 == 0x00FF0000 and self.path:  # an index: its collection too
            self.path.pop()
        self.depth -= 1
        self.usages.clear()

    def main(self, kind: ItemType, value: int) -> None:
        g = self.g
        for _ in range(max(g.count, 1)):
            usage = self._take_usage()
            key = (g.report_id, kind)
            offset = self.offsets.get(key, 0)
            end = (offset + g.size + 7) >> 3
            self.lengths[g.report_id] = max(self.lengths.get(g.report_id, 0), end)
            self.offsets[key] = (offset + g.size) & 0xFF  # NUT keeps offsets in a uint8
            if usage == 0:
                continue  # padding
            self.fields.append(
                Field(
                    path=(*self.path, usage),
                    kind=kind,
                    report_id=g.report_id,
                    offset=offset,
                    size=g.size,
                    attribute=value & 0xFF,
                    log_min=g.log_min,
                    log_max=g.log_max,
                    phys_min=g.phys_min,
                    phys_max=g.phys_max,
                    unit=g.unit,
                    unit_exp=g.unit_exp,
                )
            )
        self.usages.clear()

    def usage(self, value: int, size: int) -> None:
        self.usages.append(value if size > 2 else (self.g.page << 16) | (value & 0xFFFF))

    def log_max(self, value: int, size: int) -> None:
        signed = _signed(value, size)
        if signed < self.g.log_min:
            self.warnings.append(
                f"LogMax is less than LogMin; interpreting LogMax {signed} as {value} "
                f"in ReportID: 0x{self.g.report_id:02x}"
            )
            signed = value
        self.g.log_max = signed

    def unit_exp(self, value: int, size: int) -> None:
        exp = _signed(value & 0xFF, 1)
        self.g.unit_exp = _signed((exp | 0xF0) & 0xFF, 1) if exp > 7 else exp

    def set_page(self, value: int, size: int) -> None:
        self.g.page = value & 0xFFFF

    def log_min(self, value: int, size: int) -> None:
        self.g.log_min = _signed(value, size)

    def phys_min(self, value: int, size: int) -> None:
        self.g.phys_min = _signed(value, size)

    def phys_max(self, value: int, size: int) -> None:
        self.g.phys_max = _signed(value, size)

    def unit(self, value: int, size: int) -> None:
        self.g.unit = value & 0xFFFFFFFF

    def report_size(self, value: int, size: int) -> None:
        self.g.size = value & 0xFF

    def report_id(self, value: int, size: int) -> None:
        self.g.report_id = value & 0xFF

    def report_count(self, value: int, size: int) -> None:
        self.g.count = value & 0xFF

    def begin_collection(self, value: int, size: int) -> None:
        self.collection(value)

    def close_collection(self, value: int, size: int) -> None:
        self.end_collection()

    def handlers(self) -> dict[int, Callable[[int, int], None]]:
        """Item tag (prefix without its size bits) -> handler(value, data size)."""
        return {
            0x04: self.set_page,
            0x14: self.log_min,
            0x24: self.log_max,
            0x34: self.phys_min,
            0x44: self.phys_max,
            0x54: self.unit_exp,
            0x64: self.unit,
            0x74: self.report_size,
            0x84: self.report_id,
            0x94: self.report_count,
            0x08: self.usage,
            0xA0: self.begin_collection,
            0xC0: self.close_collection,
        }


def parse_descriptor(data: bytes) -> ReportDescriptor:
    """Parse a report descriptor as usbhid-ups does (see the module's notes).

    Raises:
        HIDParseError: If no field at all could be read.
    """
    parser = _Parser()
    problems: list[str] = []
    handlers = parser.handlers()
    for prefix, value, size in _items(bytes(data), problems):
        tag = prefix & 0xFC
        if tag in (ItemType.INPUT, ItemType.OUTPUT, ItemType.FEATURE):
            parser.main(ItemType(tag), value)
        elif (handler := handlers.get(tag)) is not None:
            handler(value, size)
    if parser.depth > 0:
        problems.append(f"descriptor ends with {parser.depth} collection(s) still open")
    if not parser.fields:
        raise HIDParseError("the report descriptor holds no data field")
    return ReportDescriptor(
        fields=tuple(parser.fields),
        report_lengths=parser.lengths,
        warnings=tuple(parser.warnings),
        problems=tuple(problems),
    )
