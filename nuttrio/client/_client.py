"""The Trio client for NUT servers (upsd, nuttrio), over :mod:`nuttrio.protocol`.

General theory of operation
---------------------------
Three layers, as trio-websocket has them:

* :func:`open_nut_client` is an async context manager: it connects and closes for you;
* :func:`connect_nut` opens the TCP connection (and STARTTLS if given an SSL context) and
  returns a :class:`NutClient` that the caller must :meth:`~NutClient.aclose`;
* :func:`wrap_nut_stream` turns any :class:`trio.abc.Stream` into a :class:`NutClient`
  (tests use :func:`trio.testing.memory_stream_pair`).

Each typed call sends one request event and reads its whole reply; calls on one client run
one at a time in call order. Values come back unescaped; an ``ERR <token>`` reply raises
:class:`NutError`, whose :attr:`~NutError.code` is the token; a server that breaks the
protocol raises :class:`~nuttrio.protocol.errors.RemoteProtocolError` and the connection is
closed.

Cancellation: a call cancelled while it waits for its turn has sent nothing and leaves the
connection as it was. A call cancelled (or failing) after it started writing closes the
connection, so that no later call can read the rest of an earlier reply: every later call
raises :class:`trio.ClosedResourceError`. A half-read connection is never left behind.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..nutconf.common import DEFAULT_PORT
from ..protocol import (
    ClientConnection,
    ClientReply,
    ClientSignal,
    ErrCode,
    RemoteProtocolError,
)
from ..protocol import events as ev
from ._tls import check_pin

__all__ = [
    "DEFAULT_PORT",
    "NutClient",
    "NutError",
    "TrackedResult",
    "connect_nut",
    "open_nut_client",
    "wrap_nut_stream",
]

#: Seconds between ``GET TRACKING`` polls while a tracked request is pending.
TRACKING_POLL_INTERVAL = 0.1
_RECEIVE_SIZE = 65536


class NutError(Exception):
    """The server refused a request with ``ERR <token>``.

    Attributes:
        code: The token exactly as sent (``"ACCESS-DENIED"``), known to nuttrio or not.
        error: The token as an :class:`~nuttrio.protocol.ErrCode`, or ``None`` if unknown.
        request: The words of the refused request.
    """

    def __init__(self, code: str, request: tuple[str, ...]) -> None:
        self.code = code
        self.error = next((c for c in ErrCode if c.value == code), None)
        self.request = request
        super().__init__(f"{' '.join(request)}: ERR {code}")


class TrackedResult:
    """The outcome of ``SET VAR`` or ``INSTCMD``; ``await`` it for the driver's answer.

    With ``SET TRACKING ON`` the server answers ``OK TRACKING <id>``: awaiting polls
    ``GET TRACKING <id>`` on the same client until the result is not ``PENDING`` and
    returns ``"SUCCESS"``, or raises :class:`NutError` (code ``FAILED``, ``UNKNOWN``,
    ``INVALID-ARGUMENT``...). Without tracking the server's plain ``OK`` is all there is:
    awaiting returns ``"OK"`` at once. Bound the wait with :func:`trio.fail_after`;
    cancelling it is as cancelling any call (see the module's notes).

    Attributes:
        id: The tracking id, or ``None`` when the request was not tracked.
    """

    def __init__(self, client: NutClient, tracking_id: str | None) -> None:
        self._client = client
        self.id = tracking_id

    async def wait(self) -> str:
        """Wait for the result (see the class); the same as ``await result``."""
        if self.id is None:
            await trio.lowlevel.checkpoint()
            return "OK"
        while True:
            status = await self._client.get_tracking(self.id)
            if status != "PENDING":
                return status
            await trio.sleep(TRACKING_POLL_INTERVAL)

    def __await__(self) -> Generator[Any, None, str]:
        return self.wait().__await__()


class NutClient:
    """One connection to a NUT server. Obtain it from the functions below.

    Args:
        stream: The byte stream to the server.
        host: The server's name, for the TLS certificate check of :meth:`starttls`.
    """

    def __init__(self, stream: trio.abc.Stream, *, host: str | None = None) -> None:
        self._stream = stream
        self._conn = ClientConnection()
        self._lock = trio.Lock()
        self._closed = False
        self.host = host

    @property
    def stream(self) -> trio.abc.Stream:
        """The stream in use (a :class:`trio.SSLStream` after :meth:`starttls`)."""
        return self._stream

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by :meth:`aclose`, LOGOUT or a failed call)."""
        return self._closed

    async def aclose(self) -> None:
        """Close the connection without LOGOUT (as a dropped client); idempotent."""
        self._closed = True
        await trio.aclose_forcefully(self._stream)

    # -- the round trip ------------------------------------------------------------------

    async def request(self, event: ev.Request) -> ClientReply:
        """Send one request and return its reply as read, ``ERR`` included (not raised).

        Raises:
            trio.ClosedResourceError: If the connection was closed before.
            RemoteProtocolError: If the server broke the protocol or closed in mid-reply.
            OSError, trio.BrokenResourceError: If the I/O failed.
            LocalProtocolError: If the event cannot be sent.
        """
        async with self._lock:
            if self._closed:
                raise trio.ClosedResourceError("the NUT connection is closed")
            data = self._conn.send(event)
            try:
                return await self._roundtrip(data)
            except BaseException:
                # Cancelled or failed after sending: never leave a half-read reply behind.
                self._conn.send_failed()
                await self.aclose()
                raise

    async def _roundtrip(self, data: bytes) -> ClientReply:
        await self._stream.send_all(data)
        while True:
            reply = self._conn.next_reply()
            if isinstance(reply, ClientReply):
                return reply
            if reply is ClientSignal.NEED_DATA:
                self._conn.receive_data(await self._stream.receive_some(_RECEIVE_SIZE))
            else:  # the ClientConnection returns replies before it pauses or closes
                raise RemoteProtocolError(f"no reply: the connection is {reply.name}")

    async def _call(self, event: ev.Request) -> ClientReply:
        reply = await self.request(event)
        token = reply.error_token
        if token is not None:
            raise NutError(token, reply.request)
        return reply

    # -- GET -----------------------------------------------------------------------------

    async def get_var(self, ups: str, var: str) -> str:
        """``GET VAR``: the variable's value."""
        return (await self._call(ev.GetVar(ups=ups, var=var))).value()

    async def get_type(self, ups: str, var: str) -> tuple[str, ...]:
        """``GET TYPE``: the type words, e.g. ``("RW", "STRING:32")``."""
        return (await self._call(ev.GetType(ups=ups, var=var))).args()

    async def get_desc(self, ups: str, var: str) -> str:
        """``GET DESC``: the variable's description."""
        return (await self._call(ev.GetDesc(ups=ups, var=var))).value()

    async def get_cmddesc(self, ups: str, cmd: str) -> str:
        """``GET CMDDESC``: the instant command's description."""
        return (await self._call(ev.GetCmdDesc(ups=ups, cmd=cmd))).value()

    async def get_upsdesc(self, ups: str) -> str:
        """``GET UPSDESC``: the UPS's description (``desc`` in ups.conf)."""
        return (await self._call(ev.GetUpsDesc(ups=ups))).value()

    async def num_logins(self, ups: str) -> int:
        """``GET NUMLOGINS``: how many clients are logged in to the UPS.

        Raises:
            RemoteProtocolError: If the count is not a number.
        """
        text = (await self._call(ev.GetNumLogins(ups=ups))).value()
        try:
            return int(text)
        except ValueError:
            raise RemoteProtocolError(f"NUMLOGINS {text!r} is not a number") from None

    async def get_tracking(self, tracking_id: str | None = None) -> str:
        """``GET TRACKING [id]``: ``ON``/``OFF``, or a result (``PENDING``, ``SUCCESS``)."""
        return (await self._call(ev.GetTracking(id=tracking_id))).value()

    # -- LIST ----------------------------------------------------------------------------

    async def list_ups(self) -> dict[str, str]:
        """``LIST UPS``: name → description, in the server's order."""
        return (await self._call(ev.ListUps())).as_dict()

    async def list_var(self, ups: str) -> dict[str, str]:
        """``LIST VAR``: name → value."""
        return (await self._call(ev.ListVar(ups=ups))).as_dict()

    async def list_rw(self, ups: str) -> dict[str, str]:
        """``LIST RW``: writable variable name → value."""
        return (await self._call(ev.ListRw(ups=ups))).as_dict()

    async def list_cmd(self, ups: str) -> list[str]:
        """``LIST CMD``: the instant commands."""
        return (await self._call(ev.ListCmd(ups=ups))).as_list()

    async def list_enum(self, ups: str, var: str) -> list[str]:
        """``LIST ENUM``: the values the variable may take."""
        return (await self._call(ev.ListEnum(ups=ups, var=var))).as_list()

    async def list_range(self, ups: str, var: str) -> list[tuple[str, str]]:
        """``LIST RANGE``: the (minimum, maximum) ranges the variable may take."""
        rows = (await self._call(ev.ListRange(ups=ups, var=var))).rows()
        return [(low, high) for low, high in rows]

    async def list_client(self, ups: str) -> list[str]:
        """``LIST CLIENT``: the addresses of the clients logged in to the UPS."""
        return (await self._call(ev.ListClient(ups=ups))).as_list()

    # -- session -------------------------------------------------------------------------

    async def username(self, name: str) -> None:
        """``USERNAME``."""
        await self._call(ev.Username(name=name))

    async def password(self, password: str) -> None:
        """``PASSWORD``."""
        await self._call(ev.Password(password=password))

    async def login(self, ups: str) -> None:
        """``LOGIN``: count this client as fed by the UPS (it appears in NUMLOGINS)."""
        await self._call(ev.Login(ups=ups))

    async def primary(self, ups: str) -> None:
        """``PRIMARY``, or its old name ``MASTER`` if the server does not know it."""
        try:
            await self._call(ev.Primary(ups=ups))
        except NutError as exc:
            if exc.error is not ErrCode.UNKNOWN_COMMAND:
                raise
            await self._call(ev.Primary(ups=ups, word="MASTER"))

    async def fsd(self, ups: str) -> None:
        """``FSD``: set the forced-shutdown flag."""
        await self._call(ev.Fsd(ups=ups))

    async def set_tracking(self, on: bool) -> None:
        """``SET TRACKING ON|OFF``: whether SET VAR and INSTCMD return tracking ids."""
        await self._call(ev.SetTracking(on=on))

    async def set_var(self, ups: str, var: str, value: str) -> TrackedResult:
        """``SET VAR``; ``await`` the result for the driver's answer when tracking is on."""
        reply = await self._call(ev.SetVar(ups=ups, var=var, value=value))
        return TrackedResult(self, reply.tracking_id)

    async def instcmd(self, ups: str, cmd: str, param: str | None = None) -> TrackedResult:
        """``INSTCMD``; ``await`` the result for the driver's answer when tracking is on."""
        reply = await self._call(ev.InstCmd(ups=ups, cmd=cmd, param=param))
        return TrackedResult(self, reply.tracking_id)

    async def ver(self) -> str:
        """``VER``: the server's version text."""
        return " ".join((await self._call(ev.Ver())).words)

    async def logout(self) -> None:
        """``LOGOUT``, then close the connection (the server closes its side too)."""
        try:
            await self._call(ev.Logout())
        finally:
            await self.aclose()

    async def starttls(
        self,
        ssl_context: ssl.SSLContext,
        *,
        pin: bytes | None = None,
        server_hostname: str | None = None,
        confirm: bool = True,
    ) -> None:
        """``STARTTLS``, then the TLS handshake; later calls run inside TLS.

        Certificate checks are the context's (``check_hostname`` uses ``server_hostname``,
        else the ``host`` given at connection), then the pin's if one is given. With
        ``confirm``, a ``VER`` follows the handshake, as NUT 2.8.6's clients send a
        follow-up query (NUT #3387): with TLS 1.3 a server that rejects the session (a
        client certificate it does not accept) only says so after the handshake, and this
        makes it fail here rather than at the first real request. A failed or cancelled
        handshake, pin check or confirmation closes the connection.

        Raises:
            NutError: If the server refused (``FEATURE-NOT-CONFIGURED``...); the
                connection stays usable in clear text.
            RemoteProtocolError: If the server sent data before the handshake.
            CertificatePinError: If the certificate is not the pinned one.
            ssl.SSLError: If the handshake failed for a TLS reason (the certificate did not
                verify...).
            trio.BrokenResourceError: If the connection broke during the handshake or the
                confirmation.
        """
        await self._call(ev.StartTLS())
        async with self._lock:
            try:
                if self._conn.trailing_data:
                    raise RemoteProtocolError("the server sent data after OK STARTTLS")
                name = server_hostname or self.host
                tls = trio.SSLStream(self._stream, ssl_context, server_hostname=name)
                try:
                    await tls.do_handshake()
                except trio.BrokenResourceError as exc:
                    # Say why (certificate verify failed...), not just "broken".
                    if isinstance(exc.__cause__, ssl.SSLError):
                        raise exc.__cause__ from None
                    raise
                if pin is not None:
                    check_pin(tls.getpeercert(binary_form=True), pin)
            except BaseException:
                self._conn.send_failed()
                await self.aclose()
                raise
            self._stream = tls
            self._conn.tls_started()
        if confirm:
            with contextlib.suppress(NutError):  # an ERR came through TLS: the session works
                await self.ver()


def wrap_nut_stream(stream: trio.abc.Stream, *, host: str | None = None) -> NutClient:
    """A :class:`NutClient` speaking over an open stream (nothing is sent yet).

    Args:
        stream: The connection to the server.
        host: The server's name, for certificate checks in :meth:`NutClient.starttls`.
    """
    return NutClient(stream, host=host)


async def connect_nut(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    ssl_context: ssl.SSLContext | None = None,
    pin: bytes | None = None,
) -> NutClient:
    """Connect to a NUT server; with ``ssl_context``, switch to TLS with STARTTLS first.

    The caller must :meth:`~NutClient.aclose` the client. If this is cancelled or fails,
    nothing is left open.

    Args:
        host: The server.
        port: Its port.
        ssl_context: Start TLS with this context (see
            :func:`~nuttrio.client.client_ssl_context`).
        pin: The SHA-256 fingerprint the server's certificate must have (with
            ``ssl_context``).

    Raises:
        OSError: If the connection failed (:class:`CertificatePinError` included).
        NutError: If the server refused STARTTLS.
    """
    stream = await trio.open_tcp_stream(host, port)
    client = wrap_nut_stream(stream, host=host)
    if ssl_context is not None:
        try:
            await client.starttls(ssl_context, pin=pin)
        except BaseException:
            await client.aclose()
            raise
    return client


@asynccontextmanager
async def open_nut_client(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    ssl_context: ssl.SSLContext | None = None,
    pin: bytes | None = None,
) -> AsyncIterator[NutClient]:
    """Connect (see :func:`connect_nut`), and close the connection on leaving the block.

    Entering blocks while connecting; leaving closes at once, without LOGOUT (call
    :meth:`NutClient.logout` first for a clean goodbye).
    """
    client = await connect_nut(host, port, ssl_context=ssl_context, pin=pin)
    try:
        yield client
    finally:
        await client.aclose()
