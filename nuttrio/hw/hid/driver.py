"""The ``usbhid-ups`` driver: a USB HID Power Device on the driver kit.

General theory of operation
---------------------------
:func:`usbhid_factory` checks a ups.conf section (:class:`UsbhidSettings`) and returns a
:class:`UsbhidUps`. Its :meth:`~UsbhidUps.run` polls on the kit's loop
(:func:`nuttrio.hw.kit.run_polling_driver`) every ``pollinterval`` seconds: a *quick*
walk (status rows only), or a *full* walk every ``pollfreq`` seconds and after any SET
VAR or INSTCMD, exactly as usbhid-ups chooses. Beside it a task reads the interrupt-IN
pipe (unless ``pollonly``) and applies each report at once, so a status change reaches
the store without waiting for the next poll. All USB calls of a device go through one
:class:`nuttrio.hw.transport.BlockingDevice` (a worker thread, one call at a time, short
timeouts).

The device is found as NUT finds it (:mod:`.pyusb_io`): matching options, then the first
subdriver that claims it (or ``subdriver =``). Once found, later searches also require its
vendor, product and serial, so a replug finds the same UPS. When it is unplugged (or
answers with I/O errors), the poll reports the device silent, the data goes stale, and
each later poll tries to open it again; when it is back, the driver goes on by itself
(a new descriptor, e.g. after a firmware update, is parsed afresh). A stall or timeout on
one report skips that report's rows for the walk; it is not fatal. The one fatal error is
finding no device at all when the driver starts (NUT exits "No matching HID UPS found"):
:class:`NoMatchingDevice` is raised and the daemon's supervision decides what next.

``port = replay:FILE`` puts the recording FILE (:mod:`.recording`) on a fake USB bus
(:class:`.fakeusb.ReplayBackend`) under pyusb, so the whole driver runs without hardware.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import trio
import usb
import usb.backend

from ...nutconf import ConfigError, UpsSection
from ...nutconf.common import atoi
from ...state import CommandKind, CommandStatus, DriverCommand, DriverLink, Variable
from ..base import DriverContext, DriverFailed
from ..kit import DeviceSilent, every, publish_difference, run_polling_driver
from ..transport import BlockingDevice
from .core import HidCore, HidSettings, ReportFailure, WalkMode
from .descriptor import HIDParseError, parse_descriptor
from .fakeusb import FakeHidDevice, ReplayBackend
from .pyusb_io import (
    HidUsbDevice,
    UsbError,
    UsbGone,
    UsbMatch,
    UsbStall,
    find_device,
)
from .recording import RecordingError, load_recording
from .subdrivers import DeviceIds, find_subdriver, subdriver_names

__all__ = ["NoMatchingDevice", "UsbhidSettings", "UsbhidUps", "usbhid_factory"]

log = logging.getLogger(__name__)

DRIVER_NAME = "usbhid-ups"
#: The NUT release imitated (``driver.version``).
DRIVER_VERSION = "2.8.0"
#: The usbhid-ups version nuttrio follows (``driver.version.internal``).
DRIVER_VERSION_INTERNAL = "0.47"
#: Seconds an interrupt read may wait (NUT: 750 ms).
INTERRUPT_TIMEOUT = 0.75
#: What ``-k`` tries, in usbhid-ups.c's order: the first the device takes ends it.
SHUTDOWN_ORDER = ("shutdown.return", "shutdown.reboot", "load.off.delay")
#: Bytes asked for when ``max_report_size`` is on (APC Back-UPS CS/ES firmware).
MAX_REPORT_SIZE = 64


class NoMatchingDevice(RuntimeError):
    """No USB HID UPS matches the section (raised when the driver starts)."""


_NUMBERS = ("pollfreq", "pollinterval", "interruptsize", "offdelay", "ondelay", "lowbatt")
_FLAGS = (
    "pollonly",
    "interruptonly",
    "onlinedischarge",
    "onlinedischarge_onbattery",
    "onlinedischarge_calibration",
    "maxreport",
    "disable_fix_report_desc",
    "lbrb_log_delay_without_calibrating",
)
#: NUT 2.8.1+ values: (default, whether the value is fine) as usbhid-ups checks them.
_LATER: dict[str, tuple[int, Callable[[int], bool]]] = {
    "onlinedischarge_log_throttle_sec": (30, lambda v: True),
    "onlinedischarge_log_throttle_hovercharge": (100, lambda v: 1 <= v <= 100),
    "lbrb_log_delay_sec": (3, lambda v: v >= 0),
    "interrupt_pipe_no_events_tolerance": (-1, lambda v: True),
}
_MATCH = tuple(f.name for f in attrs.fields(UsbMatch))
_ANY = DeviceIds(0, 0)
#: Keys every NUT driver takes (main.c), accepted and not used by this driver.
_GENERAL = frozenset(
    {
        "driver",
        "port",
        "desc",
        "sdorder",
        "sddelay",
        "user",
        "group",
        "debug_min",
        "synchronous",
        "nolock",
        "ignorelb",
        "maxstartdelay",
        "maxretry",
        "retrydelay",
        "chroot",
        "explore",
        "usb_set_altinterface",
        "allow_killpower",
    }
)
_KNOWN = _GENERAL | set(_NUMBERS) | set(_FLAGS) | set(_MATCH) | set(_LATER) | {"subdriver"}


def _later_value(name: str, raw: str, ups: str) -> int:
    """A 2.8.1+ option as usbhid-ups reads it: atoi, with its default (logged) if bad."""
    default, fine = _LATER[name]
    value = atoi(raw)
    garbage = value == 0 and raw.strip() != "0"
    if name == "interrupt_pipe_no_events_tolerance":
        try:
            value, garbage = int(raw.strip(), 10), False
        except ValueError:
            garbage = True
    if garbage or not fine(value):
        log.warning("UPS %s: invalid value for %s: %s, defaulting to %d", ups, name, raw, default)
        return default
    if name == "onlinedischarge_log_throttle_sec" and value < 0:
        return -1
    return value


@attrs.frozen
class UsbhidSettings:
    """A checked ``driver = usbhid-ups`` section.

    Attributes:
        name: The UPS name.
        port: ``auto`` (any USB device) or ``replay:FILE``.
        replay: The recording to serve, for ``replay:``.
        match: The matching options.
        subdriver: ``subdriver =`` (forces one), or ``None``.
        core: What the usbhid-ups core needs (delays, lowbatt, pollfreq...).
        pollonly: Never read the interrupt pipe.
        interruptsize: Bytes per interrupt read (``None``: 64).
        maxreport: Ask for whole buffers and accept short replies (APC).
        fix_report_desc: Apply the subdriver's descriptor fixes.
        parameters: ``driver.parameter.*`` / ``driver.flag.*`` to publish.
        no_events_tolerance: ``interrupt_pipe_no_events_tolerance``: reconnect after more
            interrupt reads than this in a row bring nothing (-1: never).
        overrides: ``override.X`` values (replace what the device says).
        defaults: ``default.X`` values (used while the device gives no X).
    """

    name: str
    port: str = "auto"
    replay: Path | None = None
    match: UsbMatch = attrs.field(factory=UsbMatch)
    subdriver: str | None = None
    core: HidSettings = attrs.field(factory=HidSettings)
    pollonly: bool = False
    interruptsize: int | None = None
    maxreport: bool = False
    fix_report_desc: bool = True
    parameters: tuple[tuple[str, str], ...] = ()
    no_events_tolerance: int = -1
    overrides: tuple[tuple[str, str], ...] = ()
    defaults: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_section(
        cls, section: UpsSection, ups_globals: Mapping[str, str], confdir: Path
    ) -> UsbhidSettings:
        """Check a section. Raises :class:`ConfigError` with the file and line."""

        def fail(message: str) -> ConfigError:
            return ConfigError(f"UPS [{section.name}]: {message}", section.path, section.lineno)

        opts = {**{k: v for k, v in ups_globals.items() if k == "pollinterval"}, **section.options}
        for key in section.options:
            if key not in _KNOWN and not key.startswith(("override.", "default.")):
                raise fail(f"{key!r} is not a valid setting for driver usbhid-ups")
        numbers = {}
        for key in _NUMBERS:
            if key in opts:
                try:
                    numbers[key] = int(opts[key])
                except ValueError:
                    raise fail(f"{key} = {opts[key]!r} is not a whole number") from None
                if numbers[key] <= 0 and key in ("pollfreq", "pollinterval", "interruptsize"):
                    raise fail(f"{key} must be positive")
        try:
            match = UsbMatch.from_options(opts)
        except re.error as exc:
            raise fail(f"invalid regular expression: {exc}") from None
        forced = opts.get("subdriver")
        if forced is not None and find_subdriver(_ANY, forced=forced) is None:
            raise fail(f"subdriver {forced!r} unknown (known: {', '.join(subdriver_names())})")
        replay = None
        if section.port.startswith("replay:"):
            replay = confdir / section.port[len("replay:") :]
            try:
                load_recording(replay)
            except (OSError, RecordingError) as exc:
                raise fail(f"port {section.port}: {exc}") from None
        flags = {key: key in opts for key in _FLAGS}
        later = {k: _later_value(k, opts[k], section.name) for k in _LATER if k in opts}
        core = HidSettings(
            offdelay=numbers.get("offdelay"),
            ondelay=numbers.get("ondelay"),
            lowbatt=numbers.get("lowbatt"),
            onlinedischarge=flags["onlinedischarge"] or flags["onlinedischarge_onbattery"],
            onlinedischarge_calibration=flags["onlinedischarge_calibration"],
            ignorelb="ignorelb" in opts,
            lbrb_log_delay_sec=later.get("lbrb_log_delay_sec", 0),
            lbrb_log_delay_without_calibrating=flags["lbrb_log_delay_without_calibrating"],
            interruptonly=flags["interruptonly"],
            pollinterval=float(numbers.get("pollinterval", 2)),
            pollfreq=float(numbers.get("pollfreq", 30)),
        )
        params = [
            ("driver.parameter.port", section.port),
            ("driver.parameter.pollfreq", str(numbers.get("pollfreq", 30))),
            ("driver.parameter.pollinterval", str(numbers.get("pollinterval", 2))),
        ]
        params += [(f"driver.parameter.{k}", opts[k]) for k in (*_MATCH, "subdriver") if k in opts]
        params += [(f"driver.flag.{k}", "enabled") for k, on in flags.items() if on]
        params += [("driver.flag.ignorelb", "enabled")] if "ignorelb" in opts else []
        tolerance = later.pop("interrupt_pipe_no_events_tolerance", -1)
        params += [(f"driver.parameter.{k}", opts[k]) for k in later]
        # usbhid-ups publishes the tolerance it took, given or not
        params += [("driver.parameter.interrupt_pipe_no_events_tolerance", str(tolerance))]
        return cls(
            name=section.name,
            port=section.port,
            replay=replay,
            match=match,
            subdriver=forced,
            core=core,
            pollonly=flags["pollonly"],
            interruptsize=numbers.get("interruptsize"),
            maxreport=flags["maxreport"],
            fix_report_desc=not flags["disable_fix_report_desc"],
            parameters=tuple(params),
            no_events_tolerance=tolerance,
            overrides=_prefixed(opts, "override."),
            defaults=_prefixed(opts, "default."),
        )


def _prefixed(opts: Mapping[str, str], prefix: str) -> tuple[tuple[str, str], ...]:
    return tuple((k[len(prefix) :], v) for k, v in opts.items() if k.startswith(prefix))


def _exact(match: UsbMatch, device: HidUsbDevice) -> UsbMatch:
    """``match`` narrowed to this very device (NUT's exact matcher, for replugs)."""
    facts = device.facts
    return attrs.evolve(
        match,
        vendorid=re.escape(facts["vendorid"]),
        productid=re.escape(facts["productid"]),
        serial=re.escape(facts["serial"]) if facts.get("serial") else match.serial,
    )


class UsbhidUps:
    """The driver for one usbhid-ups section.

    Args:
        settings: The checked section.
        backend: The pyusb backend (``None``: pyusb's default, libusb); ``replay:``
            sections get a :class:`ReplayBackend` of their recording.
        interrupt_timeout: Seconds an interrupt read waits.
    """

    def __init__(
        self,
        settings: UsbhidSettings,
        backend: usb.backend.IBackend | None = None,
        *,
        interrupt_timeout: float = INTERRUPT_TIMEOUT,
    ) -> None:
        self.settings = settings
        if backend is None and settings.replay is not None:
            backend = ReplayBackend([FakeHidDevice(load_recording(settings.replay))])
        self.backend = backend
        self.interrupt_timeout = interrupt_timeout
        self.match = settings.match
        self.device: HidUsbDevice | None = None
        self.usb: BlockingDevice | None = None
        self.core: HidCore | None = None
        self._last_full = -math.inf
        self._descriptor = b""
        self._connected = trio.Event()

    # -- PolledState --------------------------------------------------------------------

    def variables(self) -> list[Variable]:
        """The UPS's variables (the last known ones while the device is away)."""
        own = [
            Variable("driver.name", DRIVER_NAME),
            Variable("driver.version", DRIVER_VERSION),
            Variable("driver.version.usb", f"pyusb {getattr(usb, '__version__', '?')}"),
            Variable("driver.version.internal", DRIVER_VERSION_INTERNAL),
            *(Variable(k, v) for k, v in self.settings.parameters),
        ]
        found = {v.name: v for v in (self.core.variables() if self.core is not None else [])}
        for name, value in self.settings.defaults:
            found.setdefault(name, Variable(name, value))
        for name, value in self.settings.overrides:
            found[name] = (
                attrs.evolve(found[name], value=value) if name in found else (Variable(name, value))
            )
        return own + list(found.values())

    @property
    def commands(self) -> Sequence[str]:
        """The instant commands the device offers."""
        return self.core.commands if self.core is not None else ()

    # -- connection ---------------------------------------------------------------------

    async def _connect(self) -> None:
        """Find and open the device, parse its descriptor, bind a core if it is new.

        Not cancellable while the search runs in its thread (it finishes first).

        Raises:
            DeviceSilent: If no device matches (or it cannot be used yet).
        """
        try:
            device = await trio.to_thread.run_sync(self._find)
        except UsbError as exc:
            raise DeviceSilent(f"cannot open the device: {exc}") from exc
        if device is None:
            raise DeviceSilent("no matching HID UPS found")
        try:
            self._bind(device)
        except HIDParseError as exc:
            device.close()
            raise DeviceSilent(f"cannot parse its report descriptor: {exc}") from exc
        self.device = device
        self.usb = BlockingDevice(f"usb {device.facts.get('bus')}/{device.facts.get('device')}")
        self.match = _exact(self.settings.match, device)
        self._connected.set()

    def _find(self) -> HidUsbDevice | None:
        return find_device(self.match, backend=self.backend, forced=self.settings.subdriver)

    def _bind(self, device: HidUsbDevice) -> None:
        if self.core is not None and device.descriptor == self._descriptor:
            return  # a replug of the same firmware: the mapping still holds
        sub = find_subdriver(
            device.ids,
            forced=self.settings.subdriver,
            productid_given=self.settings.match.productid is not None,
        )
        if sub is None:
            raise HIDParseError("no subdriver claims this device")
        desc = parse_descriptor(device.descriptor)
        for problem in desc.problems:
            log.warning("UPS %s: report descriptor: %s", self.settings.name, problem)
        if self.settings.fix_report_desc:
            desc = sub.fix_report_desc(desc, device.ids)
        if self.core is not None:
            log.warning(
                "UPS %s: the device came back with another report descriptor", self.settings.name
            )
        self.core = HidCore(desc, sub, device.ids, self.settings.core)
        self._descriptor = device.descriptor
        self._last_full = -math.inf

    async def _lost(self, why: Exception) -> None:
        log.warning("UPS %s: lost the device (%s); reconnecting", self.settings.name, why)
        device, self.device, self.usb = self.device, None, None
        self._connected = trio.Event()
        if device is not None:
            await trio.to_thread.run_sync(device.close)

    # -- polling ------------------------------------------------------------------------

    def _mode(self, core: HidCore, now: float) -> WalkMode:
        if not core.initialised:
            return WalkMode.INIT
        if now >= self._last_full + core.settings.pollfreq or core.changed:
            return WalkMode.FULL
        return WalkMode.QUICK

    async def poll(self, planned: float) -> None:
        """One usbhid-ups update: connect if needed, read reports, walk.

        Cancellation may stop it between two USB calls (a call in its thread finishes
        first); the reports already read stay cached and the walk is not run.

        Raises:
            DeviceSilent: The device is away or stopped answering (the data goes stale).
        """
        first = self.core is None
        if self.device is None:
            try:
                await self._connect()
            except DeviceSilent as exc:
                if first:
                    raise NoMatchingDevice(f"UPS {self.settings.name}: {exc}") from exc
                raise
        core, device, blocking = self.core, self.device, self.usb
        assert core is not None
        assert device is not None
        assert blocking is not None
        now = trio.current_time()
        mode = self._mode(core, now)
        try:
            await self._read_reports(core, device, blocking, mode, now)
            for index in core.strings_to_read(mode):
                core.strings[index] = await blocking.call(device.get_string, index)
        except UsbGone as exc:
            await self._lost(exc)
            raise DeviceSilent(str(exc)) from exc
        core.walk(mode)
        if mode is not WalkMode.QUICK:
            self._last_full = now

    async def _read_reports(
        self,
        core: HidCore,
        device: HidUsbDevice,
        blocking: BlockingDevice,
        mode: WalkMode,
        now: float,
    ) -> None:
        max_report = self.settings.maxreport or core.quirks.get("max_report_size")
        for rid in core.reports_to_read(mode, now):
            length = MAX_REPORT_SIZE if max_report else core.cache.lengths.get(rid, 8)
            try:
                report = await blocking.call(device.get_report, rid, length)
            except UsbStall:
                core.cache.fail(rid, ReportFailure.STALL)
                continue
            except UsbGone:
                raise
            except UsbError:  # timeout, overflow...: NUT tries again at the next walk
                core.cache.fail(rid, ReportFailure.TIMEOUT)
                continue
            if not report or report[0] != rid:
                core.cache.fail(rid, ReportFailure.SHORT)
                continue
            if not core.cache.store(report, now):
                log.debug(
                    "UPS %s: report 0x%02x: %d bytes, expected %d",
                    self.settings.name,
                    rid,
                    len(report),
                    core.cache.lengths.get(rid),
                )

    # -- interrupts ---------------------------------------------------------------------

    async def read_interrupts(self, link: DriverLink) -> None:
        """Read the interrupt pipe forever and apply each report at once.

        Cancellation stops it between reads (a read in its thread finishes first). After
        more than ``interrupt_pipe_no_events_tolerance`` empty reads in a row the device
        is dropped as lost, and the next poll opens it again (NUT's reconnect).
        """
        size = self.settings.interruptsize or 64
        timeout_ms = int(self.interrupt_timeout * 1000)
        quiet = 0  # reads in a row that brought no report
        while True:
            start = trio.current_time()
            device, blocking, core = self.device, self.usb, self.core
            if device is None or blocking is None or core is None:
                await self._connected.wait()
                continue
            if self._no_pipe(core):
                return
            try:
                report = await blocking.call(device.read_interrupt, size, timeout_ms)
            except UsbGone as exc:
                if self.device is device:
                    await self._lost(exc)
                continue
            except UsbError as exc:  # overflow, protocol error: not fatal, try again
                log.debug("UPS %s: interrupt read: %s", self.settings.name, exc)
                report = None
            if report is None:
                quiet += 1
                if 0 <= self.settings.no_events_tolerance < quiet and self.device is device:
                    quiet = 0
                    await self._lost(UsbGone("no interrupt events"))
                    continue
                await trio.sleep_until(start + self.interrupt_timeout)
                continue
            quiet = 0
            if self.core is core and core.apply_interrupt(report, trio.current_time()):
                publish_difference(link, self, stale=link.snapshot().stale)

    def _no_pipe(self, core: HidCore) -> bool:
        return self.settings.pollonly or bool(core.quirks.get("pollonly"))

    # -- commands -----------------------------------------------------------------------

    async def execute(self, command: DriverCommand) -> CommandStatus:
        """SET VAR or INSTCMD as usbhid-ups answers them.

        Cancellation between the SET_REPORTs of a composite command (shutdown.return)
        leaves the ones sent done; a USB failure answers FAILED (UNKNOWN for SET VAR, as
        NUT) and an unplugged device is closed for the next poll to reopen.
        """
        core, device, blocking = self.core, self.device, self.usb
        is_set = command.kind is CommandKind.SET
        missing = CommandStatus.UNKNOWN if is_set else CommandStatus.INVALID_ARGUMENT
        if core is None or device is None or blocking is None:
            return CommandStatus.FAILED
        if is_set:
            plan = core.plan_setvar(command.name, command.value or "")
        else:
            plan = core.plan_instcmd(command.name, command.value)
        if plan is None:
            return missing
        try:
            for write in plan:
                if write.pause:
                    await trio.sleep(write.pause)
                await blocking.call(device.set_report, write.report)
        except UsbGone as exc:
            await self._lost(exc)
            return CommandStatus.FAILED
        except UsbError as exc:  # a stall, a timeout...: the device refused it
            log.warning(
                "UPS %s: %s %s failed: %s",
                self.settings.name,
                command.kind.value,
                command.name,
                exc,
            )
            return CommandStatus.UNKNOWN if is_set else CommandStatus.FAILED
        if plan:
            core.written()
        return CommandStatus.SUCCESS

    # -- the driver ---------------------------------------------------------------------

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Drive the UPS until cancelled (see the module's notes).

        Raises:
            NoMatchingDevice: If no device matches when it starts.
        """
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.read_interrupts, link)
                await run_polling_driver(
                    self,
                    link,
                    self.poll,
                    self.execute,
                    every(self.settings.core.pollinterval, trio.current_time()),
                    task_status=task_status,
                )
        finally:
            await self._close()

    async def shutdown(self) -> None:
        """``usbhid-ups -k``: shutdown.return, else shutdown.reboot, else load.off.delay.

        As usbhid-ups.c: the device is opened and walked once (``upsdrv_initups``, which
        applies ``offdelay``/``ondelay``), then the first of :data:`SHUTDOWN_ORDER` that
        the device takes ends it. Cancellation closes the device.

        Raises:
            DriverFailed: If no device matches, or none of the three was taken.
        """
        try:
            await self.poll(trio.current_time())
            for name in SHUTDOWN_ORDER:
                command = DriverCommand(CommandKind.INSTCMD, name)
                if await self.execute(command) is CommandStatus.SUCCESS:
                    return
            raise DriverFailed(f"UPS {self.settings.name}: shutdown failed")
        except (DeviceSilent, NoMatchingDevice) as exc:
            raise DriverFailed(str(exc)) from exc
        finally:
            await self._close()

    async def _close(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(device.close)


def usbhid_factory(section: UpsSection, context: DriverContext) -> UsbhidUps:
    """Build the driver for a ``driver = usbhid-ups`` section (``DRIVERS["usbhid-ups"]``).

    Raises:
        ConfigError: For a bad option value, an invalid regular expression, an unknown
            subdriver, or a ``replay:`` file that cannot be read as a recording.
    """
    return UsbhidUps(UsbhidSettings.from_section(section, context.ups_globals, context.confdir))
