"""The server side of one NUT connection, sans-IO.

General theory of operation
---------------------------
A :class:`ServerConnection` is fed the bytes a client sent (:meth:`receive_data`; ``b""``
means the client closed) and hands out one request at a time (:meth:`next_event`). The
application answers each request with :meth:`send`, which returns the bytes to write and
applies what the answer means to the session (a successful ``USERNAME`` sets the user, a
successful ``LOGIN`` records the UPS, ``OK STARTTLS`` pauses the connection for the TLS
handshake, ``OK Goodbye`` closes it).

The connection knows the grammar and the session state: argument counts, the order in which
upsd 2.8.0 checks them against ``USERNAME``/``PASSWORD`` presence, and the vocabulary (a
request in RFC 9271's words, ``ATTACH``/``DETACH``/``NUMATTACH``, gets RFC 9271's error
names). Anything that needs the UPS data (unknown UPS, permissions, variables) is the
application's business. Requests the connection can already refuse arrive as
:class:`~nuttrio.protocol.events.Rejected`.

Exactly one request is outstanding at a time: call :meth:`send` before the next
:meth:`next_event`, which keeps replies in request order however requests are pipelined.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from . import events as ev
from .errors import ErrCode, LocalProtocolError
from .replies import Reply
from .tokenizer import Line, LineError, LineTooLong, Tokenizer

__all__ = ["DEFAULT_MAX_LINE", "ServerConnection", "Signal"]

#: Default longest request line accepted, in bytes.
DEFAULT_MAX_LINE = 64 * 1024


class Signal(enum.Enum):
    """What :meth:`ServerConnection.next_event` returns when there is no request."""

    #: Feed more bytes with :meth:`ServerConnection.receive_data`.
    NEED_DATA = enum.auto()
    #: Close the connection: the client closed, logged out, or broke the line limit.
    CLOSE = enum.auto()
    #: The connection is waiting for the TLS handshake (see :meth:`ServerConnection.tls_started`).
    PAUSED = enum.auto()


_Parser = Callable[["ServerConnection", list[str]], ev.Request]


class ServerConnection:
    """Protocol state of one client connection.

    Args:
        max_line: Longest request line accepted; a longer one is answered with
            ``ERR TOO-LONG`` and the connection closes.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._tok = Tokenizer(max_line=max_line)
        self._eof = False
        self._pending: ev.Request | None = None
        self._close_after_reply = False
        self._closing = False
        self._paused = False
        #: The name given with USERNAME, if any.
        self.username: str | None = None
        #: The password given with PASSWORD, if any.
        self.password: str | None = None
        #: The UPS name (as the client spelt it) of a successful LOGIN/ATTACH, if any.
        self.login_ups: str | None = None
        #: Whether SET TRACKING ON is in force.
        self.tracking = False
        #: Whether the connection runs inside TLS.
        self.tls = False
        #: Whether the client has used RFC 9271's vocabulary on this connection.
        self.rfc = False

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes received from the client; ``b""`` means the client closed its side."""
        if not data:
            self._eof = True
            return
        self._tok.feed(data)

    def next_event(self) -> ev.Request | Signal:
        """Return the next request, or a :class:`Signal` when there is none.

        Raises:
            LocalProtocolError: If the previous request has not been answered yet.
        """
        if self._pending is not None:
            raise LocalProtocolError("answer the previous request before reading the next")
        if self._paused:
            return Signal.PAUSED
        if self._close_after_reply:
            return Signal.CLOSE
        item = self._tok.next_line()
        if item is None:
            if self._eof or self._closing:
                return Signal.CLOSE
            return Signal.NEED_DATA
        # upsd closes after LOGOUT at its next loop pass unless more requests already came.
        self._closing = False
        request: ev.Request
        if isinstance(item, LineTooLong):
            self._close_after_reply = True
            request = ev.Rejected(error=ErrCode.TOO_LONG)
        elif isinstance(item, LineError):
            request = ev.Rejected(error=ErrCode.INVALID_ARGUMENT)
        else:
            request = self._parse(item)
        self._pending = request
        return request

    # -- output ----------------------------------------------------------------------------

    def send(self, reply: Reply) -> bytes:
        """Answer the outstanding request and return the bytes to write.

        The reply's meaning is applied to the session: for example ``OK`` to ``USERNAME``
        records the user name, and ``OK STARTTLS`` pauses the connection until
        :meth:`tls_started` is called.

        Raises:
            LocalProtocolError: If no request is outstanding.
        """
        request = self._pending
        if request is None:
            raise LocalProtocolError("no request is waiting for a reply")
        self._pending = None
        if reply.ok:
            self._apply(request)
        return reply.data

    def _apply(self, request: ev.Request) -> None:
        if isinstance(request, ev.Username):
            self.username = request.name
        elif isinstance(request, ev.Password):
            self.password = request.password
        elif isinstance(request, ev.Login):
            self.login_ups = request.ups
        elif isinstance(request, ev.Logout):
            self._closing = True
        elif isinstance(request, ev.SetTracking):
            self.tracking = request.on
        elif isinstance(request, ev.StartTLS):
            self._paused = True

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after ``STARTTLS`` and before the handshake (should be empty)."""
        return self._tok.unparsed()

    def tls_started(self) -> None:
        """Resume after a successful TLS handshake; the session continues inside TLS.

        Raises:
            LocalProtocolError: If the connection was not waiting for TLS.
        """
        if not self._paused:
            raise LocalProtocolError("the connection is not waiting for a TLS handshake")
        self._paused = False
        self.tls = True
        self._tok.discard_unparsed()

    @property
    def logged_out(self) -> bool:
        """Whether a LOGOUT was answered and no request has followed it."""
        return self._closing

    # -- grammar ---------------------------------------------------------------------------

    def _parse(self, line: Line) -> ev.Request:
        words = list(line.words)
        if not words:
            return ev.Rejected(error=ErrCode.UNKNOWN_COMMAND)
        entry = _COMMANDS.get(words[0].upper())
        if entry is None:
            return ev.Rejected(error=ErrCode.UNKNOWN_COMMAND)
        parser, needs_user = entry
        if needs_user:
            if self.username is None:
                return ev.Rejected(error=ErrCode.USERNAME_REQUIRED)
            if self.password is None:
                return ev.Rejected(error=ErrCode.PASSWORD_REQUIRED)
        return parser(self, words[1:])


_INVALID = ev.Rejected(error=ErrCode.INVALID_ARGUMENT)


def _no_args(make: Callable[[], ev.Request]) -> _Parser:
    def parse(conn: ServerConnection, args: list[str]) -> ev.Request:
        return _INVALID if args else make()

    return parse


def _username(conn: ServerConnection, args: list[str]) -> ev.Request:
    if len(args) != 1:
        return _INVALID
    if conn.username is not None:
        return ev.Rejected(error=ErrCode.ALREADY_SET_USERNAME)
    return ev.Username(name=args[0])


def _password(conn: ServerConnection, args: list[str]) -> ev.Request:
    if len(args) != 1:
        return _INVALID
    if conn.password is not None:
        return ev.Rejected(error=ErrCode.ALREADY_SET_PASSWORD)
    return ev.Password(password=args[0])


def _login(conn: ServerConnection, args: list[str], *, rfc: bool = False) -> ev.Request:
    if rfc:
        conn.rfc = True
    if len(args) != 1:
        return _INVALID
    if conn.login_ups is not None:
        return ev.Rejected(error=ErrCode.ALREADY_ATTACHED if rfc else ErrCode.ALREADY_LOGGED_IN)
    return ev.Login(ups=args[0], rfc=rfc)


def _attach(conn: ServerConnection, args: list[str]) -> ev.Request:
    return _login(conn, args, rfc=True)


def _logout(conn: ServerConnection, args: list[str], *, rfc: bool = False) -> ev.Request:
    if rfc:
        conn.rfc = True
    return _INVALID if args else ev.Logout(rfc=rfc)


def _detach(conn: ServerConnection, args: list[str]) -> ev.Request:
    return _logout(conn, args, rfc=True)


def _starttls(conn: ServerConnection, args: list[str]) -> ev.Request:
    if conn.tls:
        return ev.Rejected(
            error=ErrCode.TLS_ALREADY_ENABLED if conn.rfc else ErrCode.ALREADY_SSL_MODE
        )
    return ev.StartTLS()


def _one_ups(make: Callable[[str, str], ev.Request], word: str) -> _Parser:
    def parse(conn: ServerConnection, args: list[str]) -> ev.Request:
        return make(args[0], word) if len(args) == 1 else _INVALID

    return parse


def _get(conn: ServerConnection, args: list[str]) -> ev.Request:
    if not args:
        return _INVALID
    sub = args[0].upper()
    if sub == "TRACKING":
        return ev.GetTracking(id=args[1] if len(args) > 1 else None)
    if len(args) < 2:
        return _INVALID
    if sub == "NUMLOGINS":
        return ev.GetNumLogins(ups=args[1])
    if sub == "NUMATTACH":
        conn.rfc = True
        return ev.GetNumLogins(ups=args[1], rfc=True)
    if sub == "UPSDESC":
        return ev.GetUpsDesc(ups=args[1])
    if len(args) < 3:
        return _INVALID
    two = _GET_TWO.get(sub)
    return two(args[1], args[2]) if two is not None else _INVALID


_GET_TWO: dict[str, Callable[[str, str], ev.Request]] = {
    "VAR": lambda u, v: ev.GetVar(ups=u, var=v),
    "TYPE": lambda u, v: ev.GetType(ups=u, var=v),
    "DESC": lambda u, v: ev.GetDesc(ups=u, var=v),
    "CMDDESC": lambda u, c: ev.GetCmdDesc(ups=u, cmd=c),
}

_LIST_ONE: dict[str, Callable[[str], ev.Request]] = {
    "VAR": lambda u: ev.ListVar(ups=u),
    "RW": lambda u: ev.ListRw(ups=u),
    "CMD": lambda u: ev.ListCmd(ups=u),
    "CLIENT": lambda u: ev.ListClient(ups=u),
}

_LIST_TWO: dict[str, Callable[[str, str], ev.Request]] = {
    "ENUM": lambda u, v: ev.ListEnum(ups=u, var=v),
    "RANGE": lambda u, v: ev.ListRange(ups=u, var=v),
}


def _list(conn: ServerConnection, args: list[str]) -> ev.Request:
    if not args:
        return _INVALID
    sub = args[0].upper()
    if sub == "UPS":
        return ev.ListUps()
    if len(args) < 2:
        return _INVALID
    one = _LIST_ONE.get(sub)
    if one is not None:
        return one(args[1])
    if len(args) < 3:
        return _INVALID
    two = _LIST_TWO.get(sub)
    return two(args[1], args[2]) if two is not None else _INVALID


def _set(conn: ServerConnection, args: list[str]) -> ev.Request:
    if len(args) < 2:
        return _INVALID
    sub = args[0].upper()
    if sub == "VAR":
        if len(args) < 4:
            return _INVALID
        return ev.SetVar(ups=args[1], var=args[2], value=args[3])
    if sub == "TRACKING":
        flag = args[1].upper()
        if flag == "ON":
            return ev.SetTracking(on=True)
        if flag == "OFF":
            return ev.SetTracking(on=False)
    return _INVALID


def _instcmd(conn: ServerConnection, args: list[str]) -> ev.Request:
    if len(args) < 2:
        return _INVALID
    # upsd uses the parameter only when exactly three arguments were given.
    return ev.InstCmd(ups=args[0], cmd=args[1], param=args[2] if len(args) == 3 else None)


# Command word -> (parser, needs USERNAME and PASSWORD first), as upsd's netcmds table.
_COMMANDS: dict[str, tuple[_Parser, bool]] = {
    "VER": (_no_args(ev.Ver), False),
    "NETVER": (_no_args(ev.NetVer), False),
    "PROTVER": (_no_args(ev.NetVer), False),
    "HELP": (_no_args(ev.Help), False),
    "STARTTLS": (_starttls, False),
    "GET": (_get, False),
    "LIST": (_list, False),
    "USERNAME": (_username, False),
    "PASSWORD": (_password, False),
    "LOGIN": (_login, True),
    "ATTACH": (_attach, True),
    "LOGOUT": (_logout, False),
    "DETACH": (_detach, False),
    "PRIMARY": (_one_ups(lambda u, w: ev.Primary(ups=u, word=w), "PRIMARY"), True),
    "MASTER": (_one_ups(lambda u, w: ev.Primary(ups=u, word=w), "MASTER"), True),
    "FSD": (_one_ups(lambda u, w: ev.Fsd(ups=u), "FSD"), True),
    "SET": (_set, True),
    "INSTCMD": (_instcmd, True),
}
