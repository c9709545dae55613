"""HTTP/1.1 over Trio streams with h11, and the websocket upgrade with trio-websocket.

No HTTP is parsed here: h11 reads requests and writes responses, wsproto (inside
trio-websocket) does the websocket handshake. A connection serves requests one after
the other (keep-alive) until the client closes it, an idle minute passes, or a request is
malformed (answered 400, then closed).

A websocket upgrade is honoured only as the first request of a connection (browsers open
a fresh connection for each websocket): the bytes read so far are handed back to
trio-websocket, which reads the handshake itself.
"""

from __future__ import annotations

import contextlib
import http
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio
import trio_websocket

__all__ = ["Request", "Response", "serve_http"]

log = logging.getLogger("nuttrio.web")

#: Largest request body accepted (a login or a command is a few hundred bytes).
MAX_BODY = 64 * 1024
#: Connections served at once (dashboards, API clients, scrapers); more are closed at once.
MAX_CONNECTIONS = 256
#: Seconds a keep-alive connection may stay idle, and a request may take to arrive.
IDLE_TIMEOUT = 60.0
#: Headers every response carries.
_COMMON_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)


_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


@attrs.frozen
class Request:
    """One HTTP request, as h11 read it.

    Attributes:
        method: ``GET``, ``POST``... (upper case).
        path: The path, without the query.
        query: Query parameters (each name with its values).
        headers: Header values by lower-cased name (repeated headers joined by ``,``).
        body: The body (at most :data:`MAX_BODY` bytes).
        peer: The client's address as text.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    peer: str

    @property
    def websocket(self) -> bool:
        """Whether this asks to upgrade to a websocket."""
        return "websocket" in self.headers.get("upgrade", "").lower()


@attrs.frozen
class Response:
    """An HTTP response to send.

    Attributes:
        status: The status code.
        body: The body.
        content_type: Its media type.
        headers: More headers (``set-cookie``...).
    """

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


#: Answers a request; raising gives the client a 500 (logged with its traceback).
Handler = Callable[[Request], Awaitable[Response]]
#: Serves an upgraded connection (accept or reject the request); returns when done.
WebSocketHandler = Callable[[Request, trio_websocket.WebSocketRequest], Awaitable[None]]


class _Replay(trio.abc.Stream):
    """A stream that first gives back bytes already read from it."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            data, self._prefix = self._prefix, b""
            return bytes(data)
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Closed(Exception):
    """The client went away or broke the protocol: stop serving this connection."""


class _HttpConnection:
    """One client connection: h11's state and the bytes read for its first request."""

    def __init__(self, stream: trio.abc.Stream, peer: str) -> None:
        self.stream = stream
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        self.raw = bytearray()
        self.first = True

    async def next_event(self) -> object:
        """The next h11 event, reading as needed (``_Closed`` on EOF, timeout, bad input)."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self.send_error(exc.error_status_hint, str(exc))
                raise _Closed from exc
            if event is not h11.NEED_DATA:
                return event
            with trio.move_on_after(IDLE_TIMEOUT) as scope:
                data = bytes(await self.stream.receive_some(16 * 1024))
            if scope.cancelled_caught:
                raise _Closed
            if self.first:
                self.raw += data
            self.h11.receive_data(data)

    async def read_request(self) -> Request | None:
        """Read one whole request; ``None`` when the client closed between requests."""
        event = await self.next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise _Closed
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]},{text}" if key in headers else text
        split = urlsplit(event.target.decode("latin-1"))
        request = Request(
            method=event.method.decode("ascii").upper(),
            path=split.path or "/",
            query=parse_qs(split.query),
            headers=headers,
            body=b"",
            peer=self.peer,
        )
        if request.websocket:
            return request
        return attrs.evolve(request, body=await self._read_body())

    async def _read_body(self) -> bytes:
        body = bytearray()
        while True:
            event = await self.next_event()
            if isinstance(event, h11.EndOfMessage):
                return bytes(body)
            if not isinstance(event, h11.Data):
                raise _Closed
            body += event.data
            if len(body) > MAX_BODY:
                await self.send_error(413, "request body too large")
                raise _Closed

    async def send(self, response: Response, *, head: bool = False) -> None:
        """Send ``response`` (without its body for HEAD)."""
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *_COMMON_HEADERS,
            *response.headers,
        ]
        reason = _REASONS.get(response.status, "")
        head_event = h11.Response(status_code=response.status, headers=headers, reason=reason)
        data = self.h11.send(head_event)
        if response.body and not head:
            data += self.h11.send(h11.Data(data=response.body))
        data += self.h11.send(h11.EndOfMessage())
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _Closed from exc

    async def send_error(self, status: int, text: str) -> None:
        """Send an error response if h11 still allows one (it may not, mid-response)."""
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"{status} {text}\n".encode()
            with contextlib.suppress(_Closed, h11.LocalProtocolError):
                await self.send(Response(status, body), head=False)


def _peer(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "?"


async def _tls(stream: trio.SocketStream, context: ssl.SSLContext) -> trio.SSLStream[Any] | None:
    """The TLS stream over ``stream`` once the handshake is done; ``None`` if it failed."""
    tls = trio.SSLStream(stream, context, server_side=True)
    with trio.move_on_after(IDLE_TIMEOUT):
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            log.info("web TLS handshake with %s failed: %s", _peer(stream), exc.__cause__ or exc)
            return None
        return tls
    return None


async def _serve_one(
    sock: trio.SocketStream,
    handler: Handler,
    on_websocket: WebSocketHandler,
    tls_context: ssl.SSLContext | None,
) -> None:
    stream: trio.abc.Stream = sock
    if tls_context is not None:
        tls = await _tls(sock, tls_context)
        if tls is None:
            await trio.aclose_forcefully(sock)
            return
        stream = tls
    conn = _HttpConnection(stream, _peer(sock))
    try:
        while True:
            request = await conn.read_request()
            if request is None:
                return
            if request.websocket:
                if not conn.first:
                    await conn.send_error(400, "open a new connection for a websocket")
                    return
                await _websocket(conn, request, on_websocket)
                return
            conn.first = False
            conn.raw.clear()
            try:
                response = await handler(request)
            except Exception:
                log.exception("web request %s %s failed", request.method, request.path)
                response = Response(500, b"500 internal error\n")
            await conn.send(response, head=request.method == "HEAD")
            if conn.h11.our_state is h11.MUST_CLOSE:
                return
            conn.h11.start_next_cycle()
    except _Closed:
        return
    except h11.LocalProtocolError:
        return
    finally:
        await trio.aclose_forcefully(stream)


async def _websocket(conn: _HttpConnection, request: Request, handler: WebSocketHandler) -> None:
    """Hand the connection to trio-websocket; a handshake that never completes times out."""
    async with trio.open_nursery() as nursery:
        replay = _Replay(conn.stream, bytes(conn.raw))
        ws_request = None
        with trio.move_on_after(IDLE_TIMEOUT):
            ws_request = await trio_websocket.wrap_server_stream(nursery, replay)
        if ws_request is not None:
            await handler(request, ws_request)
        nursery.cancel_scope.cancel()


async def serve_http(
    listeners: Sequence[trio.SocketListener],
    handler: Handler,
    on_websocket: WebSocketHandler,
    *,
    tls_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[Sequence[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP (HTTPS with ``tls_context``) on ``listeners`` (which it owns) until cancelled.

    Reports the listeners through ``task_status`` once accepting. A failing connection
    (or handler, or TLS handshake) never stops the server; cancellation closes every
    connection and the listeners.
    """
    slots = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def one(stream: trio.SocketStream) -> None:
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            log.warning("web: %d connections open; refusing one", MAX_CONNECTIONS)
            await trio.aclose_forcefully(stream)
            return
        try:
            await _serve_one(stream, handler, on_websocket, tls_context)
        finally:
            slots.release()

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, one, [listener])
        task_status.started(listeners)
