"""The NUT server on Trio: listeners, one task per connection, replies in single writes.

General theory of operation
---------------------------
Each connection runs :func:`handle_stream` in its own task, so a slow or stuck client only
ever delays itself. Bytes go into a sans-IO :class:`~nuttrio.protocol.ServerConnection`;
each request is answered synchronously by :class:`~nuttrio.server.core.ServerCore`; the
replies to the requests found in one read go out together in one ``send_all`` (Trio's socket
streams set TCP_NODELAY), so a ``LIST`` never waits for a delayed ACK. Pipelined input is
answered in slices of :data:`SLICE_REQUESTS` requests with a checkpoint between them, so a
client that floods the server (64 KiB of empty lines, thousands of ``LIST VAR`` in one
write) costs the other connections about a millisecond, not the whole read's worth.

Limits, as upsd 2.8.0 and better:

* a connection that sends no complete line for ``idle_timeout`` seconds (60, as upsd) is
  closed; partial bytes do not count as activity;
* a request line longer than ``max_line`` gets ``ERR TOO-LONG`` and the connection closes,
  so no client can make the server buffer without bound;
* a reply that the client does not read within ``send_timeout`` closes the connection;
* with ``max_clients`` set (from MAXCONN), further connections wait in the kernel's backlog
  until a slot frees, as with upsd; nothing is refused;
* one peer address outside loopback holds at most ``max_per_peer`` connections (default 32);
  a further one is closed at once;
* a failed authentication's refusal waits for the delay the core's throttle asks for
  (only that connection waits).

STARTTLS: after ``OK STARTTLS`` the handshake runs under ``tls_handshake_timeout``; bytes
the client pipelined after ``STARTTLS`` (plaintext that would otherwise run as if it came
over TLS) close the connection.
"""

from __future__ import annotations

import errno
import logging
import math
import resource
import socket
import ssl
from collections.abc import Sequence

import attrs
import trio

from ..guard import PeerCounter
from ..nutconf.upsd_conf import DEFAULT_MAXCONN_PER_PEER, LOOPBACK_NETWORKS, IPNetwork
from ..protocol import DEFAULT_MAX_LINE, ServerConnection, Signal
from .core import ServerCore, Session

__all__ = [
    "ConnectionLimits",
    "ListenAddress",
    "ListenError",
    "handle_stream",
    "open_listeners",
    "serve_nut",
]

log = logging.getLogger("nuttrio.server")

# What a misbehaving or vanished client can cause.
_CLIENT_ERRORS = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    OSError,
    ssl.SSLError,
)

#: Pipelined requests answered before the connection lets the others run: about 0.2 ms of
#: work for GET VAR, under 1 ms for LIST VAR of a 30-variable UPS (bench/bench_fairness.py).
SLICE_REQUESTS = 32

_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
#: upsd's listen() backlog.
_BACKLOG = 16


@attrs.frozen
class ConnectionLimits:
    """Per-connection limits.

    Attributes:
        idle_timeout: Seconds without a complete request line before closing (upsd: 60).
        send_timeout: Seconds a reply may wait for the client to read it before closing.
        max_line: Longest request line accepted, in bytes.
        tls_handshake_timeout: Seconds allowed for the TLS handshake after STARTTLS.
        max_clients: Most connections served at once, or ``None`` for no limit.
        max_per_peer: Most connections one address outside ``per_peer_exempt`` may hold
            at once, or ``None`` for no limit (upsd.conf ``NUTTRIO_MAXCONN_PER_PEER``).
        per_peer_exempt: Networks without the per-peer limit (loopback).
    """

    idle_timeout: float = 60.0
    send_timeout: float = 60.0
    max_line: int = DEFAULT_MAX_LINE
    tls_handshake_timeout: float = 10.0
    max_clients: int | None = None
    max_per_peer: int | None = DEFAULT_MAXCONN_PER_PEER
    per_peer_exempt: tuple[IPNetwork, ...] = LOOPBACK_NETWORKS


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
            event: Signal | None = None
            left = SLICE_REQUESTS
            while left:
                request = conn.next_event()
                if isinstance(request, Signal):
                    event = request
                    break
                reply = core.handle(session, request)
                if session.reply_delay:
                    await _throttled(stream, out, session.reply_delay, limits, scope)
                    session.reply_delay = 0.0
                out += conn.send(reply)
                left -= 1
            if out:
                now = trio.current_time()
                deadline = now + limits.idle_timeout
                scope.deadline = now + limits.send_timeout
                await stream.send_all(out)
            if event is None:
                # A full slice: let the other connections run before the next one.
                await trio.lowlevel.checkpoint()
                continue
            if event is Signal.CLOSE:
                return
            if event is Signal.PAUSED:
                scope.deadline = math.inf  # the handshake has its own time limit
                stream = await _start_tls(conn, stream, limits, tls_context, session.address)
                continue
            scope.deadline = deadline
            conn.receive_data(await stream.receive_some(65536))
    log.debug("closing %s: idle, or it did not read its replies", session.address)


async def _throttled(
    stream: trio.abc.Stream,
    out: bytearray,
    delay: float,
    limits: ConnectionLimits,
    scope: trio.CancelScope,
) -> None:
    """Send the replies so far, then wait ``delay`` before the refusal that follows."""
    scope.deadline = trio.current_time() + delay + limits.send_timeout
    if out:
        await stream.send_all(out)
        out.clear()
    await trio.sleep(delay)


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


@attrs.frozen
class ListenAddress:
    """An address to listen on, and where it was asked for (for the messages).

    Attributes:
        host: A host name or address (resolved passively, every family); ``""`` for all.
        port: The TCP port; 0 picks a free one.
        origin: Where it comes from: ``/etc/nut/upsd.conf:3``, ``--listen [::1]:3493``...
        required: Fail when this one cannot be bound, even if others can (a command-line
            address); otherwise it is logged and skipped, as upsd 2.8.0 does.
    """

    host: str
    port: int
    origin: str
    required: bool = False


class ListenError(OSError):
    """No address could be bound, or a required one could not; the message says which."""


async def open_listeners(
    addresses: Sequence[tuple[str, int] | ListenAddress],
) -> list[trio.SocketListener]:
    """Bind TCP listeners (backlog 16, as upsd) on every address each entry resolves to.

    An entry counts as bound when at least one of its resolved addresses is; each address
    that fails is logged as a warning naming the entry's origin. A ``(host, port)`` pair is
    a required entry.

    Raises:
        ListenError: If a required entry, or every entry, could not be bound; the message
            gives each failure with its origin and address. Those already bound are closed.
    """
    entries = [_as_listen_address(item) for item in addresses]
    listeners: list[trio.SocketListener] = []
    failures: list[str] = []
    try:
        for entry in entries:
            bound, failed = await _bind_entry(entry)
            if not bound and entry.required:
                raise ListenError("; ".join(failed))
            listeners.extend(bound)
            for message in failed:
                log.warning("%s", message)
            if not bound:
                failures.extend(failed)
        if not listeners:
            raise ListenError("no listener could be bound: " + "; ".join(failures))
    except BaseException:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        raise
    return listeners


def _as_listen_address(item: tuple[str, int] | ListenAddress) -> ListenAddress:
    if isinstance(item, ListenAddress):
        return item
    host, port = item
    return ListenAddress(host, port, f"{host}:{port}", required=True)


async def _bind_entry(entry: ListenAddress) -> tuple[list[trio.SocketListener], list[str]]:
    """Bind every address ``entry`` resolves to; returns the listeners and the failures."""
    where = f"{entry.origin}: not listening on {entry.host or '*'} port {entry.port}"
    try:
        infos = await trio.socket.getaddrinfo(
            entry.host or None, entry.port, type=trio.socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        return [], [f"{where}: {exc}"]
    bound: list[trio.SocketListener] = []
    failed: list[str] = []
    seen = set()
    for family, type_, proto, _, sockaddr in infos:
        if sockaddr in seen:
            continue
        seen.add(sockaddr)
        try:
            bound.append(await _bind_one(family, type_, proto, sockaddr))
        except OSError as exc:
            address = str(sockaddr[0])
            detail = "" if address == entry.host else f" ({address})"
            failed.append(f"{where}{detail}: {exc}")
    return bound, failed


async def _bind_one(
    family: int,
    type_: int,
    proto: int,
    sockaddr: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
) -> trio.SocketListener:
    """One listening socket, set up as :func:`trio.open_tcp_listeners` does."""
    sock = trio.socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        await sock.bind(sockaddr)
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


#: What an accept failure from a resource shortage waits at first, and at most.
ACCEPT_BACKOFF = (0.1, 1.0)


def _shortage(exc: OSError) -> str:
    """Which limit an accept failure hit, for the log."""
    if exc.errno == errno.EMFILE:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return f"the process's open-file limit (RLIMIT_NOFILE soft {soft}, hard {hard})"
    if exc.errno == errno.ENFILE:
        return "the system's open-file limit (fs.file-max)"
    return "kernel memory for sockets"


async def _accept_loop(
    core: ServerCore,
    listener: trio.SocketListener,
    limits: ConnectionLimits,
    slots: trio.Semaphore | None,
    tls_context: ssl.SSLContext | None,
    nursery: trio.Nursery,
    peers: PeerCounter,
) -> None:
    """Accept connections and start a handler for each, until cancelled.

    A resource shortage (EMFILE, ENFILE, ENOMEM, ENOBUFS) is logged once, naming the limit,
    and retried with a back-off (0.1 s doubling up to 1 s), as trio's serve_listeners
    sleeps on them; any other accept error propagates and stops the server.
    """
    failures = 0
    while True:
        if slots is not None:
            await slots.acquire()
        try:
            stream = await listener.accept()
        except OSError as exc:
            if slots is not None:
                slots.release()
            if exc.errno not in _ACCEPT_RETRY_ERRNOS:
                raise
            if not failures:
                log.error(
                    "accept failed: %s: %s was reached; %d connections open; retrying",
                    exc.strerror,
                    _shortage(exc),
                    core.stats.connections_open,
                )
            failures += 1
            first, most = ACCEPT_BACKOFF
            await trio.sleep(min(first * 2 ** min(failures - 1, 10), most))
            continue
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        if failures:
            log.warning("accepting connections again after %d failed attempts", failures)
            failures = 0
        nursery.start_soon(_run_handler, core, stream, limits, slots, tls_context, peers)


async def _run_handler(
    core: ServerCore,
    stream: trio.SocketStream,
    limits: ConnectionLimits,
    slots: trio.Semaphore | None,
    tls_context: ssl.SSLContext | None,
    peers: PeerCounter,
) -> None:
    address = _peer_address(stream)
    try:
        if not peers.open(address):
            _log_refused(peers, address)
            await trio.aclose_forcefully(stream)
            return
        try:
            await handle_stream(core, stream, limits, address=address, tls_context=tls_context)
        finally:
            peers.close(address)
    finally:
        if slots is not None:
            slots.release()


def _log_refused(peers: PeerCounter, address: str) -> None:
    """Log a connection over the per-peer cap: the 1st, 2nd, 4th, 8th... of each address."""
    refused = peers.refused[address]
    if refused & (refused - 1) == 0:
        log.warning(
            "%s holds %d connections (NUTTRIO_MAXCONN_PER_PEER); closed a further one (%d so far)",
            address,
            peers.count(address),
            refused,
        )


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
    peers = PeerCounter(limits.max_per_peer, limits.per_peer_exempt)
    try:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(
                    _accept_loop, core, listener, limits, slots, tls_context, nursery, peers
                )
            task_status.started(listeners)
            await trio.sleep(math.inf)
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
