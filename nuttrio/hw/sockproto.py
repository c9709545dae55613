r"""The driver socket protocol, sans-IO: what upsd and a NUT driver say on ``STATEPATH/DRIVER-UPS``.

General theory of operation
---------------------------
A NUT driver listens on a Unix stream socket; upsd connects, sends ``DUMPALL`` and from
then on reads lines that change its copy of the driver's state. The lines are split by
NUT's config tokenizer (:class:`nuttrio.protocol.tokenizer.Tokenizer`), so quoting and
escaping work as on the network. This module has the three parts upsd has, with no I/O:

* :class:`DriverParser`: bytes in, :data:`DriverEvent` objects out (``SETINFO``,
  ``DELINFO``, ``ADDENUM``/``DELENUM``, ``ADDRANGE``/``DELRANGE``, ``SETAUX``,
  ``SETFLAGS``, ``ADDCMD``/``DELCMD``, ``DATAOK``, ``DATASTALE``, ``DUMPDONE``, ``PONG``,
  ``TRACKING``, and the 2.8.3 replies ``PID`` and ``OK Goodbye``). A line upsd would not
  accept (unknown word, too few words) is an :class:`UnknownLine`; a line the tokenizer
  cannot split (an unescaped ``#`` inside quotes, which 2.8.0 drivers send in live updates
  of such values) is a :class:`BadLine`. Neither stops the parser.
* :class:`DriverMirror`: upsd's copy of the driver state (``common/state.c``), changed by
  :meth:`DriverMirror.apply` through a table of handlers, with NUT's quirks: a SETINFO
  whose value differs only in letter case changes nothing; a variable keeps the spelling
  it was created with; ADDENUM/ADDRANGE/SETAUX/SETFLAGS on an unknown variable are
  ignored; a range is a duplicate when its minimum *or* its maximum equals an existing
  one's; commands are kept in case-insensitive alphabetical order. Its
  :meth:`~DriverMirror.variables` and :attr:`~DriverMirror.commands` are what the driver
  kit publishes (:func:`nuttrio.hw.kit.publish_difference`).
* Request builders for the other direction: :func:`dumpall`, :func:`ping`,
  :func:`set_var`, :func:`instcmd` (each with an optional TRACKING id; a driver answers
  ``TRACKING <id> <status>`` only when given one), and the 2.8.1-2.8.3 extras
  :func:`getpid`, :func:`logout`, :func:`broadcast`, :func:`nobroadcast`,
  :func:`dumpvalue`, :func:`dumpstatus` (a 2.8.0 driver logs "Unknown command" and
  answers nothing).

Driver status numbers map to :class:`~nuttrio.state.CommandStatus` as upsd 2.8.3 does
(4, "conversion failed", is INVALID-ARGUMENT); anything else is UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from ..nutconf.common import strtol
from ..protocol.quoting import quote, request_line, request_word
from ..protocol.tokenizer import Line, LineError, LineTooLong, Tokenizer
from ..state import CommandStatus, Variable

__all__ = [
    "AddCmd",
    "AddEnum",
    "AddRange",
    "BadLine",
    "DataOk",
    "DataStale",
    "DelCmd",
    "DelEnum",
    "DelInfo",
    "DelRange",
    "DriverEvent",
    "DriverMirror",
    "DriverParser",
    "DumpDone",
    "Goodbye",
    "Pid",
    "Pong",
    "SetAux",
    "SetFlags",
    "SetInfo",
    "Tracking",
    "UnknownLine",
    "broadcast",
    "dumpall",
    "dumpstatus",
    "dumpvalue",
    "getpid",
    "instcmd",
    "logout",
    "nobroadcast",
    "ping",
    "set_var",
    "tracking_status",
]

#: Longest line accepted from a driver (a value is at most 255 bytes, escaped ~512).
MAX_DRIVER_LINE = 4096


# ---------------------------------------------------------------------------------------
# Events


@attrs.frozen
class SetInfo:
    """``SETINFO var "value"``: create or change a variable."""

    var: str
    value: str


@attrs.frozen
class DelInfo:
    """``DELINFO var``: remove a variable."""

    var: str


@attrs.frozen
class AddEnum:
    """``ADDENUM var "value"``: one more allowed value."""

    var: str
    value: str


@attrs.frozen
class DelEnum:
    """``DELENUM var "value"``: withdraw an allowed value."""

    var: str
    value: str


@attrs.frozen
class AddRange:
    """``ADDRANGE var min max``: one more allowed range (``atoi`` of each word)."""

    var: str
    low: int
    high: int


@attrs.frozen
class DelRange:
    """``DELRANGE var min max``: withdraw an allowed range."""

    var: str
    low: int
    high: int


@attrs.frozen
class SetAux:
    """``SETAUX var n``: the maximum length of a STRING variable (``strtol``)."""

    var: str
    aux: int


@attrs.frozen
class SetFlags:
    """``SETFLAGS var [RW] [STRING] [NUMBER]``: replace the flags (unknown words ignored)."""

    var: str
    flags: tuple[str, ...]


@attrs.frozen
class AddCmd:
    """``ADDCMD cmd``: offer an instant command."""

    cmd: str


@attrs.frozen
class DelCmd:
    """``DELCMD cmd``: withdraw an instant command."""

    cmd: str


@attrs.frozen
class DataOk:
    """``DATAOK``: the driver's data is fresh."""


@attrs.frozen
class DataStale:
    """``DATASTALE``: the driver lost its device; clients get DATA-STALE."""


@attrs.frozen
class DumpDone:
    """``DUMPDONE``: the reply to DUMPALL is complete."""


@attrs.frozen
class Pong:
    """``PONG``: the answer to PING."""


@attrs.frozen
class Tracking:
    """``TRACKING id status``: the outcome of a SET or INSTCMD sent with that id."""

    id: str
    status: str


@attrs.frozen
class Pid:
    """``PID n``: the answer of a 2.8.3 driver to GETPID."""

    pid: int


@attrs.frozen
class Goodbye:
    """``OK Goodbye``: the answer of a 2.8.3 driver to LOGOUT."""


@attrs.frozen
class UnknownLine:
    """A line upsd does not act on (unknown first word, or too few words)."""

    words: tuple[str, ...]


@attrs.frozen
class BadLine:
    """A line the tokenizer could not split (skipped up to its LF), or one too long."""

    message: str


DriverEvent = (
    SetInfo
    | DelInfo
    | AddEnum
    | DelEnum
    | AddRange
    | DelRange
    | SetAux
    | SetFlags
    | AddCmd
    | DelCmd
    | DataOk
    | DataStale
    | DumpDone
    | Pong
    | Tracking
    | Pid
    | Goodbye
    | UnknownLine
)


def _pid(args: Sequence[str]) -> Pid | None:
    return Pid(int(args[0])) if args[0].isdigit() else None


def _goodbye(args: Sequence[str]) -> Goodbye | None:
    return Goodbye() if args[0] == "Goodbye" else None


#: First word (upper case) -> (fewest words after it, how to build the event). The word
#: counts are upsd's (``server/sstate.c``); extra words are ignored, as upsd does.
_PARSERS: Mapping[str, tuple[int, Callable[[Sequence[str]], DriverEvent | None]]] = {
    "PONG": (0, lambda a: Pong()),
    "DUMPDONE": (0, lambda a: DumpDone()),
    "DATASTALE": (0, lambda a: DataStale()),
    "DATAOK": (0, lambda a: DataOk()),
    "ADDCMD": (1, lambda a: AddCmd(a[0])),
    "DELCMD": (1, lambda a: DelCmd(a[0])),
    "DELINFO": (1, lambda a: DelInfo(a[0])),
    "SETFLAGS": (2, lambda a: SetFlags(a[0], tuple(a[1:]))),
    "SETINFO": (2, lambda a: SetInfo(a[0], a[1])),
    "ADDENUM": (2, lambda a: AddEnum(a[0], a[1])),
    "DELENUM": (2, lambda a: DelEnum(a[0], a[1])),
    "SETAUX": (2, lambda a: SetAux(a[0], strtol(a[1]))),
    "TRACKING": (2, lambda a: Tracking(a[0], a[1])),
    "ADDRANGE": (3, lambda a: AddRange(a[0], strtol(a[1]), strtol(a[2]))),
    "DELRANGE": (3, lambda a: DelRange(a[0], strtol(a[1]), strtol(a[2]))),
    "PID": (1, _pid),
    "OK": (1, _goodbye),
}


def parse_words(words: Sequence[str]) -> DriverEvent:
    """The event one split line stands for (case-insensitive first word, as upsd)."""
    if not words:
        return UnknownLine(())
    entry = _PARSERS.get(words[0].upper())
    if entry is None or len(words) - 1 < entry[0]:
        return UnknownLine(tuple(words))
    event = entry[1](words[1:])
    return UnknownLine(tuple(words)) if event is None else event


class DriverParser:
    """Bytes read from a driver socket in, :data:`DriverEvent` objects out.

    Feed with :meth:`receive_data`; iterate :meth:`events` until it stops (more data
    needed). Blank lines are skipped. A line too long ends the parsing (one
    :class:`BadLine`, then nothing): the caller should drop the connection.
    """

    def __init__(self, *, max_line: int = MAX_DRIVER_LINE) -> None:
        self._tokenizer = Tokenizer(max_line=max_line)
        self._dead = False

    @property
    def broken(self) -> bool:
        """Whether a line was too long: nothing more is parsed (drop the connection)."""
        return self._dead

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the socket; ``b""`` means the driver closed it."""
        self._tokenizer.feed(data)

    def events(self) -> Iterator[DriverEvent | BadLine]:
        """The events of every complete line received so far."""
        while not self._dead:
            line = self._tokenizer.next_line()
            if line is None:
                return
            if isinstance(line, Line):
                if line.words:
                    yield parse_words(line.words)
            elif isinstance(line, LineError):
                yield BadLine(f"line {line.lineno}: {line.message}")
            elif isinstance(line, LineTooLong):
                self._dead = True
                yield BadLine(f"line {line.lineno} longer than {line.limit} bytes")


# ---------------------------------------------------------------------------------------
# upsd's copy of the driver state


@attrs.define
class _Node:
    name: str
    value: str
    flags: frozenset[str] = frozenset()
    aux: int = 0
    enums: list[str] = attrs.Factory(list)
    ranges: list[tuple[int, int]] = attrs.Factory(list)

    def variable(self) -> Variable:
        return Variable(
            name=self.name,
            value=self.value,
            rw="RW" in self.flags,
            string="STRING" in self.flags,
            number="NUMBER" in self.flags,
            aux=self.aux,
            enums=tuple(self.enums),
            ranges=tuple(self.ranges),
        )


class DriverMirror:
    """upsd's copy of one driver's state, changed by the driver's events.

    Attributes:
        stale: The driver said DATASTALE (and not DATAOK since).
        dumped: The reply to DUMPALL is complete (DUMPDONE seen).
        pid: The driver's process id, if it answered GETPID.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, _Node] = {}
        self._commands: list[str] = []
        self.stale = False
        self.dumped = False
        self.pid: int | None = None

    def reset(self) -> None:
        """Forget everything (a new connection: upsd frees its copy on disconnect)."""
        self._nodes.clear()
        self._commands.clear()
        self.stale = self.dumped = False
        self.pid = None

    # -- what the kit publishes -------------------------------------------------------------

    def variables(self) -> list[Variable]:
        """The variables, in upsd's order (case-insensitive by name)."""
        return [self._nodes[k].variable() for k in sorted(self._nodes)]

    @property
    def commands(self) -> tuple[str, ...]:
        """The instant commands, in case-insensitive alphabetical order."""
        return tuple(self._commands)

    # -- events -----------------------------------------------------------------------------

    def apply(self, event: DriverEvent) -> bool:
        """Change the copy as upsd does for ``event``.

        Returns:
            Whether upsd counts the line as news from the driver ("last heard"): every
            recognised line does; an :class:`UnknownLine` does not.
        """
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return not isinstance(event, UnknownLine)
        handler(self, event)
        return True

    def _node(self, name: str) -> _Node | None:
        return self._nodes.get(name.lower())

    def _setinfo(self, event: SetInfo) -> None:
        node = self._node(event.var)
        if node is None:
            self._nodes[event.var.lower()] = _Node(event.var, event.value)
        elif node.value.lower() != event.value.lower():
            node.value = event.value

    def _delinfo(self, event: DelInfo) -> None:
        self._nodes.pop(event.var.lower(), None)

    def _addenum(self, event: AddEnum) -> None:
        node = self._node(event.var)
        if node is not None and event.value not in node.enums:
            node.enums.append(event.value)

    def _delenum(self, event: DelEnum) -> None:
        node = self._node(event.var)
        if node is not None:
            low = event.value.lower()
            node.enums = [v for v in node.enums if v.lower() != low]

    def _addrange(self, event: AddRange) -> None:
        node = self._node(event.var)
        if node is None or event.low > event.high:
            return
        if all(lo != event.low and hi != event.high for lo, hi in node.ranges):
            node.ranges.append((event.low, event.high))

    def _delrange(self, event: DelRange) -> None:
        node = self._node(event.var)
        if node is not None:
            node.ranges = [r for r in node.ranges if r != (event.low, event.high)]

    def _setaux(self, event: SetAux) -> None:
        node = self._node(event.var)
        if node is not None:
            node.aux = event.aux

    def _setflags(self, event: SetFlags) -> None:
        node = self._node(event.var)
        if node is not None:
            node.flags = frozenset(f.upper() for f in event.flags) & {"RW", "STRING", "NUMBER"}

    def _addcmd(self, event: AddCmd) -> None:
        low = event.cmd.lower()
        if all(c.lower() != low for c in self._commands):
            self._commands.append(event.cmd)
            self._commands.sort(key=str.lower)

    def _delcmd(self, event: DelCmd) -> None:
        low = event.cmd.lower()
        self._commands = [c for c in self._commands if c.lower() != low]

    def _data_ok(self, event: DataOk) -> None:
        self.stale = False

    def _data_stale(self, event: DataStale) -> None:
        self.stale = True

    def _dump_done(self, event: DumpDone) -> None:
        self.dumped = True

    def _pid(self, event: Pid) -> None:
        self.pid = event.pid


_HANDLERS: Mapping[type, Callable[[DriverMirror, Any], None]] = {
    SetInfo: DriverMirror._setinfo,
    DelInfo: DriverMirror._delinfo,
    AddEnum: DriverMirror._addenum,
    DelEnum: DriverMirror._delenum,
    AddRange: DriverMirror._addrange,
    DelRange: DriverMirror._delrange,
    SetAux: DriverMirror._setaux,
    SetFlags: DriverMirror._setflags,
    AddCmd: DriverMirror._addcmd,
    DelCmd: DriverMirror._delcmd,
    DataOk: DriverMirror._data_ok,
    DataStale: DriverMirror._data_stale,
    DumpDone: DriverMirror._dump_done,
    Pid: DriverMirror._pid,
}


# ---------------------------------------------------------------------------------------
# Requests to the driver


def tracking_status(status: str) -> CommandStatus:
    """The outcome a driver's ``TRACKING id status`` word stands for (upsd 2.8.3's mapping)."""
    number = strtol(status) if status.strip().lstrip("+-").isdigit() else -1
    if number == 4:  # STAT_*_CONVERSION_FAILED (2.8.3)
        return CommandStatus.INVALID_ARGUMENT
    try:
        return CommandStatus(number)
    except ValueError:
        return CommandStatus.UNKNOWN


def _with_tracking(words: list[str], tracking: str | None) -> bytes:
    if tracking is not None:
        words += ["TRACKING", tracking]
    return request_line(words)


def dumpall() -> bytes:
    """``DUMPALL``: ask for the whole state (ends with DUMPDONE)."""
    return b"DUMPALL\n"


def ping() -> bytes:
    """``PING``: the driver answers PONG."""
    return b"PING\n"


def set_var(name: str, value: str, tracking: str | None = None) -> bytes:
    """``SET var "value" [TRACKING id]`` (the value always quoted and escaped, as upsd sends it).

    Raises:
        nuttrio.protocol.LocalProtocolError: For a word NUT cannot carry.
    """
    request_word(value)  # refuses what NUT cannot carry
    words = request_line(["SET", name]).decode("ascii")[:-1] + " " + quote(value)
    if tracking is not None:
        words += " " + request_line(["TRACKING", tracking]).decode("ascii")[:-1]
    return (words + "\n").encode("ascii")


def instcmd(name: str, param: str | None = None, tracking: str | None = None) -> bytes:
    """``INSTCMD cmd [param] [TRACKING id]``.

    Raises:
        nuttrio.protocol.LocalProtocolError: For a word NUT cannot carry.
    """
    return _with_tracking(["INSTCMD", name, *([] if param is None else [param])], tracking)


def getpid() -> bytes:
    """``GETPID`` (2.8.3): the driver answers ``PID n``."""
    return b"GETPID\n"


def logout() -> bytes:
    """``LOGOUT`` (2.8.3): the driver answers ``OK Goodbye`` and closes."""
    return b"LOGOUT\n"


def broadcast(enabled: bool = True) -> bytes:
    """``BROADCAST [0|1]`` (2.8.1): whether the driver pushes updates to this connection."""
    return b"BROADCAST 1\n" if enabled else b"BROADCAST 0\n"


def nobroadcast() -> bytes:
    """``NOBROADCAST`` (2.8.1): stop pushing updates to this connection."""
    return b"NOBROADCAST\n"


def dumpvalue(name: str) -> bytes:
    """``DUMPVALUE var`` (2.8.3): the dump of one variable, DATAOK/DATASTALE, DUMPDONE."""
    return request_line(["DUMPVALUE", name])


def dumpstatus() -> bytes:
    """``DUMPSTATUS`` (2.8.3): ``DUMPVALUE ups.status``."""
    return b"DUMPSTATUS\n"
