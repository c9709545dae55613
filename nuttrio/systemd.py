"""systemd's notify protocol (sd_notify(3)): datagrams to ``$NOTIFY_SOCKET``, over Trio.

The CLI says ``READY=1`` once serving, ``RELOADING=1`` (with ``MONOTONIC_USEC``) while a
SIGHUP reload runs and ``READY=1`` after it, ``STOPPING=1`` when it stops, and, when
``$WATCHDOG_USEC`` is set (for this process: ``$WATCHDOG_PID`` unset or ours),
``WATCHDOG=1`` every half period from a Trio task: if the event loop is stuck, the pings
stop and systemd notices. Without ``$NOTIFY_SOCKET`` every call does nothing, so nuttrio
runs the same without systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

import trio

__all__ = ["SystemdNotifier"]

log = logging.getLogger("nuttrio")


def _address(text: str) -> str | bytes:
    """A socket path, or an abstract-namespace name (``@name``: a NUL, then ``name``)."""
    return b"\0" + text[1:].encode() if text.startswith("@") else text


class SystemdNotifier:
    """Sends sd_notify messages, if systemd asked for them.

    Args:
        socket_path: ``$NOTIFY_SOCKET`` (``None``: not under systemd, nothing is sent).
        watchdog_usec: ``$WATCHDOG_USEC`` for this process, or ``None``.
    """

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self.socket_path = socket_path or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._warned = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> SystemdNotifier:
        """The notifier systemd's environment asks for (the watchdog only if it is ours)."""
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC", "").isdigit() and (pid is None or pid == str(os.getpid())):
            usec = int(env["WATCHDOG_USEC"])
        return cls(env.get("NOTIFY_SOCKET"), usec)

    async def notify(self, *assignments: str) -> bool:
        """Send ``assignments`` (``READY=1``...) as one datagram; ``True`` if sent.

        A failure (no such socket, systemd gone) is logged once as a warning and never
        raised: the daemon does not depend on systemd. Cancellation may drop the message.
        """
        if self.socket_path is None:
            await trio.lowlevel.checkpoint()
            return False
        data = "\n".join(assignments).encode()
        try:
            with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                await sock.connect(_address(self.socket_path))
                await sock.send(data)
        except OSError as exc:
            if not self._warned:
                log.warning("systemd notify socket %s: %s", self.socket_path, exc)
                self._warned = True
            return False
        return True

    async def ready(self, status: str | None = None) -> None:
        """``READY=1`` (and ``STATUS=``)."""
        await self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    async def reloading(self) -> None:
        """``RELOADING=1`` with ``MONOTONIC_USEC``, as Type=notify-reload wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        await self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    async def stopping(self) -> None:
        """``STOPPING=1``."""
        await self.notify("STOPPING=1")

    async def run_watchdog(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Send ``WATCHDOG=1`` every half watchdog period until cancelled.

        Returns at once when no watchdog is asked for. Runs on the event loop, so a stuck
        loop sends nothing (which is the point).
        """
        task_status.started()
        if self.watchdog_usec is None or self.socket_path is None:
            return
        period = self.watchdog_usec / 1e6 / 2
        while True:
            await self.notify("WATCHDOG=1")
            await trio.sleep(period)
