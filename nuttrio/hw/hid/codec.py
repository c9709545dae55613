"""Field values: bits in a report <-> logical <-> physical values, as usbhid-ups computes them.

* :func:`get_logical` takes ``size`` bits little-endian from bit ``offset`` after the
  report id byte, keeps only the bits that the larger of |LogMin|, |LogMax| needs (a sign
  bit too when LogMin < 0, then sign-extends), and clamps to [LogMin, LogMax]. Firmware
  that sets garbage high bits is thus read as NUT reads it.
* :func:`to_physical` maps linearly onto [PhysMin, PhysMax] only when both are given and
  not both 0; then multiplies by 10^(UnitExp - base), where the base exponent is 7 for
  volts and VA/W (NUT's unit table) and 0 otherwise.
* :func:`encode` goes the other way for SET_REPORT and :func:`set_logical` writes the bits
  into a copy of the cached report, leaving the other fields' bytes as they were.
"""

from __future__ import annotations

from .descriptor import Field

__all__ = [
    "UNIT_EXPONENT_BASE",
    "decode",
    "encode",
    "exponent_of",
    "get_logical",
    "set_logical",
    "to_logical",
    "to_physical",
]

#: NUT's unit table: unit code -> the exponent that unit's "natural" values carry.
UNIT_EXPONENT_BASE: dict[int, int] = {
    0x00000000: 0,  # none, percent
    0x00F0D121: 7,  # volt
    0x00100001: 0,  # ampere
    0x0000D121: 7,  # VA and watt
    0x00001001: 0,  # second
    0x00010001: 0,  # kelvin
    0x0000F001: 0,  # hertz
    0x00101001: 0,  # ampere-second
}


def get_logical(report: bytes, field: Field) -> int:
    """The logical value of ``field`` in ``report`` (id byte first); missing bytes read 0."""
    bit = field.offset + 8
    raw = 0
    for weight in range(field.size):
        index = (bit + weight) >> 3
        if index < len(report) and report[index] & (1 << ((bit + weight) & 7)):
            raw |= 1 << weight
    mag_max = field.log_max if field.log_max >= 0 else -(field.log_max + 1)
    mag_min = field.log_min if field.log_min >= 0 else -(field.log_min + 1)
    signbit = 1 << max(mag_max, mag_min).bit_length()
    mask = (signbit - 1) | (signbit if field.log_min < 0 else 0)
    value = raw & mask
    if field.log_min < 0 and value & signbit:
        value |= ~mask
    return min(max(value, field.log_min), field.log_max)


def set_logical(report: bytes, field: Field, value: int) -> bytes:
    """A copy of ``report`` with ``field``'s bits set to ``value`` (two's complement)."""
    out = bytearray(report)
    bit = field.offset + 8
    need = (bit + field.size + 7) >> 3
    if len(out) < need:
        out.extend(bytes(need - len(out)))
    for weight in range(field.size):
        pos = bit + weight
        if value & (1 << weight):
            out[pos >> 3] |= 1 << (pos & 7)
        else:
            out[pos >> 3] &= ~(1 << (pos & 7)) & 0xFF
    return bytes(out)


def exponent_of(field: Field) -> int:
    """The power of ten NUT multiplies a physical value by."""
    base = UNIT_EXPONENT_BASE.get(field.unit, 0)
    return field.unit_exp - base


def _linear(field: Field) -> tuple[int, int] | None:
    if field.phys_min is None or field.phys_max is None:
        return None
    if field.phys_min == 0 and field.phys_max == 0:
        return None
    if field.phys_max <= field.phys_min or field.log_max <= field.log_min:
        return None
    return field.phys_min, field.phys_max


def _scale(exp: int) -> float:
    """10**exp computed as NUT does (repeated multiplication), so values match its doubles."""
    result = 1.0
    for _ in range(abs(exp)):
        result = result * 10 if exp > 0 else result * (1 / 10)
    return result


def to_physical(field: Field, logical: int) -> float:
    """The physical value (with the unit exponent applied) of a logical one."""
    limits = _linear(field)
    value = float(logical)
    if limits is not None:
        pmin, pmax = limits
        factor = (pmax - pmin) / (field.log_max - field.log_min)
        value = min(max((logical - field.log_min) * factor + pmin, pmin), pmax)
    return value * _scale(exponent_of(field))


def to_logical(field: Field, physical: float) -> int:
    """The logical value to write for a physical one (truncated toward zero, clamped)."""
    value = physical / _scale(exponent_of(field))
    limits = _linear(field)
    if limits is None:
        return int(value)
    pmin, pmax = limits
    factor = (field.log_max - field.log_min) / (pmax - pmin)
    logical = int((value - pmin) * factor) + field.log_min
    return min(max(logical, field.log_min), field.log_max)


def decode(report: bytes, field: Field) -> float:
    """``field``'s physical value in ``report``."""
    return to_physical(field, get_logical(report, field))


def encode(report: bytes, field: Field, physical: float) -> bytes:
    """``report`` with ``field`` set to ``physical`` (converted to logical)."""
    return set_logical(report, field, to_logical(field, physical))
