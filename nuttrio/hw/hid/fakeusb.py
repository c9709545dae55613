"""A fake pyusb backend (``usb.backend.IBackend``) that serves recorded HID devices.

General theory of operation
---------------------------
No USB exists on CI machines, so ``port = replay:FILE`` puts a :class:`ReplayBackend`
under pyusb and the whole usbhid-ups driver runs as with hardware: pyusb enumerates the
fake devices, reads their descriptors and strings, and the driver's control and interrupt
transfers reach :class:`FakeHidDevice`, which answers from a
:class:`~.recording.Recording`:

* GET_DESCRIPTOR: device strings (language 0x0409), the 9-byte HID descriptor and the
  report descriptor (cut to the length asked, as a device does);
* GET_REPORT: the recorded feature report of that id (a stall for ids it never recorded);
  the ids asked for are kept in :attr:`FakeHidDevice.reads`;
* SET_REPORT: kept in :attr:`FakeHidDevice.writes` and applied, so the next GET_REPORT of
  that id returns what was written;
* interrupt IN: the recorded interrupt reports at their recorded times after the device
  was opened, the sequence starting over after its last report (one second later); a
  read with nothing due times out at once (the driver waits the rest itself).

Tests script faults on a device: :meth:`FakeHidDevice.stall`, ``timeout``, ``short``,
:meth:`FakeHidDevice.unplug` and :meth:`FakeHidDevice.replug` (optionally as another
recording, e.g. firmware answering with a different descriptor).
"""

from __future__ import annotations

import array
import errno
import threading
import time
from collections.abc import Callable, Sequence

import attrs
import usb.backend
import usb.core

from .recording import Recording

__all__ = ["FakeHidDevice", "ReplayBackend"]


@attrs.define
class _DeviceDescriptor:
    idVendor: int
    idProduct: int
    bcdDevice: int
    bus: int
    address: int
    bLength: int = 18
    bDescriptorType: int = 1
    bcdUSB: int = 0x0110
    bDeviceClass: int = 0
    bDeviceSubClass: int = 0
    bDeviceProtocol: int = 0
    bMaxPacketSize0: int = 8
    iManufacturer: int = 1
    iProduct: int = 2
    iSerialNumber: int = 3
    bNumConfigurations: int = 1
    port_number: int = 1
    port_numbers: tuple[int, ...] = (1,)
    speed: int = 1


@attrs.define
class _ConfigDescriptor:
    bLength: int = 9
    bDescriptorType: int = 2
    wTotalLength: int = 34
    bNumInterfaces: int = 1
    bConfigurationValue: int = 1
    iConfiguration: int = 0
    bmAttributes: int = 0xA0
    bMaxPower: int = 50
    extra_descriptors: bytes = b""


@attrs.define
class _InterfaceDescriptor:
    extra_descriptors: bytes
    bLength: int = 9
    bDescriptorType: int = 4
    bInterfaceNumber: int = 0
    bAlternateSetting: int = 0
    bNumEndpoints: int = 1
    bInterfaceClass: int = 3
    bInterfaceSubClass: int = 0
    bInterfaceProtocol: int = 0
    iInterface: int = 0


@attrs.define
class _EndpointDescriptor:
    bLength: int = 7
    bDescriptorType: int = 5
    bEndpointAddress: int = 0x81
    bmAttributes: int = 0x03
    wMaxPacketSize: int = 8
    bInterval: int = 10
    bRefresh: int = 0
    bSynchAddress: int = 0
    extra_descriptors: bytes = b""


def _usb_error(text: str, code: int) -> usb.core.USBError:
    if code == errno.ETIMEDOUT:
        return usb.core.USBTimeoutError(text, None, code)
    return usb.core.USBError(text, None, code)


class FakeHidDevice:
    """One recorded device, with scriptable faults. Thread-safe (pyusb runs in threads).

    Args:
        recording: What it answers.
        clock: Seconds, for interrupt times (``time.monotonic`` by default).
        bus: Its bus number; ``address``: its device address.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        clock: Callable[[], float] = time.monotonic,
        bus: int = 1,
        address: int = 2,
    ) -> None:
        self.clock = clock
        self.bus = bus
        self.address = address
        self.present = True
        self.writes: list[bytes] = []
        self.reads: list[int] = []
        self.opened = 0
        self.interrupt_errors: list[int] = []
        self._lock = threading.Lock()
        self._faults: dict[int, int | bytes] = {}
        self._load(recording)

    def _load(self, recording: Recording) -> None:
        self.recording = recording
        self.features = dict(recording.features)
        self._strings = dict(recording.strings)
        self.string_indexes = tuple(
            self._index_of(text)
            for text in (recording.manufacturer, recording.product, recording.serial)
        )
        self._start = self.clock()
        self._next = 0

    def _index_of(self, text: str) -> int:
        """The string index holding ``text`` (added after the others if none does)."""
        if not text:
            return 0
        for index, known in sorted(self._strings.items()):
            if known == text:
                return index
        index = max(self._strings, default=0) + 1
        self._strings[index] = text
        return index

    # -- faults -------------------------------------------------------------------------

    def stall(self, report_id: int) -> None:
        """GET_REPORT of ``report_id`` stalls (EPIPE) from now on."""
        self._faults[report_id] = errno.EPIPE

    def timeout(self, report_id: int) -> None:
        """GET_REPORT of ``report_id`` times out from now on."""
        self._faults[report_id] = errno.ETIMEDOUT

    def fault(self, report_id: int, code: int) -> None:
        """GET_REPORT of ``report_id`` fails with errno ``code`` from now on."""
        self._faults[report_id] = code

    def short(self, report_id: int, length: int) -> None:
        """GET_REPORT of ``report_id`` answers only its first ``length`` bytes."""
        self._faults[report_id] = self.features[report_id][:length]

    def heal(self) -> None:
        """Clear every scripted report fault."""
        self._faults.clear()

    def unplug(self) -> None:
        """The device disappears: every transfer fails with ENODEV, enumeration skips it."""
        self.present = False

    def replug(self, recording: Recording | None = None) -> None:
        """The device is back (as ``recording`` if given: new firmware, new descriptor)."""
        with self._lock:
            if recording is not None:
                self._load(recording)
            self.heal()
            self.present = True

    # -- USB behaviour ------------------------------------------------------------------

    def _check(self) -> None:
        if not self.present:
            raise _usb_error("No such device (it may have been disconnected)", errno.ENODEV)

    def string_descriptor(self, index: int) -> bytes:
        """String descriptor ``index`` (0: the language list)."""
        if index == 0:
            return bytes([4, 3, 0x09, 0x04])
        text = self._strings.get(index)
        if text is None:
            raise _usb_error("Pipe error", errno.EPIPE)
        data = text.encode("utf-16-le")[:252]
        return bytes([len(data) + 2, 3]) + data

    def hid_descriptor(self) -> bytes:
        """The 9-byte HID class descriptor."""
        n = len(self.recording.descriptor)
        return bytes([9, 0x21, 0x10, 0x01, 0, 1, 0x22, n & 0xFF, n >> 8])

    def control_in(self, request_type: int, request: int, value: int, length: int) -> bytes:
        """Answer an IN control transfer."""
        self._check()
        kind, index = value >> 8, value & 0xFF
        if request == 0x06 and kind == 0x03:
            return self.string_descriptor(index)[:length]
        if request == 0x06 and kind == 0x21:
            return self.hid_descriptor()[:length]
        if request == 0x06 and kind == 0x22:
            return self.recording.descriptor[:length]
        if request_type == 0xA1 and request == 0x01:
            return self._get_report(index)[:length]
        raise _usb_error("Pipe error", errno.EPIPE)

    def _get_report(self, report_id: int) -> bytes:
        with self._lock:
            self.reads.append(report_id)
            fault = self._faults.get(report_id)
            if isinstance(fault, int):
                raise _usb_error("scripted fault", fault)
            if isinstance(fault, bytes):
                return fault
            report = self.features.get(report_id)
        if report is None:
            raise _usb_error("Pipe error", errno.EPIPE)
        return report

    def control_out(self, request_type: int, request: int, value: int, data: bytes) -> int:
        """Answer an OUT control transfer (SET_REPORT, SET_IDLE)."""
        self._check()
        if request_type == 0x21 and request == 0x09 and data:
            with self._lock:
                self.writes.append(bytes(data))
                self.features[data[0]] = bytes(data)
        return len(data)

    def interrupt(self) -> bytes:
        """The next interrupt report if one is due, else a timeout error."""
        self._check()
        if self.interrupt_errors:
            raise _usb_error("scripted fault", self.interrupt_errors.pop(0))
        reports = self.recording.interrupts
        if not reports:
            raise _usb_error("Operation timed out", errno.ETIMEDOUT)
        period = reports[-1][0] + 1.0
        with self._lock:
            loop, k = divmod(self._next, len(reports))
            due = self._start + loop * period + reports[k][0]
            if self.clock() < due:
                raise _usb_error("Operation timed out", errno.ETIMEDOUT)
            self._next += 1
            return reports[k][1]


class ReplayBackend(usb.backend.IBackend):  # type: ignore[misc]
    """A pyusb backend whose bus holds :class:`FakeHidDevice` objects."""

    def __init__(self, devices: Sequence[FakeHidDevice]) -> None:
        self.devices = list(devices)

    def enumerate_devices(self) -> list[FakeHidDevice]:
        """The devices plugged in now."""
        return [d for d in self.devices if d.present]

    def get_device_descriptor(self, dev: FakeHidDevice) -> _DeviceDescriptor:
        """The device descriptor."""
        rec = dev.recording
        manufacturer, product, serial = dev.string_indexes
        return _DeviceDescriptor(
            rec.vendorid,
            rec.productid,
            rec.release,
            dev.bus,
            dev.address,
            iManufacturer=manufacturer,
            iProduct=product,
            iSerialNumber=serial,
        )

    def get_configuration_descriptor(self, dev: FakeHidDevice, config: int) -> _ConfigDescriptor:
        """The one configuration."""
        return _ConfigDescriptor()

    def get_interface_descriptor(
        self, dev: FakeHidDevice, intf: int, alt: int, config: int
    ) -> _InterfaceDescriptor:
        """The HID interface, its HID descriptor in the extra bytes."""
        return _InterfaceDescriptor(extra_descriptors=dev.hid_descriptor())

    def get_endpoint_descriptor(
        self, dev: FakeHidDevice, ep: int, intf: int, alt: int, config: int
    ) -> _EndpointDescriptor:
        """The interrupt-IN endpoint 0x81."""
        return _EndpointDescriptor()

    def open_device(self, dev: FakeHidDevice) -> FakeHidDevice:
        """Open: the handle is the device."""
        dev._check()
        dev.opened += 1
        return dev

    def close_device(self, dev_handle: FakeHidDevice) -> None:
        """Close (nothing to free)."""

    def set_configuration(self, dev_handle: FakeHidDevice, config_value: int) -> None:
        """Accept the configuration."""

    def get_configuration(self, dev_handle: FakeHidDevice) -> int:
        """The configuration in use."""
        return 1

    def set_interface_altsetting(self, dev_handle: FakeHidDevice, intf: int, alt: int) -> None:
        """Accept the alternate setting."""

    def claim_interface(self, dev_handle: FakeHidDevice, intf: int) -> None:
        """Claim (fails when unplugged)."""
        dev_handle._check()

    def release_interface(self, dev_handle: FakeHidDevice, intf: int) -> None:
        """Release."""

    def is_kernel_driver_active(self, dev_handle: FakeHidDevice, intf: int) -> bool:
        """No kernel driver."""
        return False

    def ctrl_transfer(
        self,
        dev_handle: FakeHidDevice,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array[int],
        timeout: int,
    ) -> int:
        """Route a control transfer to the device."""
        if bmRequestType & 0x80:
            answer = dev_handle.control_in(bmRequestType, bRequest, wValue, len(data))
            data[: len(answer)] = type(data)(data.typecode, answer)
            return len(answer)
        return dev_handle.control_out(bmRequestType, bRequest, wValue, bytes(data))

    def intr_read(
        self, dev_handle: FakeHidDevice, ep: int, intf: int, buff: array.array[int], timeout: int
    ) -> int:
        """One interrupt report."""
        report = dev_handle.interrupt()[: len(buff)]
        buff[: len(report)] = type(buff)(buff.typecode, report)
        return len(report)

    def clear_halt(self, dev_handle: FakeHidDevice, ep: int) -> None:
        """Clear a halt."""
