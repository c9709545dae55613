"""The NUT server on Trio: listeners, one task per connection, replies in single writes.

General theory of operation
---------------------------
Each connection runs :func:`handle_stream` in its own task, so a slow or stuck client only
ever delays itself. Bytes go into a sans-IO :class:`~nuttrio.protocol.ServerConnection`;
each request is answered synchronously by :class:`~nuttrio.server.core.ServerCore`; all the
replies to the requests found in one read go out in one ``send_all`` (Trio's socket streams
set TCP_NODELAY), so a ``LIST`` never waits for a delayed ACK.

Limits, as upsd 2.8.0 and better:

* a connection that sends no complete line for ``idle_timeout`` seconds (60, as upsd) is
  closed; partial bytes do not count as activity;
* a request line longer than ``max_line`` gets ``ERR TOO-LONG`` and the connection closes,
  so no client can make the server buffer without bound;
* a reply that the client does not read within ``send_timeout`` closes the connection;
* with ``max_clients`` set (from MAXCONN), further connections wait in the kernel's backlog
  until a slot frees, as with upsd; nothing is refused.
"""

from __future__ import annotations

import errno
import logging
import math
import ssl
from collections.abc import Sequence

import attrs
import trio

from ..protocol import DEFAULT_MAX_LINE, ServerConnection, Signal
from .core import ServerCore, Session

__all__ = ["ConnectionLimits", "handle_stream", "open_listeners", "serve_nut"]

log = logging.getLogger("nuttrio.server")

# What a misbehaving or vanished client can cause.
_CLIENT_ERRORS = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    OSError,
    ssl.SSLError,
)

_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@attrs.frozen
class ConnectionLimits:
    """Per-connection limits.

    Attributes:
        idle_timeout: Seconds without a complete request line before closing (upsd: 60).
        send_timeout: Seconds a reply may wait for the client to read it before closing.
        max_line: Longest request line accepted, in bytes.
        tls_handshake_timeout: Seconds allowed for the TLS handshake after STARTTLS.
        max_clients: Most connections served at once, or ``None`` for no limit.
    """

    idle_timeout: float = 60.0
    send_timeout: float = 60.0
    max_line: int = DEFAULT_MAX_LINE
    tls_handshake_timeout: float = 10.0
    max_clients: int | None = None


def _peer_address(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return "unknown"
    try:
        peer = sock.getpeername()
    except OSError:
        return "unknown"
    if isinstance(peer, tuple):
        return str(peer[0])
    return str(peer) or "unix"


async def handle_stream(
    core: ServerCore,
    stream: trio.abc.Stream,
    limits: ConnectionLimits | None = None,
    *,
    address: str | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Serve one client connection until it closes, times out or logs out.

    The connection is counted in ``core.stats`` (accepted, and open until it ends). The
    stream is closed on return. Errors of the client's making (resets, broken pipes,
    a failed or timed-out TLS handshake) end the connection quietly; any other error is
    logged with its traceback and ends only this connection. Nothing but cancellation
    propagates, so one connection can never stop the server.

    Args:
        core: Answers the requests.
        stream: The client's byte stream.
        limits: Timeouts and sizes; defaults as upsd.
        address: The peer address for LIST CLIENT (read from the socket if not given).
        tls_context: Server-side TLS context for STARTTLS, if TLS is configured.
    """
    limits = limits or ConnectionLimits()
    conn = ServerConnection(max_line=limits.max_line)
    session = Session(conn, address if address is not None else _peer_address(stream))
    stats = core.stats
    stats.connections_accepted += 1
    stats.connections_open += 1
    try:
        await _serve_session(core, session, stream, limits, tls_context)
    except _CLIENT_ERRORS as exc:
        log.debug("connection from %s ended: %r", session.address, exc)
    except Exception:
        log.exception("connection from %s failed", session.address)
    finally:
        stats.connections_open -= 1
        core.closed(session)
        await trio.aclose_forcefully(stream)


async def _serve_session(
    core: ServerCore,
    session: Session,
    stream: trio.abc.Stream,
    limits: ConnectionLimits,
    tls_context: ssl.SSLContext | None,
) -> None:
    conn = session.conn
    deadline = trio.current_time() + limits.idle_timeout
    # One cancel scope for the whole connection, its deadline moved as the state changes:
    # opening scopes per request costs more than answering a GET VAR.
    with trio.CancelScope() as scope:
        while True:
            out = bytearray()
            while True:
                event = conn.next_event()
                if isinstance(event, Signal):
                    break
                out += conn.send(core.handle(session, event))
                deadline = trio.current_time() + limits.idle_timeout
            if out:
                scope.deadline = trio.current_time() + limits.send_timeout
                await stream.send_all(out)
            if event is Signal.CLOSE:
                return
            if event is Signal.PAUSED:
                scope.deadline = math.inf  # the handshake has its own time limit
                stream = await _start_tls(conn, stream, limits, tls_context, session.address)
                continue
            scope.deadline = deadline
            conn.receive_data(await stream.receive_some(65536))
    log.debug("closing %s: idle, or it did not read its replies", session.address)


async def _start_tls(
    conn: ServerConnection,
    stream: trio.abc.Stream,
    limits: ConnectionLimits,
    tls_context: ssl.SSLContext | None,
    address: str,
) -> trio.SSLStream[trio.abc.Stream]:
    if tls_context is None:  # pragma: no cover - the core only grants STARTTLS with TLS
        raise trio.BrokenResourceError("STARTTLS granted without a TLS context")
    if conn.trailing_data:
        # Plaintext pipelined after STARTTLS would run as if it came over TLS: refuse.
        raise trio.BrokenResourceError(f"{address} sent data before the TLS handshake")
    tls = trio.SSLStream(stream, tls_context, server_side=True)
    with trio.fail_after(limits.tls_handshake_timeout):
        await tls.do_handshake()
    conn.tls_started()
    return tls


async def open_listeners(
    addresses: Sequence[tuple[str, int]],
) -> list[trio.SocketListener]:
    """Bind TCP listeners on ``(host, port)`` pairs (port 0 picks a free port).

    Raises:
        OSError: If any address cannot be bound; those already bound are closed.
    """
    listeners: list[trio.SocketListener] = []
    try:
        for host, port in addresses:
            listeners.extend(await trio.open_tcp_listeners(port, host=host, backlog=16))
    except BaseException:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        raise
    return listeners


async def _accept_loop(
    core: ServerCore,
    listener: trio.SocketListener,
    limits: ConnectionLimits,
    slots: trio.Semaphore | None,
    tls_context: ssl.SSLContext | None,
    nursery: trio.Nursery,
) -> None:
    while True:
        if slots is not None:
            await slots.acquire()
        try:
            stream = await listener.accept()
        except OSError as exc:
            if slots is not None:
                slots.release()
            if exc.errno in _ACCEPT_RETRY_ERRNOS:
                log.error("accept failed (%s); retrying", exc)
                await trio.sleep(0.1)
                continue
            raise
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        nursery.start_soon(_run_handler, core, stream, limits, slots, tls_context)


async def _run_handler(
    core: ServerCore,
    stream: trio.SocketStream,
    limits: ConnectionLimits,
    slots: trio.Semaphore | None,
    tls_context: ssl.SSLContext | None,
) -> None:
    try:
        await handle_stream(core, stream, limits, tls_context=tls_context)
    finally:
        if slots is not None:
            slots.release()


async def serve_nut(
    core: ServerCore,
    listeners: Sequence[trio.SocketListener],
    limits: ConnectionLimits | None = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[Sequence[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve NUT clients on ``listeners`` until cancelled.

    Reports the listeners through ``task_status`` once accepting. On cancellation every
    connection is closed and the listeners too. A failure of one connection never stops
    the server; a listener failing with anything but a temporary resource shortage does.

    Args:
        core: Answers the requests.
        listeners: Bound listeners (see :func:`open_listeners`); this function owns them.
        limits: Connection limits.
        tls_context: Server-side TLS context, if STARTTLS is configured.
        task_status: Receives the listeners when serving has begun.
    """
    limits = limits or ConnectionLimits()
    slots = trio.Semaphore(limits.max_clients) if limits.max_clients else None
    try:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(
                    _accept_loop, core, listener, limits, slots, tls_context, nursery
                )
            task_status.started(listeners)
            await trio.sleep(math.inf)
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
