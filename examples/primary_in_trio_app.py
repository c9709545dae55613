"""Run nuttrio as a primary inside a Trio program and follow the manager's notifications.

Writes a minimal NUT configuration (one dummy-ups UPS, its upsd.users and upsmon.conf)
into a temporary directory, starts it with ``nursery.start(nuttrio.serve, ...)``, cuts the
power through the API and prints the ONBATT notification the manager sends, as a
NOTIFYCMD would receive it. SHUTDOWNCMD is ``true``: nothing is shut down.

python examples/primary_in_trio_app.py
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

import trio

import nuttrio
from nuttrio.state import CommandKind, DriverCommand

CONFIG = {
    "ups.conf": "[demo]\n  driver = dummy-ups\n  port = demo.dev\n",
    "demo.dev": "ups.status: OL\nbattery.charge: 100\n",
    "upsd.conf": "LISTEN 127.0.0.1 {port}\n",
    "upsd.users": "[mon]\n  password = secret\n  upsmon primary\n",
    "upsmon.conf": "MONITOR demo@127.0.0.1:{port} 1 mon secret primary\n"
    "SHUTDOWNCMD true\nPOWERDOWNFLAG {confdir}/killpower\n",
}


def free_port() -> int:
    """A TCP port nobody listens on now (upsd.conf's LISTEN takes no port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(confdir: Path) -> None:
    port = free_port()
    for name, template in CONFIG.items():
        text = template.format(port=port, confdir=confdir)
        (confdir / name).write_text(text)
        (confdir / name).chmod(0o600)
    options = nuttrio.DaemonOptions(confdir=confdir, role=nuttrio.Role.PRIMARY)
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(nuttrio.serve, options)
        async with daemon.notifications() as notes:
            print("the power fails")
            daemon.store.get("demo").submit(DriverCommand(CommandKind.SET, "ups.status", "OB"))
            with trio.fail_after(10):
                note = await notes.__anext__()
            print(f"manager: {note.type} {note.system}")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, Path(tmp))
    sys.exit(0)
