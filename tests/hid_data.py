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
