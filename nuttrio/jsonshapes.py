"""The JSON objects nuttrio serves: one set of attrs classes and one converter.

The client tools' ``-j``/``--json`` output (``nuttrio upsc``, ``upscmd``, ``upsrw``,
``upslog``) and, later, the web API serve these same objects; docs/json.md is their
schema. The shapes of ``upsc -j`` are NUT 2.8.5's: ``-j -l`` an array of UPS names,
``-j -L`` an object name -> description, ``-j UPS`` an object of all variables,
``-j UPS VAR`` one string, ``-j -c`` an array of client addresses. The web server
(nuttrio.web) adds :class:`UpsState`, :class:`EventRecord` and :class:`Sample` for its
dashboard stream.

:func:`unstructure` turns any of the classes into plain JSON data (dicts, lists,
strings, numbers, ``None``); :func:`dumps` writes that data as upsc 2.8.5 lays it out
(two-space indent, one member per line; an empty top-level array or object is written
with an empty line inside, as upsc does). This module does no I/O and cannot fail on
the classes it defines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import attrs

__all__ = [
    "UNKNOWN_TYPE",
    "ClientList",
    "CommandList",
    "EventRecord",
    "JsonValue",
    "LogRecord",
    "RwList",
    "RwVariable",
    "Sample",
    "UpsDescriptions",
    "UpsList",
    "UpsState",
    "VarValue",
    "Variables",
    "dumps",
    "unstructure",
]

#: :attr:`RwVariable.type` when the server's type words name no type upsrw knows.
UNKNOWN_TYPE = "UNKNOWN"

#: Plain JSON data, as :func:`json.dumps` takes it.
JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | int | float | None"


@attrs.frozen
class UpsList:
    """``upsc -j -l``: the names of the UPSes a server offers, in its order."""

    names: tuple[str, ...]


@attrs.frozen
class UpsDescriptions:
    """``upsc -j -L``: UPS name -> description (from ups.conf), in the server's order."""

    descriptions: Mapping[str, str]


@attrs.frozen
class Variables:
    """``upsc -j UPS``: variable name -> value, in the server's order."""

    values: Mapping[str, str]


@attrs.frozen
class VarValue:
    """``upsc -j UPS VAR``: the value of one variable, as one JSON string."""

    value: str


@attrs.frozen
class ClientList:
    """``upsc -j -c UPS``: the addresses of the clients logged in to the UPS."""

    addresses: tuple[str, ...]


@attrs.frozen
class CommandList:
    """``upscmd --json -l UPS``: command name -> description (``None`` when unavailable)."""

    commands: Mapping[str, str | None]


@attrs.frozen
class RwVariable:
    """One writable variable as ``upsrw`` shows it.

    Attributes:
        description: ``GET DESC``; ``None`` when the server gave none.
        type: ``STRING``, ``NUMBER``, ``ENUM``, ``RANGE``; ``UNKNOWN`` when ``GET TYPE``
            named none of them; ``None`` when ``GET TYPE`` failed ("Unknown type").
        value: The current value (``None`` only with an unknown type).
        maximum_length: For ``STRING`` (and ``ENUM`` of strings): the longest value allowed.
        value_type: For ``ENUM`` and ``RANGE``: ``STRING`` or ``NUMBER`` (``None`` if the
            server did not say).
        options: For ``ENUM``: the values allowed.
        ranges: For ``RANGE``: the ``[minimum, maximum]`` pairs allowed, as upsrw reads
            them (whole numbers).
        unrecognized: Type words ``GET TYPE`` gave that upsrw does not know (it prints
            each as ``Type: WORD (unrecognized)``).
    """

    description: str | None
    type: str | None
    value: str | None = None
    maximum_length: int | None = None
    value_type: str | None = None
    options: tuple[str, ...] | None = None
    ranges: tuple[tuple[int, int], ...] | None = None
    unrecognized: tuple[str, ...] = ()


@attrs.frozen
class RwList:
    """``upsrw --json UPS``: writable variable name -> :class:`RwVariable`."""

    variables: Mapping[str, RwVariable]


@attrs.frozen
class LogRecord:
    """One ``upslog --json`` line: the variables of one UPS at one time.

    Attributes:
        time: Local time, ISO 8601 with the UTC offset (``2026-12-02T17:15:03+00:00``).
        etime: The same time in seconds since the epoch (``%ETIME%``).
        ups: The UPS as given (``ups@host:port``).
        values: Each valid ``%VAR name%`` of the format, in order: its value, or ``None``
            where the plain log says ``NA``; names without a dot (``INVALID``) are left out.
    """

    time: str
    etime: int
    ups: str
    values: Mapping[str, str | None]


@attrs.frozen
class UpsState:
    """One UPS as the web dashboard and ``/api/v1/stream`` show it.

    Attributes:
        name: The UPS name as configured.
        description: The ``desc`` from ups.conf, or ``None``.
        connected: A driver is running for it.
        stale: Clients get DATA-STALE now (declared stale, silent, or no first state).
        status: ``ups.status`` as clients read it (``FSD`` in front while the latch is set).
        status_words: Each status flag with its meaning in words, ``(flag, words)``.
        variables: Variable name -> value, in the driver's order.
        commands: The instant commands offered.
        writable: The variables SET VAR may change.
        clients: The connections that did LOGIN, ``(address, username)``, newest first.
        updates: Driver updates published so far (a reader that sees it jump skipped some).
    """

    name: str
    description: str | None
    connected: bool
    stale: bool
    status: str
    status_words: tuple[tuple[str, str], ...]
    variables: Mapping[str, str]
    commands: tuple[str, ...]
    writable: tuple[str, ...]
    clients: tuple[tuple[str, str | None], ...]
    updates: int


@attrs.frozen
class EventRecord:
    """One line of the web event log (``/api/v1/events``).

    Attributes:
        seq: Its number, from 1, one more for each event logged.
        time: Local time, ISO 8601 with the UTC offset.
        etime: The same time in seconds since the epoch.
        ups: The UPS it is about, or ``None``.
        kind: ``status``, ``driver``, ``client``, ``login``, ``action``, ``notify``...
        message: One line for people.
    """

    seq: int
    time: str
    etime: float
    ups: str | None
    kind: str
    message: str


@attrs.frozen
class Sample:
    """One point of the dashboard's chart: the figures of one UPS at one time.

    Attributes:
        etime: Seconds since the epoch.
        ups: The UPS.
        values: ``battery.charge``, ``battery.runtime``, ``ups.load``, ``input.voltage``,
            ``output.voltage``: each as a number, ``None`` where absent or not a number.
    """

    etime: float
    ups: str
    values: Mapping[str, float | None]


def _ups_state(o: UpsState) -> JsonValue:
    return {
        "name": o.name,
        "description": o.description,
        "connected": o.connected,
        "stale": o.stale,
        "status": o.status,
        "status_words": [{"flag": f, "text": t} for f, t in o.status_words],
        "variables": dict(o.variables),
        "commands": list(o.commands),
        "writable": list(o.writable),
        "clients": [{"address": a, "username": u} for a, u in o.clients],
        "updates": o.updates,
    }


def _rw_variable(item: RwVariable) -> JsonValue:
    data: dict[str, JsonValue] = {
        "description": item.description,
        "type": item.type,
        "value": item.value,
    }
    optional: dict[str, JsonValue] = {
        "maximum_length": item.maximum_length,
        "value_type": item.value_type,
        "options": None if item.options is None else list(item.options),
        "ranges": None if item.ranges is None else [list(pair) for pair in item.ranges],
        "unrecognized": list(item.unrecognized) or None,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if item.type in ("ENUM", "RANGE"):
        data["value_type"] = item.value_type  # null too: the server did not say
    return data


#: How each class becomes JSON data: one converter per class, no other branching.
_CONVERTERS: dict[type, Callable[[Any], JsonValue]] = {
    UpsList: lambda o: list(o.names),
    UpsDescriptions: lambda o: dict(o.descriptions),
    Variables: lambda o: dict(o.values),
    VarValue: lambda o: o.value,
    ClientList: lambda o: list(o.addresses),
    CommandList: lambda o: dict(o.commands),
    RwVariable: _rw_variable,
    RwList: lambda o: {name: _rw_variable(v) for name, v in o.variables.items()},
    LogRecord: lambda o: {"time": o.time, "etime": o.etime, "ups": o.ups, "values": dict(o.values)},
    UpsState: _ups_state,
    EventRecord: lambda o: attrs.asdict(o),
    Sample: lambda o: {"etime": o.etime, "ups": o.ups, "values": dict(o.values)},
}


def unstructure(obj: object) -> JsonValue:
    """The plain JSON data of one of this module's objects.

    Raises:
        TypeError: If ``obj`` is not one of the classes above.
    """
    converter = _CONVERTERS.get(type(obj))
    if converter is None:
        raise TypeError(f"no JSON shape for {type(obj).__name__}")
    return converter(obj)


def dumps(obj: object, *, lines: bool = False) -> str:
    """``obj`` as JSON text with a final newline.

    Args:
        obj: One of this module's objects.
        lines: Write it on one line (JSON Lines, for upslog) instead of upsc's layout.
    """
    data = unstructure(obj)
    if lines:
        return json.dumps(data, ensure_ascii=False, separators=(", ", ": ")) + "\n"
    if data == []:
        return "[\n\n]\n"
    if data == {}:
        return "{\n\n}\n"
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
