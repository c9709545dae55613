"""The USB half of ``nuttrio scan``: UPSes on the USB bus that a usbhid-ups subdriver claims.

Only descriptors and string descriptors are read (what ``lsusb -v`` reads); no report is
asked for and nothing is written, so the UPS is not touched. Imports pyusb: the scan
loads this module only when it looks at USB.
"""

from __future__ import annotations

import usb.backend
import usb.core

from ..scan import Found
from .pyusb_io import UsbGone, UsbMatch, matching_devices

__all__ = ["usb_upses"]


def usb_upses(backend: usb.backend.IBackend | None = None) -> list[tuple[str, Found | None]]:
    """Each USB UPS as ``(where, found)`` for :func:`nuttrio.hw.scan.report`.

    ``where`` names the device (``USB 051d:0002 bus 1 device 4``). Without a USB backend
    (no libusb), one entry says so.
    """
    try:
        devices = list(matching_devices(UsbMatch(), backend=backend))
    except UsbGone as exc:
        return [("USB", Found("auto", error=str(exc)))]
    out: list[tuple[str, Found | None]] = []
    for dev, facts in devices:
        vendorid, productid = f"{dev.idVendor:04x}", f"{dev.idProduct:04x}"
        match = [("vendorid", vendorid), ("productid", productid)]
        if facts.get("serial"):
            match.append(("serial", facts["serial"]))
        found = Found(
            "auto",
            driver="usbhid-ups",
            protocol="USB HID",
            model=" ".join(w for w in (facts.get("vendor"), facts.get("product")) if w) or None,
            match=tuple(match),
        )
        out.append((f"USB {vendorid}:{productid} bus {dev.bus} device {dev.address}", found))
    return out
