"""Run nuttrio's attachment daemon inside another Trio program and follow a status change.

The program starts the built-in simulated UPS ``sim``, follows its status through the state
store (no polling) and over the NUT protocol (as ``upsc`` would), then drives the simulator
through the API, as a test harness or a dashboard's "simulate a power cut" button would:
the change shows up in both places.

python examples/embed_in_trio_app.py
"""

from __future__ import annotations

import sys

import trio

import nuttrio
from nuttrio.state import CommandKind, CommandStatus, DriverCommand


async def ask(stream: trio.SocketStream, request: str) -> str:
    """Send one NUT request and return its one-line reply."""
    await stream.send_all(f"{request}\n".encode())
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        reply += chunk
    return reply.decode().strip()


async def follow(entry: nuttrio.UpsEntry, seen: trio.MemorySendChannel[str]) -> None:
    """Print every status the store publishes for the UPS, and pass it on."""
    last = None
    async for snapshot in entry.watch():
        if snapshot.status != last:
            last = snapshot.status
            print(f"store:    ups.status is now {last!r}")
            await seen.send(last)


async def main() -> int:
    options = nuttrio.DaemonOptions(listen=(("127.0.0.1", 0),))
    try:
        async with nuttrio.open_daemon(options) as daemon:
            host, port = daemon.addresses[0]
            print(f"serving on {host}:{port}; try: upsc sim@{host}:{port}")
            entry = daemon.store.get("sim")
            assert entry is not None
            send, statuses = trio.open_memory_channel[str](10)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow, entry, send)
                with trio.fail_after(10):
                    assert await statuses.receive() == "OL"
                    client = await trio.open_tcp_stream(host, port)
                    print("protocol:", await ask(client, "GET VAR sim ups.status"))
                    # The power fails: tell the simulator, as SET VAR sim ups.status would.
                    command = DriverCommand(CommandKind.SET, "ups.status", "OB DISCHRG")
                    assert entry.submit(command)
                    assert await command.result.wait() is CommandStatus.SUCCESS
                    assert await statuses.receive() == "OB DISCHRG"
                    print("protocol:", await ask(client, "GET VAR sim ups.status"))
                    await client.aclose()
                nursery.cancel_scope.cancel()
    except nuttrio.ConfigError as exc:  # a bad NUT configuration, with file and line
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
