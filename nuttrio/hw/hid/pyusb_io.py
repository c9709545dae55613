"""The USB side of usbhid-ups through pyusb: matching, HID class requests, error classes.

Everything here blocks (pyusb does); the driver runs it in worker threads through
:class:`nuttrio.hw.transport.BlockingDevice`. Control transfers get
:data:`CONTROL_TIMEOUT_MS` and interrupt reads the timeout the caller gives, so a call
never holds its thread for long. pyusb is imported when this module is, and this module
only when a ``usbhid-ups`` section exists (or a HID CLI command runs).

Matching follows NUT: ``vendorid``, ``productid``, ``vendor``, ``product``, ``serial``,
``bus``, ``device`` and ``busport`` are regular expressions matched against the whole
value, ignoring case (ids as four lower-case hex digits, bus and device as three
digits), and a subdriver must claim the device (:func:`.subdrivers.find_subdriver`).
pyusb errors become three exceptions: :class:`UsbGone` (unplugged, no access, I/O
error, busy: reconnect), :class:`UsbStall` (EPIPE: this report has no data) and
:class:`UsbTimeout`.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterable, Iterator, Mapping

import attrs
import usb.backend
import usb.core
import usb.util

from .subdrivers import DeviceIds, find_subdriver

__all__ = [
    "CONTROL_TIMEOUT_MS",
    "HidUsbDevice",
    "UsbError",
    "UsbGone",
    "UsbMatch",
    "UsbStall",
    "UsbTimeout",
    "find_device",
    "matching_devices",
]

CONTROL_TIMEOUT_MS = 1000
_HID_DESCRIPTOR = 0x21
_REPORT_DESCRIPTOR = 0x22
_FEATURE = 0x03


class UsbError(OSError):
    """A USB transfer failed."""


class UsbGone(UsbError):
    """The device is gone or unusable (unplugged, permission, I/O error): reconnect."""


class UsbStall(UsbError):
    """The device stalled the request (EPIPE): no data for this report."""


class UsbTimeout(UsbError):
    """The device did not answer in time."""


_GONE = {errno.ENODEV, errno.EACCES, errno.EIO, errno.ENOENT, errno.EBUSY, errno.ENXIO}


def _classify(exc: usb.core.USBError) -> UsbError:
    code = exc.errno
    if isinstance(exc, usb.core.USBTimeoutError) or code == errno.ETIMEDOUT:
        return UsbTimeout(str(exc))
    if code == errno.EPIPE:
        return UsbStall(str(exc))
    if code in _GONE or code is None:
        return UsbGone(str(exc))
    return UsbError(code, str(exc))


@attrs.frozen
class UsbMatch:
    """NUT's USB matching options (regular expressions; ``None``: anything)."""

    vendorid: str | None = None
    productid: str | None = None
    vendor: str | None = None
    product: str | None = None
    serial: str | None = None
    bus: str | None = None
    device: str | None = None
    busport: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> UsbMatch:
        """From ups.conf keys; raises :class:`re.error` naming a bad expression."""
        values = {f.name: options.get(f.name) for f in attrs.fields(cls)}
        for name, value in values.items():
            if value is not None:
                try:
                    re.compile(posix_regex(value))
                except re.error as exc:
                    raise re.error(f"{name} = {value!r}: {exc}") from exc
        return cls(**values)

    def accepts(self, facts: Mapping[str, str], keys: Iterable[str] | None = None) -> bool:
        """Whether every given expression matches its fact (missing facts match "").

        As NUT's usb-common.c: case-insensitive, the whole fact (with its leading and
        trailing spaces, tabs and newlines cut) must match, POSIX classes allowed.

        With ``keys``, only those options are checked (the ids, before the strings are
        read: a device of another vendor is then never opened).
        """
        names = set(keys) if keys is not None else {f.name for f in attrs.fields(type(self))}
        for f in attrs.fields(type(self)):
            if f.name not in names:
                continue
            pattern = getattr(self, f.name)
            fact = facts.get(f.name, "").strip(" \t\n")
            if pattern is not None and not re.fullmatch(posix_regex(pattern), fact, re.IGNORECASE):
                return False
        return True


#: POSIX bracket classes (NUT compiles REG_EXTENDED) as Python ranges.
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": " \\t\\n\\r\\f\\v",
    "[:blank:]": " \\t",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}


def posix_regex(pattern: str) -> str:
    """A POSIX extended expression's bracket classes (``[[:digit:]]``) in Python's syntax."""
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    return pattern


def _string(dev: usb.core.Device, index: int) -> str:
    if not index:
        return ""
    try:
        return str(usb.util.get_string(dev, index) or "")
    except (usb.core.USBError, ValueError):
        return ""


_ID_FACTS = ("vendorid", "productid", "bus", "device", "busport")


def _id_facts(dev: usb.core.Device) -> dict[str, str]:
    bus = "" if dev.bus is None else f"{int(dev.bus):03d}"
    address = "" if dev.address is None else f"{int(dev.address):03d}"
    ports = getattr(dev, "port_numbers", None) or ()
    return {
        "vendorid": f"{dev.idVendor:04x}",
        "productid": f"{dev.idProduct:04x}",
        "bus": bus,
        "device": address,
        "busport": ".".join(str(p) for p in ports),
    }


def _facts(dev: usb.core.Device) -> dict[str, str]:
    return {
        **_id_facts(dev),
        "vendor": _string(dev, dev.iManufacturer),
        "product": _string(dev, dev.iProduct),
        "serial": _string(dev, dev.iSerialNumber),
    }


def matching_devices(
    match: UsbMatch,
    *,
    backend: usb.backend.IBackend | None = None,
    forced: str | None = None,
) -> Iterator[tuple[usb.core.Device, dict[str, str]]]:
    """USB devices that match and that a subdriver claims, with their facts."""
    try:
        found = list(usb.core.find(find_all=True, backend=backend) or ())
    except usb.core.NoBackendError as exc:
        raise UsbGone(f"pyusb has no USB backend (install libusb-1.0): {exc}") from exc
    for dev in found:
        if not match.accepts(_id_facts(dev), _ID_FACTS):
            continue
        facts = _facts(dev)
        if not match.accepts(facts):
            continue
        ids = DeviceIds(
            dev.idVendor, dev.idProduct, facts["vendor"], facts["product"], facts["serial"]
        )
        # the generic subdriver takes a device only when the user named its vendor
        specific = match.vendorid is None
        if forced is not None or find_subdriver(
            ids, productid_given=match.productid is not None, specific=specific
        ):
            yield dev, facts


class HidUsbDevice:
    """One opened HID device: interface 0 claimed, its report descriptor read.

    Args:
        dev: The pyusb device.
        facts: Its matching facts (:func:`matching_devices`).
    """

    def __init__(self, dev: usb.core.Device, facts: Mapping[str, str]) -> None:
        self.dev = dev
        self.facts = dict(facts)
        self.ids = DeviceIds(
            dev.idVendor,
            dev.idProduct,
            facts.get("vendor", ""),
            facts.get("product", ""),
            facts.get("serial", ""),
        )
        self.release = int(getattr(dev, "bcdDevice", 0) or 0)
        self.interface = 0
        self.endpoint = 0x81
        self.descriptor = b""

    def open(self) -> None:
        """Claim interface 0 (detaching a kernel driver) and read the report descriptor."""
        try:
            self._claim()
            self.descriptor = self._report_descriptor()
        except usb.core.USBError as exc:
            raise _classify(exc) from exc

    def _claim(self) -> None:
        dev = self.dev
        try:
            if dev.is_kernel_driver_active(self.interface):
                dev.detach_kernel_driver(self.interface)
        except (NotImplementedError, usb.core.USBError):
            pass
        usb.util.claim_interface(dev, self.interface)

    def _hid_length(self) -> int:
        """The report descriptor's length, from the HID descriptor (interface extras)."""
        intf = self.dev.get_active_configuration()[(self.interface, 0)]
        for ep in intf.endpoints():
            if ep.bEndpointAddress & 0x80 and ep.bmAttributes & 0x03 == 0x03:
                self.endpoint = ep.bEndpointAddress
                break
        extra = bytes(intf.extra_descriptors or b"")
        pos = 0
        while pos + 9 <= len(extra):
            if extra[pos + 1] == _HID_DESCRIPTOR and extra[pos + 6] == _REPORT_DESCRIPTOR:
                return int.from_bytes(extra[pos + 7 : pos + 9], "little")
            pos += max(extra[pos], 1)
        raw = self.dev.ctrl_transfer(
            0x81, 0x06, _HID_DESCRIPTOR << 8, self.interface, 9, CONTROL_TIMEOUT_MS
        )
        return int.from_bytes(bytes(raw[7:9]), "little")

    def _report_descriptor(self) -> bytes:
        length = self._hid_length()
        raw = self.dev.ctrl_transfer(
            0x81, 0x06, _REPORT_DESCRIPTOR << 8, self.interface, length, CONTROL_TIMEOUT_MS
        )
        return bytes(raw)

    def get_report(self, report_id: int, length: int) -> bytes:
        """GET_REPORT (Feature type, as NUT asks even for Input items).

        A short answer is returned as it came (broken firmware is common).
        """
        try:
            raw = self.dev.ctrl_transfer(
                0xA1, 0x01, (_FEATURE << 8) | report_id, self.interface, length, CONTROL_TIMEOUT_MS
            )
        except usb.core.USBError as exc:
            raise _classify(exc) from exc
        return bytes(raw)

    def set_report(self, report: bytes) -> int:
        """SET_REPORT (Feature) with the whole report, id byte first."""
        try:
            return int(
                self.dev.ctrl_transfer(
                    0x21,
                    0x09,
                    (_FEATURE << 8) | report[0],
                    self.interface,
                    report,
                    CONTROL_TIMEOUT_MS,
                )
            )
        except usb.core.USBError as exc:
            raise _classify(exc) from exc

    def read_interrupt(self, size: int, timeout_ms: int) -> bytes | None:
        """One interrupt-IN report, or ``None`` on timeout; a stall clears the halt."""
        try:
            return bytes(self.dev.read(self.endpoint, size, timeout_ms))
        except usb.core.USBError as exc:
            error = _classify(exc)
            if isinstance(error, UsbTimeout):
                return None
            if isinstance(error, UsbStall):
                with contextlib.suppress(usb.core.USBError):
                    self.dev.clear_halt(self.endpoint)
                return None
            raise error from exc

    def get_string(self, index: int) -> str:
        """A USB string ("" when the device has none)."""
        return _string(self.dev, index)

    def close(self) -> None:
        """Release the interface and pyusb's resources; never raises."""
        with contextlib.suppress(usb.core.USBError, ValueError):
            usb.util.release_interface(self.dev, self.interface)
        usb.util.dispose_resources(self.dev)


def find_device(
    match: UsbMatch, *, backend: usb.backend.IBackend | None = None, forced: str | None = None
) -> HidUsbDevice | None:
    """Open the first matching, claimed device (``None`` when there is none)."""
    for dev, facts in matching_devices(match, backend=backend, forced=forced):
        device = HidUsbDevice(dev, facts)
        device.open()
        return device
    return None
