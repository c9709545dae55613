"""The variables NUT's dummy-ups 2.8.0 knows by name, with the flags it gives them.

Facts read from ``drivers/dummy-ups.h`` of NUT v2.8.0 (its ``nut_data`` table), written
here as data. dummy-ups uses the table in three ways:

* the entries marked ``initial`` are published with their default value before the
  definition file is read (``ups.mfr``, ``ups.model``, ``ups.status``);
* whenever a variable is written (a file line or SET VAR), a name found here (compared
  case-insensitively, first entry wins) gets these flags, and STRING ones also get
  ``aux`` as their maximum length;
* any other name gets RW STRING with a maximum length of 32 (:data:`UNKNOWN_FLAGS`).

NUT lists ``ups.serial`` twice (length 32, then 16); the first entry wins, so the second
is never used. The lengths are ``aux`` only for STRING entries: NUMBER-less entries
without STRING (``ups.load`` ...) never get an aux.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import attrs

__all__ = ["INITIAL", "KNOWN", "UNKNOWN_AUX", "UNKNOWN_FLAGS", "KnownVar", "StFlag"]


class StFlag(enum.IntFlag):
    """NUT's variable flags (``ST_FLAG_*`` in ``common/state.h``), with their bit values."""

    NONE = 0
    #: Writable with SET VAR.
    RW = 0x0001
    #: A string (``aux`` is its maximum length).
    STRING = 0x0002
    #: A number.
    NUMBER = 0x0004
    #: Set by ``override.*`` in ups.conf: the driver can no longer change or delete it.
    IMMUTABLE = 0x0008


@attrs.frozen
class KnownVar:
    """One entry of dummy-ups' table.

    Attributes:
        name: The variable name, lower case.
        flags: Flags given whenever the variable is written.
        aux: Maximum length, applied only when ``flags`` has STRING.
        default: The value published at start-up for ``initial`` entries.
        initial: Published (with ``default``) before the definition file is read.
    """

    name: str
    flags: StFlag
    aux: int
    default: str | None = None
    initial: bool = False


_RW = StFlag.RW
_RWS = StFlag.RW | StFlag.STRING

#: Flags and aux of names not in the table.
UNKNOWN_FLAGS = _RWS
UNKNOWN_AUX = 32

# (name, flags, length); the ones published at start-up are listed in _INITIAL below.
_TABLE: tuple[tuple[str, StFlag, int], ...] = (
    ("ups.mfr", _RWS, 32),
    ("ups.model", _RWS, 32),
    ("ups.status", _RWS, 32),
    ("ups.serial", _RWS, 32),
    ("ups.load", _RW, 32),
    ("ups.alarm", _RWS, 32),
    ("ups.time", _RWS, 16),
    ("ups.date", _RWS, 16),
    ("ups.mfr.date", _RWS, 16),
    ("ups.serial", _RWS, 16),  # duplicate in NUT; shadowed by the first entry
    ("ups.firmware", _RWS, 16),
    ("ups.firmware.aux", _RWS, 16),
    ("ups.temperature", _RW, 1),
    ("ups.id", _RWS, 16),
    ("ups.delay.start", _RW, 1),
    ("ups.delay.reboot", _RW, 1),
    ("ups.delay.shutdown", _RW, 1),
    ("ups.test.interval", _RW, 1),
    ("ups.test.result", _RWS, 16),
    ("input.voltage", _RW, 1),
    ("input.voltage.maximum", _RW, 1),
    ("input.voltage.minimum", _RW, 1),
    ("input.voltage.nominal", _RW, 1),
    ("input.transfer.reason", _RWS, 1),
    ("input.transfer.low", _RW, 1),
    ("input.transfer.high", _RW, 1),
    ("input.sensitivity", _RWS, 1),
    ("input.quality", _RWS, 6),
    ("input.frequency", _RW, 1),
    ("input.transfer.boost.low", _RW, 1),
    ("input.transfer.boost.high", _RW, 1),
    ("input.transfer.trim.low", _RW, 1),
    ("input.transfer.trim.high", _RW, 1),
    ("output.voltage", _RW, 1),
    ("output.frequency", _RW, 1),
    ("output.current", _RW, 1),
    ("battery.charge", _RW, 1),
    ("battery.charge.low", _RW, 1),
    ("battery.voltage", _RW, 1),
    ("battery.current", _RW, 1),
    ("battery.runtime", _RW, 1),
    ("battery.runtime.low", _RW, 1),
    ("battery.charge.restart", _RW, 1),
    ("battery.temperature", _RW, 1),
    ("battery.voltage.nominal", _RW, 1),
    ("ambient.temperature", _RW, 1),
    ("ambient.temperature.alarm", _RW, 1),
    ("ambient.temperature.high", _RW, 1),
    ("ambient.temperature.low", _RW, 1),
    ("ambient.humidity", _RW, 1),
    ("ambient.humidity.alarm", _RW, 1),
    ("ambient.humidity.high", _RW, 1),
    ("ambient.humidity.low", _RW, 1),
)

_INITIAL = {"ups.mfr": "Dummy Manufacturer", "ups.model": "Dummy UPS", "ups.status": "OL"}


def _build() -> tuple[Mapping[str, KnownVar], tuple[KnownVar, ...]]:
    known: dict[str, KnownVar] = {}
    for name, flags, aux in _TABLE:
        default = _INITIAL.get(name)
        known.setdefault(name, KnownVar(name, flags, aux, default, default is not None))
    initial = tuple(known[name] for name in _INITIAL)
    return MappingProxyType(known), initial


_KNOWN, _INITIAL_VARS = _build()

#: The table by lower-case name (the first of duplicate entries).
KNOWN: Mapping[str, KnownVar] = _KNOWN
#: The entries published at start-up, in this order, before the definition file is read.
INITIAL: tuple[KnownVar, ...] = _INITIAL_VARS
