"""Run nuttrio's attachment daemon inside another Trio program and follow the UPS status.

python examples/embed_in_trio_app.py
"""

from __future__ import annotations

import trio

import nuttrio


async def main() -> None:
    options = nuttrio.DaemonOptions(listen=(("127.0.0.1", 0),))
    async with nuttrio.open_daemon(options) as daemon:
        host, port = daemon.addresses[0]
        print(f"serving on {host}:{port}; try: upsc sim@{host}:{port}")
        entry = daemon.store.get("sim")
        assert entry is not None
        with trio.move_on_after(10):
            async for snapshot in entry.watch():
                print(
                    "ups.status:",
                    snapshot.status,
                    "battery.charge:",
                    snapshot.value("battery.charge"),
                )


if __name__ == "__main__":
    trio.run(main)
