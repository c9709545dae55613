"""Find serial ports where a UPS answers, with only requests that cannot change it.

Each port is opened at 2400 bps 8N1 with the modem lines as the system leaves them (as
NUT's apcsmart does), then:

1. APC Smart: ``Y`` (the request every APC driver starts with; it changes only how the
   UPS talks, not what it does). ``SM`` back means an APC Smart UPS; its model (``^A``)
   and serial number (``n``) are then asked.
2. Megatec/Q1: a lone CR first (it ends whatever the ``Y`` began, for a Megatec unit an
   unknown command that is only echoed), then ``Q1`` (the status query). A well-formed
   status reply means a Megatec unit; its vendor data (``I``) is then asked.

Nothing else is ever sent: no command, no setting, never ``Q`` alone (a Megatec
unit's beeper toggle). Ports are probed concurrently; a port that cannot be opened is
reported and skipped.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence

import attrs
import trio

from .kit import DeviceSilent
from .serial_line import SerialLine
from .transport import SerialSettings

__all__ = ["Found", "candidate_ports", "probe", "scan", "ups_conf_section"]

_PATTERNS = ("/dev/ttyS[0-9]*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/serial/by-id/*")


@attrs.frozen
class Found:
    """A port where a UPS answered.

    Attributes:
        port: The port as given (or found).
        driver: The NUT driver to use (``apcsmart``, or ``nutdrv_qx`` for Megatec units).
        protocol: What answered, in words.
        model: The model the UPS gave, if any.
        serial: Its serial number, if it gave one.
        error: Why the port could not be probed (then ``driver`` is empty).
        match: More ups.conf keys that pick this UPS (a USB one's ``vendorid``...).
    """

    port: str
    driver: str = ""
    protocol: str = ""
    model: str | None = None
    serial: str | None = None
    error: str | None = None
    match: tuple[tuple[str, str], ...] = ()


def candidate_ports() -> list[str]:
    """The serial ports of this machine, each once (by-id links only for unlisted ports)."""
    seen: dict[str, str] = {}
    for pattern in _PATTERNS:
        for path in sorted(glob.glob(pattern)):
            seen.setdefault(os.path.realpath(path), path)
    return list(seen.values())


async def _apc(line: SerialLine) -> Found | None:
    await line.flush_input()
    reply = await line.exchange(b"Y", b"\n", 1.5)
    if reply.replace(b"\r", b"").strip() != b"SM":
        return None

    async def ask(query: bytes) -> str | None:
        text = (await line.exchange(query, b"\n", 1.5)).decode("latin-1").strip()
        return text if text and text != "NA" else None

    return Found(line.path, "apcsmart", "APC Smart", await ask(b"\x01"), await ask(b"n"))


def _megatec_status(reply: bytes) -> bool:
    words = reply.decode("latin-1").strip().split(" ")
    bits = words[-1] if words else ""
    return reply.startswith(b"(") and len(reply) >= 46 and len(bits) == 8 and set(bits) <= set("01")


async def _megatec(line: SerialLine) -> Found | None:
    await line.send(b"\r")
    await trio.sleep(0.2)
    if not _megatec_status(await line.exchange(b"Q1\r", b"\r", 1.0)):
        return None
    vendor = (await line.exchange(b"I\r", b"\r", 1.0)).decode("latin-1")
    model = vendor[17:27].strip() if vendor.startswith("#") and len(vendor) >= 39 else None
    return Found(line.path, "nutdrv_qx", "Megatec/Q1", model or None)


async def probe(port: str) -> Found | None:
    """Probe one port; ``None`` if nothing answered.

    Cancellation closes the port.
    """
    line = SerialLine(port, SerialSettings(baudrate=2400, exclusive=True))  # not one in use
    try:
        await line.open()
        for attempt in (_apc, _megatec):
            found = await attempt(line)
            if found is not None:
                return found
        return None
    except DeviceSilent as exc:
        return Found(port, error=str(exc))
    finally:
        with trio.CancelScope(shield=True):
            await line.aclose()


async def scan(ports: Sequence[str]) -> list[Found | None]:
    """Probe ``ports`` concurrently; the results in the same order."""
    results: list[Found | None] = [None] * len(ports)

    async def one(index: int, port: str) -> None:
        results[index] = await probe(port)

    async with trio.open_nursery() as nursery:
        for index, port in enumerate(ports):
            nursery.start_soon(one, index, port)
    return results


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def ups_conf_section(name: str, found: Found) -> str:
    """The ups.conf section to paste for a UPS found by :func:`scan`."""
    lines = [f"[{name}]", f"\tdriver = {found.driver}", f"\tport = {_quote(found.port)}"]
    if found.driver == "nutdrv_qx":
        lines.append("\tprotocol = megatec")
    lines.extend(f"\t{key} = {_quote(value)}" for key, value in found.match)
    desc = " ".join(part for part in (found.model, found.serial) if part)
    if desc:
        lines.append(f"\tdesc = {_quote(desc)}")
    return "\n".join(lines) + "\n"


def report(results: Iterable[tuple[str, Found | None]]) -> tuple[str, int]:
    """The text ``nuttrio scan`` prints and how many UPSes were found.

    Args:
        results: Where each probe looked (a port, a USB device) and what answered there.
    """
    out: list[str] = []
    count = 0
    for port, found in results:
        if found is None:
            out.append(f"# {port}: no UPS answered")
        elif found.error is not None:
            out.append(f"# {port}: {found.error}")
        else:
            count += 1
            what = f"{found.protocol} UPS" + (f" ({found.model})" if found.model else "")
            out.append(f"# {port}: {what}")
            out.append(ups_conf_section(f"ups{count}" if count > 1 else "ups", found))
    return "\n".join(out) + "\n", count
