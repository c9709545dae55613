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

States (:attr:`ServerConnection.state`)::

    OPEN --LOGOUT answered--> LOGGED_OUT --another request already received--> OPEN
    OPEN, LOGGED_OUT --receive_data(b"")--> PEER_CLOSED
    OPEN --line too long--> CLOSING (the ERR TOO-LONG reply is the last)
    OPEN --OK STARTTLS sent--> PAUSED --tls_started()--> OPEN
    any --send_failed()--> ERROR (every later call raises LocalProtocolError)

:data:`Signal.CLOSE` comes once nothing is left to answer in LOGGED_OUT and PEER_CLOSED, and
at once in CLOSING.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from . import events as ev
from .errors import ErrCode, LocalProtocolError
from .grammar import LOGIN_REQUIRED, resolve
from .replies import Reply
from .tokenizer import Line, LineError, LineTooLong, Tokenizer

__all__ = ["DEFAULT_MAX_LINE", "ServerConnection", "ServerState", "Signal"]

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


class ServerState(enum.Enum):
    """Where a :class:`ServerConnection` is in its life."""

    #: Requests are read and answered.
    OPEN = enum.auto()
    #: LOGOUT was answered: the connection closes unless more requests had already come.
    LOGGED_OUT = enum.auto()
    #: The client closed its side: requests already received are answered, then it closes.
    PEER_CLOSED = enum.auto()
    #: The outstanding reply is the last one (the request line was too long).
    CLOSING = enum.auto()
    #: ``OK STARTTLS`` was sent: do the TLS handshake, then call ``tls_started()``.
    PAUSED = enum.auto()
    #: The I/O layer could not write (:meth:`ServerConnection.send_failed`): unusable.
    ERROR = enum.auto()


_OPEN = ServerState.OPEN
_ERROR = ServerState.ERROR

# What next_event returns, per state, when no complete request line is buffered.
_IDLE = {
    ServerState.OPEN: Signal.NEED_DATA,
    ServerState.LOGGED_OUT: Signal.CLOSE,
    ServerState.PEER_CLOSED: Signal.CLOSE,
}
_SessionRule = Callable[["ServerConnection", ev.Request], ErrCode | None]
_Effect = Callable[["ServerConnection", ev.Request], None]


class ServerConnection:
    """Protocol state of one client connection.

    Args:
        max_line: Longest request line accepted; a longer one is answered with
            ``ERR TOO-LONG`` and the connection closes.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._tok = Tokenizer(max_line=max_line)
        self._state = ServerState.OPEN
        self._pending: ev.Request | None = None
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

    @property
    def state(self) -> ServerState:
        """Where the connection is in its life."""
        return self._state

    def _usable(self) -> None:
        if self._state is ServerState.ERROR:
            raise LocalProtocolError("the connection is in the ERROR state (a write failed)")

    def _logged_out_now(self) -> None:
        if self._state is ServerState.OPEN:
            self._state = ServerState.LOGGED_OUT

    def _pause(self) -> None:
        self._state = ServerState.PAUSED

    def send_failed(self) -> None:
        """Record that the bytes of a reply could not be written: the connection is unusable.

        Every later call (except this one and the properties) raises
        :class:`~nuttrio.protocol.errors.LocalProtocolError`.
        """
        self._state = ServerState.ERROR

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes received from the client; ``b""`` means the client closed its side.

        Raises:
            LocalProtocolError: If the connection is in the ERROR state.
        """
        self._usable()
        if data:
            self._tok.feed(data)
        elif self._state in (ServerState.OPEN, ServerState.LOGGED_OUT):
            self._state = ServerState.PEER_CLOSED

    def next_event(self) -> ev.Request | Signal:
        """Return the next request, or a :class:`Signal` when there is none.

        Raises:
            LocalProtocolError: If the previous request has not been answered yet, or the
                connection is in the ERROR state.
        """
        if self._pending is not None:
            raise LocalProtocolError("answer the previous request before reading the next")
        state = self._state
        if state is not _OPEN:  # one test on the hot path; the rare states below
            if state is ServerState.ERROR:
                self._usable()
            if state is ServerState.PAUSED:
                return Signal.PAUSED
            if state is ServerState.CLOSING:
                return Signal.CLOSE
        item = self._tok.next_line()
        if item is None:
            return _IDLE[state]
        # upsd closes after LOGOUT at its next loop pass unless more requests already came.
        if state is ServerState.LOGGED_OUT:
            self._state = _OPEN
        request: ev.Request
        if isinstance(item, LineTooLong):
            self._state = ServerState.CLOSING
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
        :meth:`tls_started` is called. If the bytes cannot be written, call
        :meth:`send_failed`.

        Raises:
            LocalProtocolError: If no request is outstanding, or the connection is in the
                ERROR state.
        """
        request = self._pending
        if request is None or self._state is _ERROR:
            self._usable()
            raise LocalProtocolError("no request is waiting for a reply")
        self._pending = None
        if reply.ok:
            self._apply(request)
        return reply.data

    def _apply(self, request: ev.Request) -> None:
        effect = _EFFECTS.get(type(request))
        if effect is not None:
            effect(self, request)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after ``STARTTLS`` and before the handshake (should be empty)."""
        return self._tok.unparsed()

    def tls_started(self) -> None:
        """Resume after a successful TLS handshake; the session continues inside TLS.

        Raises:
            LocalProtocolError: If the connection was not waiting for TLS.
        """
        if self._state is not ServerState.PAUSED:
            raise LocalProtocolError("the connection is not waiting for a TLS handshake")
        self._state = ServerState.OPEN
        self.tls = True
        self._tok.discard_unparsed()

    @property
    def logged_out(self) -> bool:
        """Whether a LOGOUT was answered and no request has followed it."""
        return self._state is ServerState.LOGGED_OUT

    # -- grammar ---------------------------------------------------------------------------

    def _parse(self, line: Line) -> ev.Request:
        words = line.words
        if words and words[0].upper() in LOGIN_REQUIRED:
            if self.username is None:
                return ev.Rejected(error=ErrCode.USERNAME_REQUIRED)
            if self.password is None:
                return ev.Rejected(error=ErrCode.PASSWORD_REQUIRED)
        command, request = resolve(words)
        if command is not None and command.rfc:
            self.rfc = True
        rule = _SESSION_RULES.get(type(request))
        error = None if rule is None else rule(self, request)
        return request if error is None else ev.Rejected(error=error)


def _already(attribute: str, code: ErrCode) -> _SessionRule:
    def rule(conn: ServerConnection, request: ev.Request) -> ErrCode | None:
        return code if getattr(conn, attribute) is not None else None

    return rule


def _second_login(conn: ServerConnection, request: ev.Request) -> ErrCode | None:
    if conn.login_ups is None:
        return None
    attach = isinstance(request, ev.Login) and request.rfc
    return ErrCode.ALREADY_ATTACHED if attach else ErrCode.ALREADY_LOGGED_IN


def _tls_twice(conn: ServerConnection, request: ev.Request) -> ErrCode | None:
    if not conn.tls:
        return None
    return ErrCode.TLS_ALREADY_ENABLED if conn.rfc else ErrCode.ALREADY_SSL_MODE


# The session's rules, applied after the grammar's (upsd's order): request type -> check.
_SESSION_RULES: dict[type[ev.Request], _SessionRule] = {
    ev.Username: _already("username", ErrCode.ALREADY_SET_USERNAME),
    ev.Password: _already("password", ErrCode.ALREADY_SET_PASSWORD),
    ev.Login: _second_login,
    ev.StartTLS: _tls_twice,
}


def _set(attribute: str, field: str) -> _Effect:
    def effect(conn: ServerConnection, request: ev.Request) -> None:
        setattr(conn, attribute, getattr(request, field))

    return effect


# What a successful reply to a request does to the session: request type -> effect.
_EFFECTS: dict[type[ev.Request], _Effect] = {
    ev.Username: _set("username", "name"),
    ev.Password: _set("password", "password"),
    ev.Login: _set("login_ups", "ups"),
    ev.SetTracking: _set("tracking", "on"),
    ev.Logout: lambda conn, request: conn._logged_out_now(),
    ev.StartTLS: lambda conn, request: conn._pause(),
}
