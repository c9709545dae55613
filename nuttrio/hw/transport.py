"""Transports for hardware drivers: a serial port as a Trio stream, blocking USB calls in threads.

General theory of operation
---------------------------
A serial driver gets a :class:`SerialStream` from :func:`open_serial`: pyserial opens the
port and sets its line settings (baud rate, data bits, parity, stop bits, flow control,
DTR/RTS), and the bytes then go through Trio on a duplicate of the port's descriptor,
non-blocking (:class:`trio.lowlevel.FdStream`), so a read that waits for the UPS never
blocks the nursery. The pyserial object stays open beside it for what is not I/O:
changing settings, the modem lines, flushing.

USB libraries (pyusb) only block. :class:`BlockingDevice` runs each call of one device in
a worker thread, one call at a time per device (a :class:`trio.CapacityLimiter` of 1),
so a slow control transfer never stalls the other drivers and two calls never interleave
on one device. Nothing here imports pyusb, and pyserial is imported only when a port is
opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

import attrs
import trio

if TYPE_CHECKING:
    import serial

__all__ = ["BlockingDevice", "SerialSettings", "SerialStream", "open_serial"]

T = TypeVar("T")


@attrs.frozen
class SerialSettings:
    """The line settings of a serial port.

    Attributes:
        baudrate: Bits per second.
        bytesize: Data bits (5 to 8).
        parity: ``N``, ``E``, ``O``, ``M`` or ``S``.
        stopbits: 1, 1.5 or 2.
        xonxoff: Software flow control.
        rtscts: Hardware flow control.
        dtr: Drive DTR high (``True``) or low (``False``); ``None`` leaves it as opened.
        rts: Drive RTS likewise (many UPS cables power themselves from it).
        exclusive: Lock the port (``flock``, as NUT's drivers do unless ``nolock``), so
            that a port another driver holds fails to open instead of being shared.
    """

    baudrate: int = 2400
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1
    xonxoff: bool = False
    rtscts: bool = False
    dtr: bool | None = None
    rts: bool | None = None
    exclusive: bool = False


class SerialStream(trio.abc.Stream):
    """A serial port as a :class:`trio.abc.Stream`. Obtained from :func:`open_serial`.

    Reads and writes go through Trio on a duplicate descriptor, non-blocking; the port
    itself (:attr:`port`) is kept for settings and modem lines. A read returns what has
    arrived (at least one byte); a serial line has no end of file, so ``b""`` is returned
    only after :meth:`aclose`.
    """

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self._stream = trio.lowlevel.FdStream(os.dup(port.fileno()))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``; cancellation may leave part of it written."""
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the port can take more bytes."""
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait for bytes from the port and return those available (up to ``max_bytes``).

        Cancellation loses nothing: bytes not yet returned stay in the port's buffer.
        """
        return await self._stream.receive_some(max_bytes)

    def discard_input(self) -> None:
        """Drop bytes received and not yet read (before a new request to the UPS)."""
        self.port.reset_input_buffer()

    async def aclose(self) -> None:
        """Close the stream and the port. Never blocks for long; always a checkpoint."""
        try:
            await self._stream.aclose()
        finally:
            self.port.close()


def _open_port(path: str, settings: SerialSettings) -> serial.Serial:
    import serial  # here, not at the top: only serial drivers need pyserial

    port = serial.Serial()
    port.port = path
    port.baudrate = settings.baudrate
    port.bytesize = settings.bytesize
    port.parity = settings.parity
    port.stopbits = settings.stopbits
    port.xonxoff = settings.xonxoff
    port.rtscts = settings.rtscts
    if settings.exclusive:
        port.exclusive = True
    port.timeout = 0
    # VMIN 1, VTIME 0: with pyserial's VMIN 0 a read of an empty port returns 0 bytes
    # (an end of file to Trio) instead of EAGAIN, so the stream would never wait.
    port.inter_byte_timeout = 0
    if settings.dtr is not None:
        port.dtr = settings.dtr
    if settings.rts is not None:
        port.rts = settings.rts
    port.open()
    return port


async def open_serial(path: str, settings: SerialSettings | None = None) -> SerialStream:
    """Open the serial port ``path`` with ``settings`` (pyserial sets them).

    The open runs in a worker thread (a USB serial adapter may take a while) and is not
    cancellable: once begun it completes and the stream is returned; a cancellation
    meanwhile arrives at the caller's next checkpoint (use the stream as ``async with``).

    Raises:
        OSError: If the port cannot be opened or configured (pyserial's
            ``SerialException`` is an ``OSError``), with the path in the message.
    """
    settings = settings or SerialSettings()
    port = await trio.to_thread.run_sync(_open_port, path, settings)
    try:
        return SerialStream(port)
    except BaseException:
        port.close()
        raise


class BlockingDevice:
    """Runs one device's blocking calls (pyusb) in worker threads, one call at a time.

    Example::

        usb = BlockingDevice("usb 001/004")
        report = await usb.call(handle.ctrl_transfer, 0xA1, 0x01, 0x0300, 0, 8, 1000)

    Args:
        name: What to call the device in messages.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._limiter = trio.CapacityLimiter(1)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in a worker thread, after this device's earlier calls end.

        Not cancellable once begun (the thread is never abandoned): the call runs to its
        end (give it a timeout of its own, as pyusb's transfers have) and returns its
        result; a cancellation meanwhile arrives at the caller's next checkpoint. A call
        still waiting for its turn is cancelled at once. The device is thus never touched
        by two threads, nor by a thread nobody waits for.

        Raises:
            Exception: Whatever ``fn`` raises.
        """
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
