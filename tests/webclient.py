"""A small HTTP client for the web tests, on h11 over a Trio TCP stream (one request per call)."""

from __future__ import annotations

import json
import ssl
from typing import Any

import attrs
import h11
import trio


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    ssl_context: ssl.SSLContext | None = None,
    local_address: str | None = None,
) -> Reply:
    """Send one request (``body``: JSON data, sent as application/json); read the reply.

    ``local_address`` is the source address (``127.0.0.2``: another loopback peer).
    """
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port, local_address=local_address)
    if ssl_context is not None:
        stream = trio.SSLStream(stream, ssl_context, server_hostname=host)
    conn = h11.Connection(h11.CLIENT)
    data = b"" if body is None else json.dumps(body).encode()
    all_headers = {"host": f"{host}:{port}", "connection": "close", **(headers or {})}
    if body is not None:
        all_headers.setdefault("content-type", "application/json")
    all_headers["content-length"] = str(len(data))
    async with stream:
        out = conn.send(h11.Request(method=method, target=path, headers=list(all_headers.items())))
        out += conn.send(h11.Data(data=data)) if data else b""
        out += conn.send(h11.EndOfMessage())
        await stream.send_all(out)
        status, got, chunks = 0, {}, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                got = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return Reply(status, got, bytes(chunks))
