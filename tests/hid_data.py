"""Where the recorded HID data lives (../shared/data), and skips when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
DDL = SHARED / "nut-ddl"
HID = SHARED / "hid"

CS500 = DDL / "APC" / "APC__Back-UPS_CS_500__usbhid-ups__2.8.0__01.dev"
BK650 = DDL / "APC" / "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev"
ESP32 = sorted(HID.glob("*/*.json")) if HID.is_dir() else []


def need(path: Path) -> Path:
    """``path``, or skip the test with the reason printed."""
    if not path.exists():
        pytest.skip(f"recorded data not found: {path}")
    return path


SMART_X750 = DDL / "APC" / "APC__Smart-UPS_X_750__usbhid-ups__2.7.4__01.dev"

_LSUSB_TAGS = {
    "Usage Page": 0x04,
    "Logical Minimum": 0x14,
    "Logical Maximum": 0x24,
    "Physical Minimum": 0x34,
    "Physical Maximum": 0x44,
    "Unit Exponent": 0x54,
    "Unit": 0x64,
    "Report Size": 0x74,
    "Report ID": 0x84,
    "Report Count": 0x94,
    "Usage": 0x08,
    "Usage Minimum": 0x18,
    "Usage Maximum": 0x28,
    "String Index": 0x78,
    "Input": 0x80,
    "Output": 0x90,
    "Feature": 0xB0,
    "Collection": 0xA0,
    "End Collection": 0xC0,
}


def lsusb_descriptor(text: str) -> bytes:
    """Re-encode the report descriptor an ``lsusb -v`` listing decoded (``Item(...)`` lines)."""
    import re

    out = bytearray()
    pattern = (
        r"Item\((?:Global|Local |Main  )\): ([A-Za-z ]+), data=(?: \[ ((?:0x[0-9a-f]{2} )*)\]|none)"
    )
    for match in re.finditer(pattern, text):
        data = bytes(int(x, 16) for x in (match.group(2) or "").split())
        out.append(_LSUSB_TAGS[match.group(1)] | {0: 0, 1: 1, 2: 2, 4: 3}[len(data)])
        out += data
    return bytes(out)
