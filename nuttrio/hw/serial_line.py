"""Request and reply over a serial port that may vanish: what the text-protocol drivers share.

A :class:`SerialLine` opens its port on first use (pyserial sets the line, I/O goes through
Trio, see :mod:`nuttrio.hw.transport`), sends a request and collects the reply up to an
end byte or a timeout, as NUT's ``ser_send``/``ser_get_buf`` do. When the port fails (a USB
adapter unplugged, a pty whose other side closed), the line closes itself and raises
:class:`PortLost`; the next request opens the port again, so a driver's polls say the
device is silent (its data goes stale) and come back by themselves when the port does.
"""

from __future__ import annotations

import contextlib
import termios
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from ..state import CommandStatus, DriverCommand, DriverLink
from .base import DriverFailed
from .kit import DeviceSilent, PolledState, every, publish_difference, run_polling_driver
from .transport import SerialSettings, SerialStream, open_serial

__all__ = ["STARTUP_PATIENCE", "PortLost", "SerialLine", "run_serial_driver"]

#: Seconds a serial driver's start may take before the UPS is shown (stale) anyway: long
#: enough for any UPS that answers (an APC Smart start-up is some 40 queries), shorter
#: than a silent one's detection (blazer: 12 s, apcsmart: 15 s).
STARTUP_PATIENCE = 10.0


class PortLost(DeviceSilent):
    """The port could not be opened or failed; it is closed and reopened on the next use."""


Opener = Callable[[str, SerialSettings], Awaitable[SerialStream]]


class SerialLine:
    """A serial port for one driver, opened lazily and reopened after a failure.

    Args:
        path: The port (``port`` in ups.conf).
        settings: Its line settings.
        opener: Opens the port (:func:`open_serial`; tests may give another).
        settle: Seconds to wait after each open (NUT waits 100 ms for the cable power).
    """

    def __init__(
        self,
        path: str,
        settings: SerialSettings,
        *,
        opener: Opener = open_serial,
        settle: float = 0.0,
    ) -> None:
        self.path = path
        self.settings = settings
        self.opener = opener
        self.settle = settle
        self._stream: SerialStream | None = None
        self._pending = b""
        #: Bytes dropped before requests (stray input), for diagnostics.
        self.discarded = 0

    @property
    def is_open(self) -> bool:
        """Whether the port is open now."""
        return self._stream is not None

    async def open(self) -> SerialStream:
        """Open the port unless it is open.

        Raises:
            PortLost: If it cannot be opened (the message names the port).
        """
        if self._stream is None:
            try:
                self._stream = await self.opener(self.path, self.settings)
            except OSError as exc:
                raise PortLost(f"cannot open {self.path}: {exc}") from exc
            self._pending = b""
            if self.settle:
                await trio.sleep(self.settle)
        return self._stream

    async def aclose(self) -> None:
        """Close the port (if open). Never raises for a port already gone."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                await stream.aclose()

    async def _lost(self, exc: BaseException | None) -> PortLost:
        await self.aclose()
        return PortLost(f"{self.path}: {exc or 'the port hung up'}")

    async def send(self, data: bytes) -> None:
        """Send ``data``.

        Raises:
            PortLost: If the port cannot be opened or fails (it is closed then).
        """
        stream = await self.open()
        try:
            await stream.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise await self._lost(exc) from exc

    async def flush_input(self) -> None:
        """Drop what was received and not read yet (NUT's ``ser_flush_io``).

        Raises:
            PortLost: If the port fails (it is closed then).
        """
        self.discarded += len(self._pending)
        self._pending = b""
        if self._stream is not None:
            try:
                self._stream.discard_input()
            except (OSError, termios.error) as exc:
                raise await self._lost(exc) from exc

    async def read_until(self, end: bytes, within: float, *, drop: bytes = b"") -> bytes:
        r"""Read up to and including the first byte of ``end``, or what came ``within`` seconds.

        Args:
            end: The bytes that end a reply (any one of them).
            within: Seconds to wait for the end (from now).
            drop: Bytes thrown away as they arrive (``\r`` for APC Smart, as IGNCR).

        Returns:
            The reply with its end byte, or what arrived before the timeout (maybe ``b""``).

        Raises:
            PortLost: If the port fails (it is closed then).
        """
        stream = await self.open()
        deadline = trio.current_time() + within
        while True:
            cut = min((i for i in (self._pending.find(b) for b in end) if i >= 0), default=-1)
            if cut >= 0:
                reply, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
                return reply
            chunk = b""
            with trio.move_on_at(deadline):
                try:
                    chunk = await stream.receive_some()
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise await self._lost(exc) from exc
                if not chunk:
                    raise await self._lost(None)
            if not chunk:
                reply, self._pending = self._pending, b""
                return reply
            for byte in drop:
                chunk = chunk.replace(bytes([byte]), b"")
            self._pending += chunk

    async def exchange(self, request: bytes, end: bytes, within: float) -> bytes:
        """Flush the input, send ``request``, return the reply (see :meth:`read_until`).

        Raises:
            PortLost: If the port cannot be opened or fails.
        """
        await self.open()
        await self.flush_input()
        await self.send(request)
        return await self.read_until(end, within)


@contextlib.asynccontextmanager
async def shutdown_session(line: SerialLine, ups: str) -> AsyncIterator[SerialLine]:
    """``line`` for one driver's shutdown sequence (its ``-k``), closed at the end.

    A device that goes silent or a port that is lost ends it with
    :class:`~nuttrio.hw.base.DriverFailed` naming the UPS; cancellation closes the port too.
    """
    try:
        yield line
    except DeviceSilent as exc:
        raise DriverFailed(f"UPS {ups}: {exc}") from exc
    finally:
        with trio.CancelScope(shield=True):
            await line.aclose()


class _StartedOnce:
    """Forwards the first ``started()`` to the real task status; later ones do nothing."""

    def __init__(self, task_status: trio.TaskStatus[None]) -> None:
        self._task_status = task_status
        self.done = False

    def started(self, value: None = None) -> None:
        if not self.done:
            self.done = True
            self._task_status.started()


async def run_serial_driver(
    line: SerialLine,
    core: PolledState,
    link: DriverLink,
    poll: Callable[[float], Awaitable[None]],
    execute: Callable[[DriverCommand], Awaitable[CommandStatus]],
    *,
    pollinterval: float,
    stale_after: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    patience: float = STARTUP_PATIENCE,
) -> None:
    """The kit's polling loop for a serial driver, which may take long to detect its UPS.

    As :func:`~nuttrio.hw.kit.run_polling_driver` (polls every ``pollinterval`` from now),
    except that ``task_status.started()`` comes after at most ``patience`` seconds: if the
    first poll (detection tries every protocol with a timeout each) is still running then,
    the state so far is published as stale and the daemon goes on; the UPS turns fresh
    when the poll ends well.

    Cancellation closes the port (shielded, never long).

    Raises:
        Exception: What ``poll`` or ``execute`` raise other than DeviceSilent.
    """
    once = _StartedOnce(task_status)

    async def impatient() -> None:
        await trio.sleep(patience)
        if not once.done:
            publish_difference(link, core, stale=True)
            once.started()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(impatient)
            await run_polling_driver(
                core,
                link,
                poll,
                execute,
                every(pollinterval, trio.current_time()),
                stale_after=stale_after,
                task_status=once,
            )
    finally:
        with trio.CancelScope(shield=True):
            await line.aclose()
