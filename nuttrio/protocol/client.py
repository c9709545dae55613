"""The client side of one NUT connection, sans-IO.

General theory of operation
---------------------------
A :class:`ClientConnection` turns request events (:mod:`~nuttrio.protocol.events`, the same
the server parses) into bytes (:meth:`~ClientConnection.send`) and
the bytes a server sends back into typed replies (:meth:`~ClientConnection.receive_data`,
then :meth:`~ClientConnection.next_reply` until it returns a :class:`ClientSignal`). It
performs no I/O and never imports Trio.

NUT has no request identifiers: every request gets exactly one reply line, or one
``BEGIN LIST … END LIST`` block, in request order. The connection therefore queues the
requests sent and not yet answered, and reads each reply in the shape its request calls for
(a ``LIST`` request gets a block, ``GET VAR u v`` gets ``VAR u v "<value>"``, ``USERNAME``
gets ``OK``, anything may get ``ERR <token>``); the shapes come from the one grammar,
:data:`~nuttrio.protocol.grammar.COMMANDS`. Requests may be pipelined, except that
nothing may follow ``STARTTLS`` or ``LOGOUT`` until they are answered: their replies change
what the stream carries next.

Replies are read as libupsclient reads them: one LF-terminated physical line at a time,
split with NUT's tokenizer (:class:`~nuttrio.protocol.tokenizer.Tokenizer`), and checked as
its ``verify_resp`` does: the reply repeats the request's words case-insensitively. Input
that does not fit raises :class:`RemoteProtocolError` and leaves the connection in
:attr:`ClientState.ERROR` for good; misuse of this API raises
:class:`~nuttrio.protocol.errors.LocalProtocolError` and changes nothing.

States (:attr:`ClientConnection.state`)::

    OPEN --reply "OK STARTTLS"--> PAUSED --tls_started()--> OPEN
    OPEN --reply "OK ..." to LOGOUT, or the server closed while idle--> CLOSED
    any  --RemoteProtocolError, or send_failed()--> ERROR
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Sequence
from typing import NoReturn

import attrs

from . import events as ev
from .connection import DEFAULT_MAX_LINE
from .errors import ErrCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from .grammar import COMMANDS, Echo, ReplyKind, lookup
from .quoting import request_line
from .tokenizer import ARG_LIMIT, WORD_LIMIT, Line, LineError, Tokenizer

__all__ = [
    "DEFAULT_MAX_LIST_ITEMS",
    "ClientConnection",
    "ClientReply",
    "ClientSignal",
    "ClientState",
    "RemoteProtocolError",
    "ReplyError",
]

#: Default largest number of lines accepted in one ``LIST`` block.
DEFAULT_MAX_LIST_ITEMS = 100_000

_ERR_CODES = {code.value: code for code in ErrCode}
# Most reply lines are plain words and quoted words without escapes, separated by spaces:
# these are split with regular expressions, all others by the (slower) tokenizer.
_PLAIN = rb"[!$-<>-\[\]-~]+"  # printable, no space, '"', '#', '=' or backslash
_QUOTED = rb'"([ !$-\[\]-~]*)"'  # printable, no '"', '#' or backslash
_SIMPLE_LINE = re.compile(rb" *(?:(?:" + _PLAIN + rb"|" + _QUOTED + rb")(?: +|(?=\n)))*\n")
_SIMPLE_WORD = re.compile(rb"(" + _PLAIN + rb")|" + _QUOTED)


class ReplyError(Exception):
    """The server refused a request with ``ERR <token>``; raised by the reply helpers.

    Attributes:
        reply: The ``ERR`` reply.
        error: The token as an :class:`ErrCode`, or ``None`` for a token nuttrio does not know.
        token: The token as sent.
    """

    def __init__(self, reply: ClientReply) -> None:
        self.reply = reply
        self.error = reply.error
        self.token = reply.error_token or ""
        super().__init__(f"{' '.join(reply.request)}: ERR {self.token}")


class ClientState(enum.Enum):
    """Where a :class:`ClientConnection` is in its life."""

    #: Requests can be sent and replies read.
    OPEN = enum.auto()
    #: ``OK STARTTLS`` was read: start TLS, then call :meth:`ClientConnection.tls_started`.
    PAUSED = enum.auto()
    #: The session is over (the server said goodbye or closed): close the socket.
    CLOSED = enum.auto()
    #: The server broke the protocol; nothing more can be read or sent.
    ERROR = enum.auto()


class ClientSignal(enum.Enum):
    """What :meth:`ClientConnection.next_reply` returns when there is no reply."""

    #: Feed more bytes with :meth:`ClientConnection.receive_data`.
    NEED_DATA = enum.auto()
    #: The connection is waiting for the TLS handshake (see :meth:`ClientConnection.tls_started`).
    PAUSED = enum.auto()
    #: The session is over; close the connection.
    CLOSED = enum.auto()


_DICT_LISTS = frozenset({"UPS", "VAR", "RW"})


def _group_kinds() -> dict[str, ReplyKind]:
    """The reply kind of requests outside the grammar, by their first word.

    Only where every command starting with that word shares one (``LIST FOO`` gets a list,
    ``SET FOO`` an OK line).
    """
    kinds: dict[str, set[ReplyKind]] = {}
    for command in COMMANDS:
        kinds.setdefault(command.words[0], set()).add(command.reply)
    return {word: kind.pop() for word, kind in kinds.items() if len(kind) == 1}


_GROUP_KINDS = _group_kinds()


def _grammar(request: Sequence[str]) -> tuple[ReplyKind, Echo | None]:
    """The reply kind and echo of a request, from the grammar (by its words only)."""
    command, _ = lookup(request)
    if command is not None:
        return command.reply, command.echo
    first = request[0].upper() if request else ""
    return _GROUP_KINDS.get(first, ReplyKind.LINE), None


def _shape(request: Sequence[str], command: str) -> Echo:
    """The echo of a ``GET``/``LIST`` request the grammar knows.

    Raises:
        LocalProtocolError: If ``request`` is not such a ``command`` request.
    """
    _, echo = _grammar(request)
    if echo is None or request[0].upper() != command:
        raise LocalProtocolError(f"not a {command} request with a known reply: {request}")
    return echo


def _echoes(want: Sequence[str], got: Sequence[str]) -> bool:
    """Whether ``got`` starts with ``want``, compared case-insensitively (``verify_resp``)."""
    return len(got) >= len(want) and all(
        a.lower() == b.lower() for a, b in zip(want, got, strict=False)
    )


def _fits(request: Sequence[str], shape: Echo, words: Sequence[str]) -> bool:
    """Whether a reply line (or list line) has the shape and echo ``request`` calls for."""
    want = request[1 : 1 + shape.words]
    if len(want) < shape.words:  # the request lacks the names: only ERR can answer it
        return False
    wide = len(words) > shape.words if shape.width is None else len(words) == shape.width
    return wide and _echoes(want, words)


@attrs.frozen
class _Expected:
    """A request sent and not yet answered."""

    request: tuple[str, ...]
    kind: ReplyKind
    shape: Echo | None


@attrs.frozen(kw_only=True)
class ClientReply:
    """One reply as the client reads it: a line, or a whole ``LIST`` block.

    Build it by hand only for tests; :meth:`ClientConnection.next_reply` returns replies
    already checked against their request, so the helpers below cannot then fail with
    :class:`RemoteProtocolError`.

    Attributes:
        request: The words of the request this reply answers.
        words: The reply line split and unescaped; for a list, its ``BEGIN LIST`` line.
        items: For a list, the words of each line between ``BEGIN LIST`` and ``END LIST``.
        raw: The bytes received, LF included (every line of a list).
    """

    request: tuple[str, ...]
    words: tuple[str, ...]
    items: tuple[tuple[str, ...], ...] = ()
    raw: bytes = b""

    @property
    def error_token(self) -> str | None:
        """The token of an ``ERR`` reply exactly as sent (known or not), else ``None``."""
        if len(self.words) >= 2 and self.words[0] == "ERR":
            return self.words[1]
        return None

    @property
    def error(self) -> ErrCode | None:
        """The ``ERR`` token as an :class:`ErrCode`; ``None`` on success or an unknown token."""
        token = self.error_token
        return None if token is None else _ERR_CODES.get(token)

    @property
    def ok(self) -> bool:
        """Whether the reply is not an ``ERR`` line."""
        return self.error_token is None

    @property
    def is_list(self) -> bool:
        """Whether the reply is a ``BEGIN LIST … END LIST`` block."""
        return self.words[:2] == ("BEGIN", "LIST")

    @property
    def tracking_id(self) -> str | None:
        """The id of an ``OK TRACKING <id>`` reply (SET VAR/INSTCMD with tracking on)."""
        if len(self.words) == 3 and self.words[:2] == ("OK", "TRACKING"):
            return self.words[2]
        return None

    def raise_for_error(self) -> None:
        """Raise if the reply is ``ERR <token>``.

        Raises:
            ReplyError: If it is.
        """
        if self.error_token is not None:
            raise ReplyError(self)

    def args(self) -> tuple[str, ...]:
        """The words of a ``GET`` reply after those echoing the request.

        ``GET TYPE u v`` → ``("RW", "STRING:32")``; ``GET TRACKING`` → ``("ON",)``.

        Raises:
            ReplyError: If the reply is ``ERR <token>``.
            LocalProtocolError: If the request is not a ``GET`` nuttrio knows.
            RemoteProtocolError: If the reply does not echo the request.
        """
        self.raise_for_error()
        shape = _shape(self.request, "GET")
        if not _fits(self.request, shape, self.words):
            raise RemoteProtocolError(f"reply {self.words} does not answer {self.request}")
        return self.words[shape.words :]

    def value(self) -> str:
        """The value of ``VAR``, ``UPSDESC``, ``DESC``, ``CMDDESC``, ``NUMLOGINS``, ``TRACKING``.

        ``GET VAR u v`` answered by ``VAR u v "OL CHRG"`` → ``"OL CHRG"``. The reply must
        echo the request case-insensitively, as libupsclient's ``verify_resp`` checks.

        Raises:
            ReplyError: If the reply is ``ERR <token>``.
            LocalProtocolError: If the request is not a ``GET`` with a one-word value.
            RemoteProtocolError: If the reply does not echo the request.
        """
        shape = _shape(self.request, "GET")
        if shape.width != shape.words + 1:
            raise LocalProtocolError(f"{self.request[:2]} has no single value; use args()")
        return self.args()[0]

    def rows(self) -> tuple[tuple[str, ...], ...]:
        """The lines of a list, each without the words echoing the request.

        ``LIST RANGE u v`` → ``(("10", "50"), ("60", "80"))``.

        Raises:
            ReplyError: If the reply is ``ERR <token>``.
            LocalProtocolError: If the request is not a ``LIST`` nuttrio knows.
            RemoteProtocolError: If a line does not echo the request.
        """
        self.raise_for_error()
        shape = _shape(self.request, "LIST")
        for item in self.items:
            if not _fits(self.request, shape, item):
                raise RemoteProtocolError(f"list line {item} does not answer {self.request}")
        return tuple(item[shape.words :] for item in self.items)

    def as_dict(self) -> dict[str, str]:
        """``LIST VAR``/``LIST RW`` as name → value; ``LIST UPS`` as name → description.

        Raises:
            ReplyError: If the reply is ``ERR <token>``.
            LocalProtocolError: If the request is not ``LIST UPS``, ``VAR`` or ``RW``.
            RemoteProtocolError: If a line does not echo the request.
        """
        self._need_list(_DICT_LISTS)
        return {name: value for name, value in self.rows()}

    def as_list(self) -> list[str]:
        """``LIST CMD`` (names), ``LIST ENUM`` (values) or ``LIST CLIENT`` (addresses).

        Raises:
            ReplyError: If the reply is ``ERR <token>``.
            LocalProtocolError: If the request is not ``LIST CMD``, ``ENUM`` or ``CLIENT``.
            RemoteProtocolError: If a line does not echo the request.
        """
        self._need_list(frozenset({"CMD", "ENUM", "CLIENT"}))
        return [row[0] for row in self.rows()]

    def _need_list(self, kinds: frozenset[str]) -> None:
        _shape(self.request, "LIST")
        if self.request[1].upper() not in kinds:
            raise LocalProtocolError(f"{' '.join(self.request[:2])} is not one of {sorted(kinds)}")


class ClientConnection:
    """Protocol state of one connection to a NUT server (``upsd`` or nuttrio).

    Args:
        max_line: Longest reply line accepted, in bytes without the LF.
        max_list_items: Most lines accepted in one ``LIST`` block.
    """

    def __init__(
        self, *, max_line: int = DEFAULT_MAX_LINE, max_list_items: int = DEFAULT_MAX_LIST_ITEMS
    ) -> None:
        self._max_line = max_line
        self._max_list_items = max_list_items
        self._buf = bytearray()
        self._scanned = 0  # bytes at the start of _buf known to hold no LF
        self._eof = False
        self._state = ClientState.OPEN
        # The kind of error raised once in the ERROR state: whose fault it was.
        self._error: type[ProtocolError] = RemoteProtocolError
        self._pending: deque[_Expected] = deque()
        self._tok = Tokenizer()
        # The list being read for the oldest request: its BEGIN LIST line, lines, bytes.
        self._header: tuple[str, ...] | None = None
        self._items: list[tuple[str, ...]] = []
        self._raw = bytearray()
        #: Whether the session runs inside TLS (``tls_started`` was called).
        self.tls = False

    @property
    def state(self) -> ClientState:
        """Where the connection is in its life."""
        return self._state

    @property
    def pending(self) -> tuple[tuple[str, ...], ...]:
        """The requests sent and not yet answered, oldest first."""
        return tuple(expected.request for expected in self._pending)

    # -- output ----------------------------------------------------------------------------

    def send(self, event: ev.Request) -> bytes:
        r"""Format one request event and record that its reply is expected.

        ``send(events.GetVar(ups="u", var="ups.status"))`` → ``b"GET VAR u ups.status\n"``;
        words are quoted only where NUT's tokenizer needs it (see
        :func:`~nuttrio.protocol.quoting.request_word`).

        Returns:
            The bytes to write; if they cannot be written, call :meth:`send_failed`.
            Nothing is recorded if this raises.

        Raises:
            LocalProtocolError: If the event is no request (``Rejected``) or a word cannot be
                sent, or as :meth:`send_words` says.
        """
        return self.send_words(*event.words())

    def send_words(self, *words: str) -> bytes:
        r"""Format a request given as words, for requests outside the grammar.

        ``send_words("SET", "VAR", "u", "v", "a b")`` → ``b'SET VAR u v "a b"\n'``. The
        reply is read in the shape the grammar gives those words (a ``LIST`` block for any
        ``LIST``, one line for an unknown command).

        Returns:
            The bytes to write. Nothing is recorded if this raises.

        Raises:
            LocalProtocolError: If there are no words or more than 32, a word is longer than
                512 characters or holds a character NUT drops (below 0x20, above 0x7F),
                the connection is not :attr:`ClientState.OPEN` or the server closed it, or
                a ``STARTTLS``/``LOGOUT`` request is still unanswered.
        """
        data = request_line(words)
        if self._state is not ClientState.OPEN:
            raise LocalProtocolError(f"cannot send in state {self._state.name}")
        if self._eof:
            raise LocalProtocolError("the server has closed the connection")
        if self._pending and self._pending[-1].kind in (ReplyKind.STARTTLS, ReplyKind.LOGOUT):
            last = " ".join(self._pending[-1].request)
            raise LocalProtocolError(f"wait for the reply to {last!r} before sending more")
        kind, shape = _grammar(words)
        self._pending.append(_Expected(tuple(words), kind, shape))
        return data

    def send_failed(self) -> None:
        """Record that the bytes of a request could not be written: the connection is unusable.

        It is then in :attr:`ClientState.ERROR`, and every later :meth:`send` or
        :meth:`next_reply` raises :class:`~nuttrio.protocol.errors.LocalProtocolError`.
        """
        self._state = ClientState.ERROR
        self._error = LocalProtocolError

    def _raise_if_failed(self) -> None:
        if self._state is ClientState.ERROR:
            raise self._error("the connection is in the ERROR state")

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes received from the server; ``b""`` means the server closed the connection.

        Raises:
            LocalProtocolError: If data follows the end of the stream.
        """
        if not data:
            self._eof = True
        elif self._eof:
            raise LocalProtocolError("data received after the end of the stream")
        elif self._state is not ClientState.ERROR:
            self._buf += data

    def next_reply(self) -> ClientReply | ClientSignal:
        """Return the reply to the oldest outstanding request, or a :class:`ClientSignal`.

        Replies come back in request order. After a successful ``STARTTLS`` reply this
        returns :attr:`ClientSignal.PAUSED` until :meth:`tls_started`; after the reply to
        ``LOGOUT``, or when the server closed with nothing outstanding,
        :attr:`ClientSignal.CLOSED`.

        Raises:
            RemoteProtocolError: If the server's bytes are not a reply to the request
                (wrong kind or echo, a ``BEGIN LIST`` not closed by its ``END LIST``, a line
                longer than ``max_line``, data nobody asked for, a close in mid-reply or with
                requests unanswered), or the connection was already in
                :attr:`ClientState.ERROR`. The connection is then in that state.
            LocalProtocolError: If no request is outstanding and the server has not closed.
        """
        self._raise_if_failed()
        if self._state is ClientState.PAUSED:
            return ClientSignal.PAUSED
        if not self._pending:
            if self._buf:
                self._fail(f"data nobody asked for: {bytes(self._buf[:80])!r}")
            if self._eof or self._state is ClientState.CLOSED:
                self._state = ClientState.CLOSED
                return ClientSignal.CLOSED
            raise LocalProtocolError("no request is waiting for a reply")
        expected = self._pending[0]
        try:
            reply = self._read(expected)
        except RemoteProtocolError:
            self._state = ClientState.ERROR
            raise
        if reply is None:
            if self._eof:
                partial = "in mid-reply" if self._buf or self._header else "before replying"
                self._fail(f"the server closed the connection {partial} to {expected.request}")
            return ClientSignal.NEED_DATA
        self._pending.popleft()
        if reply.ok and expected.kind is ReplyKind.STARTTLS:
            self._state = ClientState.PAUSED
        elif reply.ok and expected.kind is ReplyKind.LOGOUT:
            self._state = ClientState.CLOSED
        return reply

    # -- TLS -------------------------------------------------------------------------------

    @property
    def starttls_pending(self) -> bool:
        """Whether the server said ``OK STARTTLS`` and the TLS handshake must now be started."""
        return self._state is ClientState.PAUSED

    @property
    def trailing_data(self) -> bytes:
        """Bytes received and not yet read as replies.

        While :attr:`starttls_pending`, the bytes after ``OK STARTTLS``: they must be empty,
        since the client speaks first in TLS; anything else is the server's fault.
        """
        return bytes(self._buf)

    def tls_started(self) -> None:
        """Resume after a successful TLS handshake; :attr:`trailing_data` is discarded.

        Raises:
            LocalProtocolError: If the connection was not waiting for TLS.
        """
        if self._state is not ClientState.PAUSED:
            raise LocalProtocolError("the connection is not waiting for a TLS handshake")
        self._buf.clear()
        self._scanned = 0
        self._state = ClientState.OPEN
        self.tls = True

    # -- reading ---------------------------------------------------------------------------

    def _fail(self, message: str) -> NoReturn:
        self._state = ClientState.ERROR
        raise RemoteProtocolError(message)

    def _next_line(self) -> tuple[tuple[str, ...], bytes] | None:
        """The next physical line, split; ``None`` if no LF has arrived yet."""
        end = self._buf.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buf)
            if self._scanned > self._max_line:
                raise RemoteProtocolError(f"reply line longer than {self._max_line} bytes")
            return None
        if end > self._max_line:
            raise RemoteProtocolError(f"reply line longer than {self._max_line} bytes")
        raw = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        self._scanned = 0
        if _SIMPLE_LINE.fullmatch(raw):
            words = tuple((p or q).decode("ascii") for p, q in _SIMPLE_WORD.findall(raw))
            if len(words) <= ARG_LIMIT and all(len(word) <= WORD_LIMIT for word in words):
                return words, raw
        self._tok.feed(raw)
        item = self._tok.next_line()
        if isinstance(item, Line):
            return item.words, raw
        if item is None:
            raise RemoteProtocolError(f"reply line ends inside quotes or escaped: {raw!r}")
        detail = item.message if isinstance(item, LineError) else "too long"
        raise RemoteProtocolError(f"reply line {raw!r} cannot be split: {detail}")

    def _read(self, expected: _Expected) -> ClientReply | None:
        while (line := self._next_line()) is not None:
            words, raw = line
            if self._header is None:
                reply = self._first_line(expected, words, raw)
            else:
                reply = self._list_line(expected, self._header, words, raw)
            if reply is not None:
                return reply
        return None

    def _first_line(
        self, expected: _Expected, words: tuple[str, ...], raw: bytes
    ) -> ClientReply | None:
        request, shape = expected.request, expected.shape
        if words[:1] == ("ERR",):
            if len(words) < 2:
                raise RemoteProtocolError(f"ERR without a token in reply to {request}")
            return ClientReply(request=request, words=words, raw=raw)
        if expected.kind is ReplyKind.LIST:
            if words[:2] != ("BEGIN", "LIST"):
                raise RemoteProtocolError(f"{request} needs BEGIN LIST or ERR, got {raw!r}")
            if shape is not None:
                want = request[1 : 1 + shape.words]
                fits = len(want) == shape.words == len(words) - 2 and _echoes(want, words[2:])
            else:  # a list nuttrio does not know: BEGIN LIST repeats some of the request
                fits = len(words) > 2 and _echoes(words[2:], request[1:])
            if not fits:
                raise RemoteProtocolError(f"{raw!r} does not begin the list for {request}")
            self._header = words
            self._raw += raw
            return None
        if not words:
            raise RemoteProtocolError(f"empty reply line to {request}")
        if words[:2] == ("BEGIN", "LIST"):
            raise RemoteProtocolError(f"a list in reply to {request}")
        kind = expected.kind
        if kind is ReplyKind.LINE:
            fits = shape is None or _fits(request, shape, words)
        elif kind is ReplyKind.STARTTLS:
            fits = words[:2] == ("OK", "STARTTLS")
        else:  # OK, LOGOUT
            fits = words[0] == "OK"
        if not fits:
            raise RemoteProtocolError(f"{raw!r} does not answer {request}")
        return ClientReply(request=request, words=words, raw=raw)

    def _list_line(
        self, expected: _Expected, header: tuple[str, ...], words: tuple[str, ...], raw: bytes
    ) -> ClientReply | None:
        request, shape = expected.request, expected.shape
        if words[:2] == ("END", "LIST"):
            if len(words) != len(header) or not _echoes(header[2:], words[2:]):
                raise RemoteProtocolError(f"{raw!r} does not end {' '.join(header)!r}")
            self._raw += raw
            reply = ClientReply(
                request=request, words=header, items=tuple(self._items), raw=bytes(self._raw)
            )
            self._header = None
            self._items = []
            self._raw = bytearray()
            return reply
        if words[:2] == ("BEGIN", "LIST"):
            raise RemoteProtocolError(f"{' '.join(header)!r} not ended before {raw!r}")
        if shape is not None:
            fits = _fits(request, shape, words)
        else:
            fits = bool(words) and words[0] != "ERR"
        if not fits:
            raise RemoteProtocolError(f"{raw!r} is not a line of {' '.join(header)!r}")
        if len(self._items) >= self._max_list_items:
            raise RemoteProtocolError(f"list longer than {self._max_list_items} lines")
        self._items.append(words)
        self._raw += raw
        return None
