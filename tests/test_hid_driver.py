"""The usbhid-ups driver end to end through pyusb and the fake backend (replay)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from nuttrio.hw import DriverFailed
from nuttrio.hw.base import DriverContext
from nuttrio.hw.hid.driver import SHUTDOWN_ORDER, NoMatchingDevice, UsbhidUps, usbhid_factory
from nuttrio.hw.hid.fakeusb import FakeHidDevice, ReplayBackend
from nuttrio.hw.hid.recording import load_recording, parse_explore_log
from nuttrio.nutconf import ConfigError, UpsSection
from nuttrio.state import CommandKind, CommandStatus, UpsEntry

from .helpers import run_command, snapshot_where, ups_section
from .hid_data import BK650, CS500, need


def section(port: str, **options: str) -> UpsSection:
    return ups_section("hid", "usbhid-ups", port, lineno=12, **options)


def settings_for(port: str, **options: str):
    return usbhid_factory(section(port, **options), DriverContext(Path("/"))).settings


@asynccontextmanager
async def running(driver):
    entry = UpsEntry("hid")
    with entry.connect() as link:
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, link)
            yield entry
            nursery.cancel_scope.cancel()


def values(entry) -> dict[str, str]:
    return {v.name: v.value for v in entry.snapshot().variables.values()}


@pytest.fixture
def clock():
    """A mock clock that jumps only after 100 ms of real idleness: the driver's USB calls
    run in worker threads, and an eager autojump would skip time while one is running
    (20 ms flaked on a loaded machine)."""
    return trio.testing.MockClock(autojump_threshold=0.1)


async def wait_until(entry, predicate):
    """A snapshot of ``entry`` for which ``predicate`` holds, within 300 s of mock time."""
    return await snapshot_where(entry, predicate, 300)


def plain(snapshot) -> dict[str, str]:
    return {v.name: v.value for v in snapshot.variables.values()}


def fake(recording, clock, **kwargs):
    device = FakeHidDevice(recording, clock=clock.current_time, **kwargs)
    return device, ReplayBackend([device])


send = run_command


async def test_replay_port_publishes_what_nut_printed(clock):
    path = need(BK650)
    driver = usbhid_factory(section(f"replay:{path}"), DriverContext(Path("/")))
    nut = parse_explore_log(path.read_text()).upsc
    async with running(driver) as entry:
        ours = values(entry)
    skip = {"ups.serial", "ups.load"}  # anonymised / another moment (test_hid_tables)
    for name, value in nut.items():
        if not name.startswith("driver.") and name not in skip:
            assert ours.get(name) == value, name
    assert ours["driver.name"] == "usbhid-ups"
    assert ours["driver.parameter.port"] == f"replay:{path}"
    assert ours["driver.version.data"] == "APC HID 0.98"


async def test_interrupt_report_reaches_the_store_before_the_next_poll(clock):
    rec = load_recording(need(BK650))
    rec = attrs.evolve(rec, interrupts=((3.0, bytes.fromhex("160a000000")),))
    _, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto", pollinterval="60"), backend)
    async with running(driver) as entry:
        start = trio.current_time()
        assert values(entry)["ups.status"] == "OL DISCHRG"
        await wait_until(entry, lambda snap: plain(snap)["ups.status"] == "OB DISCHRG")
        assert trio.current_time() - start < 30  # the next poll is 60 s away


async def test_stalls_timeouts_and_short_reports_are_not_fatal(clock):
    rec = load_recording(need(BK650))
    device, backend = fake(rec, clock)
    device.stall(0x23)  # UPS.Battery.RunTimeToEmpty, the APC table's first choice
    device.stall(0x0F)  # UPS.PowerSummary.RunTimeToEmpty, its second
    device.timeout(0x50)  # PercentLoad
    device.short(0x31, 2)  # Input.Voltage: 16 bits, only the low byte comes
    driver = UsbhidUps(settings_for("auto"), backend)
    async with running(driver) as entry:
        ours = values(entry)
        assert "battery.runtime" not in ours
        assert "ups.load" not in ours
        assert ours["input.voltage"] == "232.0"  # 0xe8 and the zeroed high byte
        assert ours["battery.charge"] == "100"
        device.heal()
        await wait_until(entry, lambda snap: "battery.runtime" in plain(snap))
        assert values(entry)["battery.runtime"] == "3618"
        assert not entry.snapshot().stale


async def test_unplug_goes_stale_and_replug_recovers(clock):
    rec = load_recording(need(BK650))
    device, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto"), backend)
    async with running(driver) as entry:
        assert not entry.snapshot().stale
        device.unplug()
        await wait_until(entry, lambda snap: snap.stale)
        assert values(entry)["battery.charge"] == "100"  # last known, flagged stale
        assert await send(entry, CommandKind.INSTCMD, "beeper.enable") is CommandStatus.FAILED
        opened = device.opened
        device.replug()
        await wait_until(entry, lambda snap: not snap.stale)
        assert device.opened > opened
        assert await send(entry, CommandKind.INSTCMD, "beeper.enable") is CommandStatus.SUCCESS


async def test_replug_with_another_descriptor_rebinds(clock):
    bk = load_recording(need(BK650))
    cs = load_recording(need(CS500))
    # the same UPS (ids, serial) answering with the CS 500's firmware
    cs = attrs.evolve(cs, vendorid=bk.vendorid, productid=bk.productid, serial=bk.serial)
    device, backend = fake(bk, clock)
    driver = UsbhidUps(settings_for("auto"), backend)
    async with running(driver) as entry:
        assert values(entry)["battery.runtime"] == "3618"
        device.unplug()
        await wait_until(entry, lambda snap: snap.stale)
        device.replug(cs)
        await wait_until(entry, lambda snap: not snap.stale)
        await wait_until(entry, lambda snap: plain(snap).get("battery.runtime") == "2580")
        ours = values(entry)
        assert "input.voltage" not in ours  # the CS 500 has none
        assert ours["ups.timer.reboot"] == "0"


async def test_commands_become_set_reports(clock):
    rec = load_recording(need(BK650))
    device, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto"), backend)
    async with running(driver) as entry:
        status = await send(entry, CommandKind.INSTCMD, "beeper.enable")
        assert status is CommandStatus.SUCCESS
        assert device.writes == [bytes.fromhex("1802")]
        status = await send(entry, CommandKind.SET, "battery.charge.low", "40")
        assert status is CommandStatus.SUCCESS
        assert device.writes[-1] == bytes.fromhex("1128")
        # a full walk follows the write and reads the value back from the device
        await wait_until(entry, lambda snap: plain(snap)["battery.charge.low"] == "40")
        assert values(entry)["ups.beeper.status"] == "enabled"
        status = await send(entry, CommandKind.INSTCMD, "no.such.command")
        assert status is CommandStatus.INVALID_ARGUMENT
        status = await send(entry, CommandKind.SET, "battery.charge", "3")
        assert status is CommandStatus.UNKNOWN


async def test_override_and_default(clock):
    rec = load_recording(need(BK650))
    _, backend = fake(rec, clock)
    settings = settings_for(
        "auto",
        **{
            "override.battery.charge": "42",
            "default.ups.location": "rack 3",
            "default.battery.runtime": "1",
        },
    )
    async with running(UsbhidUps(settings, backend)) as entry:
        ours = values(entry)
    assert ours["battery.charge"] == "42"
    assert ours["ups.location"] == "rack 3"
    assert ours["battery.runtime"] == "3618"  # the device gives it: no default


async def test_matching_options(clock):
    rec = load_recording(need(BK650))
    _, backend = fake(rec, clock)
    with pytest.raises(NoMatchingDevice, match="no matching HID UPS found"):
        await UsbhidUps(settings_for("auto", vendorid="0764"), backend).poll(0.0)
    ok = settings_for("auto", vendorid="051D", product="bk650.*", serial="9B2019A14274", bus="001")
    async with running(UsbhidUps(ok, backend)) as entry:
        assert values(entry)["ups.model"] == "BK650M2-CH"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vendorid": "05[1d"}, "invalid regular expression"),
        ({"pollfreq": "soon"}, "pollfreq = 'soon' is not a whole number"),
        ({"subdriver": "belkin"}, "subdriver 'belkin' unknown"),
        ({"vendorid_": "051d"}, "'vendorid_' is not a valid setting for driver usbhid-ups"),
    ],
)
def test_bad_sections_name_file_and_line(options, message):
    with pytest.raises(ConfigError, match=message) as info:
        settings_for("auto", **options)
    assert "ups.conf" in str(info.value)
    assert "12" in str(info.value)


def test_bad_replay_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="not a HID recording"):
        settings_for(f"replay:{bad}")
    with pytest.raises(ConfigError, match="No such file"):
        settings_for(f"replay:{tmp_path / 'missing.json'}")


def test_pyusb_is_imported_only_for_a_usbhid_section():
    code = (
        "import sys, nuttrio.hw, nuttrio.hw.hid.core;"
        "assert 'usb' not in sys.modules, 'imported early';"
        "from nuttrio.hw.base import DRIVERS; DRIVERS['usbhid-ups'];"
        "assert 'usb' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_interrupt_pipe_faults(clock):
    import errno

    rec = load_recording(need(BK650))
    rec = attrs.evolve(rec, interrupts=((2.0, bytes.fromhex("160c000000")),))
    device, backend = fake(rec, clock)
    # a stall is cleared, a timeout or an overflow retried: none is fatal
    device.interrupt_errors = [errno.EPIPE, errno.ETIMEDOUT, errno.EOVERFLOW]
    device.fault(0x50, errno.EOVERFLOW)  # nor on GET_REPORT
    driver = UsbhidUps(settings_for("auto"), backend)
    async with running(driver) as entry:
        await wait_until(entry, lambda snap: plain(snap)["ups.status"] == "OL")
        assert device.opened == 1
        device.interrupt_errors = [errno.EIO]  # an I/O error: reopen the device
        await wait_until(entry, lambda snap: device.opened == 2 and not snap.stale)
        assert plain(entry.snapshot())["battery.charge"] == "100"


async def test_interruptonly_never_polls(clock):
    rec = load_recording(need(BK650))
    rec = attrs.evolve(
        rec, interrupts=((1.0, bytes.fromhex("0c5a")), (1.5, bytes.fromhex("160d000000")))
    )
    device, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto", interruptonly=""), backend)
    async with running(driver) as entry:
        await wait_until(entry, lambda snap: plain(snap).get("battery.charge") == "90")
        await wait_until(entry, lambda snap: plain(snap)["ups.status"] == "OL CHRG")
    assert device.reads == []


def test_flags_and_parameters():
    settings = settings_for(
        "auto",
        pollonly="",
        maxreport="",
        disable_fix_report_desc="",
        pollfreq="40",
        vendorid="051d",
    )
    assert settings.pollonly
    assert settings.maxreport
    assert not settings.fix_report_desc
    assert settings.core.pollfreq == 40
    params = dict(settings.parameters)
    assert params["driver.parameter.pollfreq"] == "40"
    assert params["driver.parameter.vendorid"] == "051d"
    assert params["driver.flag.pollonly"] == "enabled"


async def test_scan_lists_the_usb_ups_with_a_section_that_finds_it(clock):
    """``nuttrio scan``'s USB half reads descriptors only, and its section picks the UPS."""
    from nuttrio.hw.hid.scan import usb_upses
    from nuttrio.hw.scan import report

    rec = load_recording(need(BK650))
    device, backend = fake(rec, clock)
    [(where, found)] = usb_upses(backend)
    assert (device.reads, device.writes) == ([], [])  # no report asked for, nothing written
    assert where.startswith(f"USB {rec.vendorid:04x}:{rec.productid:04x} bus ")
    text, count = report([(where, found)])
    assert count == 1
    keys = dict(line.strip().split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert (keys["driver"], keys["port"], keys["vendorid"]) == ("usbhid-ups", '"auto"', '"051d"')
    options = {k: v.strip('"') for k, v in keys.items() if k not in ("driver", "port", "desc")}
    driver = UsbhidUps(settings_for("auto", **options), backend)
    async with running(driver) as entry:
        await wait_until(entry, lambda snap: "ups.status" in plain(snap))
    assert device.opened == 2  # once by the scan, for the strings; once by the driver
    other, _ = fake(rec, clock)
    assert usb_upses(ReplayBackend([])) == []
    assert len(usb_upses(ReplayBackend([device, other]))) == 2


@pytest.mark.parametrize("recording", [BK650, CS500])
async def test_minus_k_sends_the_first_shutdown_the_device_has(recording, clock):
    # usbhid-ups -k tries shutdown.return, then shutdown.reboot, then load.off.delay.
    rec = load_recording(need(recording))
    device, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto", offdelay="60", ondelay="120"), backend)
    async with running(driver) as entry:
        offered = entry.snapshot().commands
        first = next(c for c in SHUTDOWN_ORDER if c in offered)
        assert await send(entry, CommandKind.INSTCMD, first) is CommandStatus.SUCCESS
    expected = list(device.writes)
    assert expected
    fresh, backend = fake(rec, clock)
    await UsbhidUps(settings_for("auto", offdelay="60", ondelay="120"), backend).shutdown()
    assert fresh.writes == expected


async def test_minus_k_without_a_device_fails(clock):
    with pytest.raises(DriverFailed, match="no matching HID UPS"):
        await UsbhidUps(settings_for("auto"), ReplayBackend([])).shutdown()


def test_ignorelb_reaches_the_core_and_is_published():
    settings = settings_for("auto", ignorelb="")
    assert settings.core.ignorelb
    assert dict(settings.parameters)["driver.flag.ignorelb"] == "enabled"
    assert not settings_for("auto").core.ignorelb


def test_later_options_are_checked_and_published_as_nut():
    settings = settings_for(
        "auto",
        onlinedischarge_log_throttle_sec="-5",
        onlinedischarge_log_throttle_hovercharge="90",
        lbrb_log_delay_sec="7",
        lbrb_log_delay_without_calibrating="",
        interrupt_pipe_no_events_tolerance="4",
    )
    params = dict(settings.parameters)
    assert params["driver.parameter.onlinedischarge_log_throttle_sec"] == "-5"
    assert params["driver.parameter.onlinedischarge_log_throttle_hovercharge"] == "90"
    assert params["driver.parameter.lbrb_log_delay_sec"] == "7"
    assert params["driver.flag.lbrb_log_delay_without_calibrating"] == "enabled"
    assert params["driver.parameter.interrupt_pipe_no_events_tolerance"] == "4"
    assert settings.no_events_tolerance == 4
    assert settings.core.lbrb_log_delay_sec == 7
    assert settings.core.lbrb_log_delay_without_calibrating
    plain_settings = settings_for("auto")
    tolerance = dict(plain_settings.parameters)[
        "driver.parameter.interrupt_pipe_no_events_tolerance"
    ]
    assert tolerance == "-1"  # usbhid-ups publishes the tolerance it took, always
    assert plain_settings.core.lbrb_log_delay_sec == 0
    # bad values: usbhid-ups logs and takes its default
    bad = settings_for("auto", lbrb_log_delay_sec="x", interrupt_pipe_no_events_tolerance="y")
    assert bad.core.lbrb_log_delay_sec == 3
    assert bad.no_events_tolerance == -1


async def test_no_interrupt_events_beyond_the_tolerance_reconnects(clock):
    rec = attrs.evolve(load_recording(need(BK650)), interrupts=())
    device, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto", interrupt_pipe_no_events_tolerance="3"), backend)
    async with running(driver):
        start = trio.current_time()
        with trio.fail_after(60):
            while device.opened < 2:  # noqa: ASYNC110  (the same data after a reopen: no snapshot)
                await trio.sleep(0.25)
        # 4 empty reads of 0.75 s (the first after the connect) pass before the reconnect
        assert trio.current_time() - start >= 3 * 0.75


async def test_no_interrupt_events_are_tolerated_by_default(clock):
    rec = attrs.evolve(load_recording(need(BK650)), interrupts=())
    device, backend = fake(rec, clock)
    driver = UsbhidUps(settings_for("auto"), backend)
    async with running(driver):
        await trio.sleep(60)
        assert device.opened == 1


def test_matching_is_nuts_usb_common_c():
    """Whole-string, case-insensitive, the device's strings cut of blanks at both ends,
    POSIX bracket classes (NUT compiles REG_EXTENDED | REG_ICASE)."""
    from nuttrio.hw.hid.pyusb_io import UsbMatch

    match = UsbMatch.from_options(
        {"vendorid": "051D", "product": "Back-UPS [[:alpha:]]+ [[:digit:]]+", "serial": "ab c"}
    )
    facts = {"vendorid": "051d", "product": "  Back-UPS CS 500 \n", "serial": "AB C\t"}
    assert match.accepts(facts)
    assert not match.accepts({**facts, "product": "Back-UPS CS 500x"})  # whole string
    assert not match.accepts({**facts, "product": "x Back-UPS CS 500"})
    assert not match.accepts({**facts, "serial": "a b c"})
    assert UsbMatch.from_options({"serial": ""}).accepts({})  # a missing string is ""
