"""``usbhid-ups -x explore`` in nuttrio: every field with its path, report, value and unit.

:func:`explore_lines` is I/O-free: it formats what a descriptor and a set of reports say,
one line per field in descriptor order, in NUT's ``Path: ...`` format (values with C's
``%g``) followed by the unit when it has one; the CLI (``nuttrio hid-explore``) feeds it a
recording or a live device.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .codec import decode
from .descriptor import Field, ReportDescriptor
from .usages import UsageTable, standard_usages

__all__ = ["UNIT_NAMES", "explore_lines", "format_field"]

#: Unit codes NUT knows, with the name nuttrio prints after a value.
UNIT_NAMES: Mapping[int, str] = {
    0x00F0D121: "V",
    0x00100001: "A",
    0x0000D121: "VA/W",
    0x00001001: "s",
    0x00010001: "K",
    0x0000F001: "Hz",
    0x00101001: "As",
}


def format_field(field: Field, value: float | None, usages: UsageTable) -> str:
    """One field as NUT's explore dump prints it (``Value: %g`` when it was read)."""
    text = (
        f"Path: {usages.path_string(field.path)}, Type: {field.kind.label}, "
        f"ReportID: 0x{field.report_id:02x}, Offset: {field.offset}, Size: {field.size}"
    )
    return text if value is None else f"{text}, Value: {value:g}"


def explore_lines(
    descriptor: ReportDescriptor,
    reports: Mapping[int, bytes],
    usages: UsageTable | None = None,
    *,
    units: bool = True,
) -> Iterator[str]:
    """Every field of ``descriptor`` with its value in ``reports`` (report id -> bytes).

    A field whose report is missing is printed without a value, as NUT does when the
    GET_REPORT fails. With ``units``, a known unit follows as ``(unit V)``.
    """
    table = usages or standard_usages()
    for field in descriptor.fields:
        report = reports.get(field.report_id)
        value = None if report is None else decode(report, field)
        line = format_field(field, value, table)
        unit = UNIT_NAMES.get(field.unit)
        yield f"{line} (unit {unit})" if units and unit and value is not None else line
