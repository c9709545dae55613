"""The NUT request grammar, written once for both directions.

General theory of operation
---------------------------
:data:`COMMANDS` lists every request upsd 2.8.0 (and RFC 9271) knows: its words (``GET
VAR``), the arguments after them, whether ``USERNAME`` and ``PASSWORD`` must come first,
the event it becomes and the shape of the reply. It is read three ways:

* :func:`parse` turns a request line's words into a typed event (the server's direction),
  with upsd's own rules for missing and extra arguments;
* :func:`serialize` turns a typed event back into words (the client's direction), so that
  ``parse(serialize(event)) == event`` for every event in the table;
* :func:`lookup` gives a client the reply shape of the request it sent.

Session rules (a second ``USERNAME``, ``LOGIN`` twice, ``STARTTLS`` inside TLS) are not
grammar: :class:`~nuttrio.protocol.connection.ServerConnection` applies them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence

import attrs

from . import events as ev
from .errors import ErrCode, LocalProtocolError

__all__ = [
    "COMMANDS",
    "LOGIN_REQUIRED",
    "Command",
    "Echo",
    "ReplyKind",
    "command_for",
    "lookup",
    "parse",
    "resolve",
    "serialize",
]


class ReplyKind(enum.Enum):
    """What a successful reply to a request looks like (any request may get ``ERR``)."""

    #: One line; checked against the command's :class:`Echo` when it has one.
    LINE = enum.auto()
    #: One line starting with ``OK``.
    OK = enum.auto()
    #: A ``BEGIN LIST … END LIST`` block.
    LIST = enum.auto()
    #: ``OK STARTTLS``, after which the connection pauses for the TLS handshake.
    STARTTLS = enum.auto()
    #: ``OK Goodbye``, after which the server closes.
    LOGOUT = enum.auto()


@attrs.frozen
class Echo:
    """How a ``GET`` reply line (or each line of a list) repeats its request.

    Attributes:
        words: Request words after the first that the reply repeats first
            (``GET VAR u v`` → ``VAR u v "x"``: 3).
        width: Words in the reply line (or list line); ``None``: at least ``words + 1``.
    """

    words: int
    width: int | None


_Build = Callable[["Command", Sequence[str]], ev.Request]


@attrs.frozen(kw_only=True)
class Command:
    """One request of the grammar.

    Attributes:
        words: The command words, upper case (``("GET", "VAR")``).
        event: The event class the request becomes.
        params: Event attributes given by the required arguments, in order.
        optional: Event attributes given by optional arguments that follow (``None`` when
            absent).
        extra_ok: Whether upsd ignores arguments beyond these (else they are refused).
        needs_user: Whether ``USERNAME`` and ``PASSWORD`` must have been given first.
        fixed: Event attributes this spelling sets (``ATTACH``: ``rfc=True``).
        rfc: Whether the words are RFC 9271's vocabulary (the session then answers in it).
        reply: The kind of a successful reply.
        echo: How the reply repeats the request, for ``GET`` and ``LIST``.
        build: Builds the event from the arguments when the default rule does not fit.
    """

    words: tuple[str, ...]
    event: type[ev.Request]
    params: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    extra_ok: bool = False
    needs_user: bool = False
    fixed: Mapping[str, object] = attrs.field(factory=dict)
    rfc: bool = False
    reply: ReplyKind = ReplyKind.LINE
    echo: Echo | None = None
    build: _Build | None = None
    # Precomputed for make(), which runs for every request a server reads.
    _names: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    _most: int = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_names", (*self.params, *self.optional))
        object.__setattr__(self, "_most", 1 << 30 if self.extra_ok else len(self._names))

    def make(self, args: Sequence[str]) -> ev.Request | None:
        """The event for these arguments, or ``None`` if their number is wrong."""
        if not len(self.params) <= len(args) <= self._most:
            return None
        if self.build is not None:
            return self.build(self, args)
        values: dict[str, object] = dict(zip(self._names, args, strict=False))
        if self.fixed:
            values.update(self.fixed)
        return self.event(**values)

    def words_of(self, event: ev.Request) -> tuple[str, ...]:
        """The request's words for ``event`` (an instance of :attr:`event`)."""
        args = [getattr(event, name) for name in self.params]
        args.extend(v for name in self.optional if (v := getattr(event, name)) is not None)
        return (*self.words, *args)


def _instcmd(command: Command, args: Sequence[str]) -> ev.Request:
    # upsd uses the parameter only when exactly three arguments were given.
    return ev.InstCmd(ups=args[0], cmd=args[1], param=args[2] if len(args) == 3 else None)


_OK, _LIST = ReplyKind.OK, ReplyKind.LIST
_UPS = ("ups",)
_UPS_VAR = ("ups", "var")

#: Every request, as upsd 2.8.0's netcmds table and RFC 9271 name them.
COMMANDS: tuple[Command, ...] = (
    Command(words=("VER",), event=ev.Ver),
    Command(words=("NETVER",), event=ev.NetVer),
    Command(words=("PROTVER",), event=ev.NetVer),
    Command(words=("HELP",), event=ev.Help),
    Command(words=("STARTTLS",), event=ev.StartTLS, extra_ok=True, reply=ReplyKind.STARTTLS),
    Command(words=("USERNAME",), event=ev.Username, params=("name",), reply=_OK),
    Command(words=("PASSWORD",), event=ev.Password, params=("password",), reply=_OK),
    Command(
        words=("LOGIN",),
        event=ev.Login,
        params=_UPS,
        needs_user=True,
        fixed={"rfc": False},
        reply=_OK,
    ),
    Command(
        words=("ATTACH",),
        event=ev.Login,
        params=_UPS,
        needs_user=True,
        fixed={"rfc": True},
        rfc=True,
        reply=_OK,
    ),
    Command(words=("LOGOUT",), event=ev.Logout, fixed={"rfc": False}, reply=ReplyKind.LOGOUT),
    Command(
        words=("DETACH",), event=ev.Logout, fixed={"rfc": True}, rfc=True, reply=ReplyKind.LOGOUT
    ),
    Command(
        words=("PRIMARY",),
        event=ev.Primary,
        params=_UPS,
        needs_user=True,
        fixed={"word": "PRIMARY"},
        reply=_OK,
    ),
    Command(
        words=("MASTER",),
        event=ev.Primary,
        params=_UPS,
        needs_user=True,
        fixed={"word": "MASTER"},
        reply=_OK,
    ),
    Command(words=("FSD",), event=ev.Fsd, params=_UPS, needs_user=True, reply=_OK),
    Command(
        words=("GET", "TRACKING"),
        event=ev.GetTracking,
        optional=("id",),
        extra_ok=True,
        echo=Echo(0, 1),
    ),
    Command(
        words=("GET", "NUMLOGINS"),
        event=ev.GetNumLogins,
        params=_UPS,
        extra_ok=True,
        fixed={"rfc": False},
        echo=Echo(2, 3),
    ),
    Command(
        words=("GET", "NUMATTACH"),
        event=ev.GetNumLogins,
        params=_UPS,
        extra_ok=True,
        fixed={"rfc": True},
        rfc=True,
        echo=Echo(2, 3),
    ),
    Command(
        words=("GET", "UPSDESC"), event=ev.GetUpsDesc, params=_UPS, extra_ok=True, echo=Echo(2, 3)
    ),
    Command(words=("GET", "VAR"), event=ev.GetVar, params=_UPS_VAR, extra_ok=True, echo=Echo(3, 4)),
    Command(
        words=("GET", "TYPE"), event=ev.GetType, params=_UPS_VAR, extra_ok=True, echo=Echo(3, None)
    ),
    Command(
        words=("GET", "DESC"), event=ev.GetDesc, params=_UPS_VAR, extra_ok=True, echo=Echo(3, 4)
    ),
    Command(
        words=("GET", "CMDDESC"),
        event=ev.GetCmdDesc,
        params=("ups", "cmd"),
        extra_ok=True,
        echo=Echo(3, 4),
    ),
    Command(words=("LIST", "UPS"), event=ev.ListUps, extra_ok=True, reply=_LIST, echo=Echo(1, 3)),
    Command(
        words=("LIST", "VAR"),
        event=ev.ListVar,
        params=_UPS,
        extra_ok=True,
        reply=_LIST,
        echo=Echo(2, 4),
    ),
    Command(
        words=("LIST", "RW"),
        event=ev.ListRw,
        params=_UPS,
        extra_ok=True,
        reply=_LIST,
        echo=Echo(2, 4),
    ),
    Command(
        words=("LIST", "CMD"),
        event=ev.ListCmd,
        params=_UPS,
        extra_ok=True,
        reply=_LIST,
        echo=Echo(2, 3),
    ),
    Command(
        words=("LIST", "CLIENT"),
        event=ev.ListClient,
        params=_UPS,
        extra_ok=True,
        reply=_LIST,
        echo=Echo(2, 3),
    ),
    Command(
        words=("LIST", "ENUM"),
        event=ev.ListEnum,
        params=_UPS_VAR,
        extra_ok=True,
        reply=_LIST,
        echo=Echo(3, 4),
    ),
    Command(
        words=("LIST", "RANGE"),
        event=ev.ListRange,
        params=_UPS_VAR,
        extra_ok=True,
        reply=_LIST,
        echo=Echo(3, 5),
    ),
    Command(
        words=("SET", "VAR"),
        event=ev.SetVar,
        params=("ups", "var", "value"),
        extra_ok=True,
        needs_user=True,
        reply=_OK,
    ),
    Command(
        words=("SET", "TRACKING", "ON"),
        event=ev.SetTracking,
        extra_ok=True,
        needs_user=True,
        fixed={"on": True},
        reply=_OK,
    ),
    Command(
        words=("SET", "TRACKING", "OFF"),
        event=ev.SetTracking,
        extra_ok=True,
        needs_user=True,
        fixed={"on": False},
        reply=_OK,
    ),
    Command(
        words=("INSTCMD",),
        event=ev.InstCmd,
        params=("ups", "cmd"),
        optional=("param",),
        extra_ok=True,
        needs_user=True,
        reply=_OK,
        build=_instcmd,
    ),
)

_Tree = dict[str, "Command | _Tree"]


def _tree(commands: Sequence[Command]) -> _Tree:
    """The commands as a word tree: ``{"GET": {"VAR": <GET VAR>, ...}, "VER": <VER>, ...}``."""
    root: _Tree = {}
    for command in commands:
        node = root
        for word in command.words[:-1]:
            child = node.setdefault(word, {})
            assert isinstance(child, dict), f"{command.words} extends a command"
            node = child
        node[command.words[-1]] = command
    return root


_TREE = _tree(COMMANDS)
_BY_EVENT: dict[type[ev.Request], list[Command]] = {}
for _command in COMMANDS:
    _BY_EVENT.setdefault(_command.event, []).append(_command)

#: First words of the requests that need ``USERNAME`` and ``PASSWORD`` first.
LOGIN_REQUIRED = frozenset(c.words[0] for c in COMMANDS if c.needs_user)


def lookup(words: Sequence[str]) -> tuple[Command | None, int]:
    """The command that request ``words`` name (case-insensitively), and its word count.

    Returns:
        ``(command, n)`` where the first ``n`` words name ``command``; ``(None, n)`` when
        the first ``n`` words name none (an unknown word, or a group such as ``GET`` whose
        sub-command is missing or unknown).
    """
    node: Command | _Tree = _TREE
    used = 0
    while isinstance(node, dict):
        if used >= len(words):
            return None, used
        found = node.get(words[used].upper())
        used += 1
        if found is None:
            return None, used
        node = found
    return node, used


# Recent resolutions: clients repeat the same few requests (a poller's GET VAR), and events
# are immutable, so a hit skips the parse. Bounded in entries and in the words it keeps.
_MEMO: dict[tuple[str, ...], tuple[Command | None, ev.Request]] = {}
_MEMO_ENTRIES = 1024
_MEMO_WORDS = 6
_MEMO_CHARS = 256


def resolve(words: tuple[str, ...]) -> tuple[Command | None, ev.Request]:
    """The command that request ``words`` name (if any) and the event they make.

    The event is :class:`~nuttrio.protocol.events.Rejected` with ``UNKNOWN-COMMAND`` for an
    unknown first word, ``INVALID-ARGUMENT`` for a wrong sub-command or argument count.
    Neither the login rule nor the session's rules are applied here.
    """
    hit = _MEMO.get(words)
    if hit is not None:
        return hit
    result = _resolve(words)
    if len(words) <= _MEMO_WORDS and sum(map(len, words)) <= _MEMO_CHARS:
        if len(_MEMO) >= _MEMO_ENTRIES:
            _MEMO.clear()
        _MEMO[words] = result
    return result


def _resolve(words: Sequence[str]) -> tuple[Command | None, ev.Request]:
    command, used = lookup(words)
    if command is None:
        known = bool(words) and words[0].upper() in _TREE
        error = ErrCode.INVALID_ARGUMENT if known else ErrCode.UNKNOWN_COMMAND
        return None, ev.Rejected(error=error)
    event = command.make(words[used:])
    return command, ev.Rejected(error=ErrCode.INVALID_ARGUMENT) if event is None else event


def parse(words: Sequence[str]) -> ev.Request:
    """The event for a request line's words, as upsd 2.8.0 reads them (see :func:`resolve`)."""
    return resolve(tuple(words))[1]


def command_for(event: ev.Request) -> Command:
    """The command that sends ``event``.

    Raises:
        LocalProtocolError: If no request carries it (:class:`~nuttrio.protocol.events.Rejected`).
    """
    for command in _BY_EVENT.get(type(event), ()):
        if all(getattr(event, name) == value for name, value in command.fixed.items()):
            return command
    raise LocalProtocolError(f"{event!r} is not a request that can be sent")


def serialize(event: ev.Request) -> tuple[str, ...]:
    """The words of the request for ``event``: ``GetVar(ups="u", var="v")`` → ``GET VAR u v``.

    Raises:
        LocalProtocolError: If no request carries the event.
    """
    return command_for(event).words_of(event)
