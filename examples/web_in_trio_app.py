"""Serve nuttrio's dashboard, JSON API and /metrics for a UPS your own Trio program feeds.

No NUT server and no driver process: the program makes a state store, publishes a UPS into
it from Python (as a driver would), serves the web on a free loopback port, then reads
its own API and stream once, flips the UPS to battery, and sees the change pushed.

python examples/web_in_trio_app.py
"""

from __future__ import annotations

import json
import sys

import trio
import trio_websocket

from nuttrio.state import StateStore
from nuttrio.web import WebSource, serve_web


async def http_get(port: int, path: str) -> str:
    """A one-shot HTTP/1.0 GET (enough for an example; use any HTTP client)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode()


async def main() -> int:
    store = StateStore()
    entry = store.add("garage", "The garage UPS")
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    with entry.connect() as link:
        with link.update() as u:  # what a driver publishes
            u.set("ups.status", "OL")
            u.set("battery.charge", "97")
            u.dumped = True
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_web, WebSource(store), listeners)
            port = listeners[0].socket.getsockname()[1]
            print("dashboard:", f"http://127.0.0.1:{port}/")
            print("GET /api/v1/ups/garage:", json.loads(await http_get(port, "/api/v1/ups/garage")))
            url = f"ws://127.0.0.1:{port}/api/v1/stream"
            async with trio_websocket.open_websocket_url(url) as ws:
                hello = json.loads(await ws.get_message())
                print("stream hello:", hello["ups"][0]["status"])
                with link.update() as u:
                    u.set("ups.status", "OB DISCHRG")
                while (message := json.loads(await ws.get_message()))["type"] != "ups":
                    pass
                print("stream pushed:", message["ups"]["status_words"])
            metrics = await http_get(port, "/metrics")
            print(next(m for m in metrics.splitlines() if 'flag="OB"' in m))
            nursery.cancel_scope.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
