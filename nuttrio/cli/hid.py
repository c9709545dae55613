"""``nuttrio hid-record`` and ``nuttrio hid-explore``: USB HID UPSes without a daemon.

Both are synchronous (pyusb blocks; there is nothing to run concurrently) and import
pyusb only when run. A device is chosen with NUT's matching options (``--vendorid``...,
regular expressions as in ups.conf), or ``--replay FILE`` puts a recording on the fake
USB bus instead, which re-records or explores it through pyusb exactly as a device.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..hw.hid.pyusb_io import HidUsbDevice
    from ..hw.hid.recording import Recording

__all__ = ["add_hid_commands", "run_hid_command"]

_MATCH_OPTIONS = (
    "vendorid",
    "productid",
    "vendor",
    "product",
    "serial",
    "bus",
    "device",
    "busport",
)
#: String-index usages whose strings a recording keeps (Power Device / Battery System).
_STRING_USAGES = frozenset(
    {0x840001, 0x8400FD, 0x8400FE, 0x8400FF, 0x850087, 0x850088, 0x850089, 0x85008F}
)


def _add_match(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device selection (regular expressions, as ups.conf)")
    for name in _MATCH_OPTIONS:
        group.add_argument(f"--{name}", metavar="REGEX")
    group.add_argument(
        "--replay",
        metavar="FILE",
        type=Path,
        help="use a recording on a fake USB bus instead of a real device",
    )


def add_hid_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hid-record`` and ``hid-explore`` to the ``nuttrio`` command."""
    record = commands.add_parser(
        "hid-record",
        help="record a USB HID UPS into one JSON file (see docs/hid-recording.md)",
        description="Read a USB HID UPS once: its ids and strings, its report descriptor "
        "and every feature report, and optionally its interrupt reports for some seconds; "
        "write them as one JSON file that 'port = replay:FILE' serves.",
    )
    _add_match(record)
    record.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        required=True,
        help="the JSON file to write ('-' for standard output)",
    )
    record.add_argument(
        "--seconds",
        metavar="N",
        type=float,
        default=0.0,
        help="also record N seconds of interrupt-IN reports (default 0)",
    )
    explore = commands.add_parser(
        "hid-explore",
        help="print every HID field of a UPS or a recording with its value",
        description="Print each field of the report descriptor: usage path, type, report "
        "id, bit offset and size, value and unit, as 'usbhid-ups -x explore -DD' does.",
    )
    explore.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="a recording (nuttrio JSON, NUT explore log or .dev, esp32-nut "
        "JSON); without it, a device chosen by the options below",
    )
    explore.add_argument(
        "--names",
        metavar="SUBDRIVER",
        help="name vendor usages with this subdriver's table (default: the "
        "standard names only, as NUT's explore does)",
    )
    _add_match(explore)


def _open(args: argparse.Namespace) -> HidUsbDevice:
    from ..hw.hid.fakeusb import FakeHidDevice, ReplayBackend
    from ..hw.hid.pyusb_io import UsbMatch, find_device
    from ..hw.hid.recording import load_recording

    backend = None
    if args.replay is not None:
        backend = ReplayBackend([FakeHidDevice(load_recording(args.replay))])
    match = UsbMatch.from_options({k: v for k in _MATCH_OPTIONS if (v := getattr(args, k))})
    device = find_device(match, backend=backend)
    if device is None:
        raise LookupError("no matching USB HID UPS found")
    return device


def record_device(device: HidUsbDevice, seconds: float) -> Recording:
    """Read ``device`` as :class:`Recording` (feature reports once, interrupts for a while)."""
    from ..hw.hid.codec import get_logical
    from ..hw.hid.descriptor import ItemType, parse_descriptor
    from ..hw.hid.pyusb_io import UsbStall, UsbTimeout
    from ..hw.hid.recording import Recording

    desc = parse_descriptor(device.descriptor)
    features: dict[int, bytes] = {}
    for rid in desc.report_ids():
        try:
            report = device.get_report(rid, desc.buffer_length(rid))
        except (UsbStall, UsbTimeout):
            continue
        if report:
            features[rid] = report
    strings: dict[int, str] = {}
    for field in desc.fields:
        if field.kind is ItemType.FEATURE and field.leaf in _STRING_USAGES:
            index = get_logical(features.get(field.report_id, b""), field)
            if index > 0 and index not in strings:
                strings[index] = device.get_string(index)
    interrupts: list[tuple[float, bytes]] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        asked = time.monotonic()
        event = device.read_interrupt(64, 750)
        if event:
            interrupts.append((time.monotonic() - start, event))
        elif time.monotonic() - asked < 0.05:
            time.sleep(0.05)  # a pipe that answers "nothing" at once (a replay): do not spin
    facts = device.facts
    return Recording(
        vendorid=device.ids.vendorid,
        productid=device.ids.productid,
        manufacturer=facts.get("vendor", ""),
        product=facts.get("product", ""),
        serial=facts.get("serial", ""),
        descriptor=device.descriptor,
        features=features,
        interrupts=tuple(interrupts),
        strings=strings,
        bus=facts.get("bus", ""),
        device=facts.get("device", ""),
        release=device.release,
    )


def _record(args: argparse.Namespace) -> int:
    device = _open(args)
    try:
        text = record_device(device, args.seconds).to_json()
    finally:
        device.close()
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(
            f"nuttrio: recorded {device.facts.get('vendorid')}:"
            f"{device.facts.get('productid')} into {args.output}"
        )
    return 0


def _explore(args: argparse.Namespace) -> int:
    from ..hw.hid.descriptor import parse_descriptor
    from ..hw.hid.explore import explore_lines
    from ..hw.hid.recording import load_recording
    from ..hw.hid.subdrivers import DeviceIds, find_subdriver

    if args.file is not None:
        rec = load_recording(args.file)
    else:
        device = _open(args)
        try:
            rec = record_device(device, 0.0)
        finally:
            device.close()
    usages = None
    if args.names:
        sub = find_subdriver(DeviceIds(rec.vendorid, rec.productid), forced=args.names)
        if sub is None:
            raise LookupError(f"no subdriver named {args.names!r}")
        usages = sub.usages
    desc = parse_descriptor(rec.descriptor)
    print(
        f"# {rec.vendorid:04x}:{rec.productid:04x} {rec.manufacturer} / {rec.product}; "
        f"{len(rec.descriptor)}-byte report descriptor, {len(desc.fields)} HID objects"
    )
    for note in (*desc.warnings, *desc.problems):
        print(f"# {note}")
    for line in explore_lines(desc, rec.features, usages):
        print(line)
    return 0


def run_hid_command(args: argparse.Namespace) -> int:
    """Run ``hid-record`` or ``hid-explore``; errors are printed, the status returned."""
    from ..hw.hid.descriptor import HIDParseError
    from ..hw.hid.recording import RecordingError

    handlers = {"hid-record": _record, "hid-explore": _explore}
    try:
        return handlers[args.command](args)
    except (LookupError, RecordingError, HIDParseError, OSError, ValueError) as exc:
        print(f"nuttrio {args.command}: {exc}", file=sys.stderr)
        return 1
