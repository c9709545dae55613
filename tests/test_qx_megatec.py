"""nuttrio's nutdrv_qx (megatec): the item rules, and the driver on a pty.

The driver runs on ``MockClock(rate=4)`` (see tests/test_megatec.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from nuttrio.hw.base import DRIVERS, DriverContext, create_driver
from nuttrio.hw.dstate import DriverArgs
from nuttrio.hw.qx_megatec import (
    MEGATEC_ITEMS,
    QX_VARS,
    QxMegatec,
    QxMegatecCore,
    QxSettings,
    nutdrv_qx_factory,
)
from nuttrio.hw.sim_megatec import MegatecModel, MegatecSession
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.nutconf import ConfigError, UpsSection
from nuttrio.state import CommandKind, CommandStatus, DriverCommand, UpsEntry

from .helpers import snapshot_where, ups_section

Q1 = b"(230.0 195.0 231.0 021 50.0 27.30 25.0 00001001\r"


def section(port: str = "/dev/ttyS0", **options: str) -> UpsSection:
    return ups_section("qx", "nutdrv_qx", port, lineno=4, **options)


def core(**options: str) -> QxMegatecCore:
    args = DriverArgs.from_section(section(**options), QX_VARS)
    c = QxMegatecCore(args, QxSettings.from_args(args))
    c.start()
    return c


def test_columns_and_formats() -> None:
    c = core()
    voltage = next(i for i in MEGATEC_ITEMS if i.name == "input.voltage")
    assert c.value_of(voltage, Q1) == "230.0"
    assert c.value_of(voltage, Q1[:40]) is None  # short
    assert c.value_of(voltage, b"#" + Q1[1:]) is None  # wrong start
    assert c.infoval_set(voltage, "230.0") == 1
    assert c.infoval_set(voltage, "--.-") == -1
    mfr = next(i for i in MEGATEC_ITEMS if i.name == "device.mfr")
    assert c.value_of(mfr, b"#NOT_A_LIVE_UPS  TESTING    TESTING   \r") == "NOT_A_LIVE_UPS "
    assert c.infoval_set(mfr, "#  Acme #") == 1
    assert c.getinfo("device.mfr") == "Acme"


@pytest.mark.parametrize(
    ("start", "value", "status"),
    [(38, "1", set()), (38, "0", {"OL"}), (39, "1", {"LB"}), (43, "1", {"CAL"}),
     (44, "1", {"FSD"})],
)  # fmt: skip
def test_status_bits(start: int, value: str, status: set[str]) -> None:
    c = core()
    bit = next(i for i in MEGATEC_ITEMS if i.start == start and i.name == "ups.status")
    assert c.infoval_set(bit, value) == 0
    assert c.ups_status == status
    assert c.infoval_set(bit, "x") == -1


def test_boost_bit_needs_sane_voltages() -> None:
    c = core()
    bit = next(i for i in MEGATEC_ITEMS if i.start == 40)
    c.setinfo("input.voltage", "200.0")
    c.setinfo("output.voltage", "230.0")
    assert c.infoval_set(bit, "1") == 0
    assert c.ups_status == {"BOOST"}
    c.setinfo("output.voltage", "600.0")  # too high: the bit is unreadable, the walk fails
    assert c.infoval_set(bit, "1") == -1


def test_status_words_and_alarms() -> None:
    c = core()
    c.ups_status = {"OL", "CAL", "FSD", "TRIM"}
    c.alarms = ["UPS selftest failed!"]
    c.commit_status(full=True)
    assert c.getinfo("ups.alarm") == "UPS selftest failed! Shutdown imminent!"
    assert c.getinfo("ups.status") == "ALARM OL TRIM CAL FSD"


def test_commands_and_their_replies() -> None:
    c = core()
    c.setinfo("ups.delay.shutdown", "42")
    c.setinfo("ups.delay.start", "120")
    by_name = {i.name: i for i in MEGATEC_ITEMS}
    assert c.command_request(by_name["shutdown.return"], None) == b"S.7R0002\r"
    assert c.command_request(by_name["shutdown.stayoff"], None) == b"S.7R0000\r"
    assert c.command_request(by_name["test.battery.start"], None) == b"T10\r"
    assert c.command_request(by_name["test.battery.start"], "59") is None
    assert c.command_request(by_name["beeper.toggle"], None) == b"Q\r"
    assert c.command_status(b"") is CommandStatus.SUCCESS
    assert c.command_status(b"ACK\r") is CommandStatus.SUCCESS
    assert c.command_status(b"(ACK\r") is CommandStatus.FAILED


def test_writable_delays() -> None:
    c = core()
    for delay in (i for i in MEGATEC_ITEMS if i.name.startswith("ups.delay.")):
        c.init_absent(delay)
    snap = {v.name: v for v in c.variables()}
    assert snap["ups.delay.start"].rw
    assert snap["ups.delay.start"].ranges == ((0, 599940),)
    assert c.setvar("ups.delay.shutdown", "95") is CommandStatus.SUCCESS
    assert c.getinfo("ups.delay.shutdown") == "60"
    assert c.setvar("ups.delay.shutdown", "59") is CommandStatus.SUCCESS
    assert c.getinfo("ups.delay.shutdown") == "54"
    assert c.setvar("ups.delay.shutdown", "5") is CommandStatus.UNKNOWN
    assert c.setvar("ups.delay.start", "61") is CommandStatus.SUCCESS
    assert c.getinfo("ups.delay.start") == "60"
    assert c.setvar("ups.load", "1") is CommandStatus.UNKNOWN


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "voltronic"}, "protocol 'voltronic' is not available natively"),
        ({"offdelay": "601"}, "offdelay '601' out of range [12..600]"),
        ({"ondelay": "x"}, "ondelay 'x' out of range"),
        ({"cablepower": "up"}, "not valid for 'cablepower'"),
    ],
)
def test_bad_sections(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        nutdrv_qx_factory(section(**options), DriverContext(Path("/etc/nut")))


def test_usb_port_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="USB"):
        create_driver(section("auto"), DriverContext(Path("/etc/nut")))
    assert "nutdrv_qx" in DRIVERS


# ---------------------------------------------------------------------------------------
# The driver on a pty


@asynccontextmanager
async def on_pty(
    tmp_path: Path, model: MegatecModel, **options: str
) -> AsyncIterator[tuple[PtySimulator, UpsEntry]]:
    link = tmp_path / "ttyQX"
    with PtySimulator(model.session, [link]) as sim:
        driver = nutdrv_qx_factory(
            section(str(link), pollinterval="1", **options), DriverContext(tmp_path)
        )
        assert isinstance(driver, QxMegatec)
        entry = UpsEntry("qx")
        with entry.connect() as dlink:
            async with trio.open_nursery() as nursery:
                await nursery.start(driver.run, dlink)
                yield sim, entry
                nursery.cancel_scope.cancel()


until = snapshot_where


async def test_quick_and_full_updates(fast_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    model = MegatecModel()
    async with on_pty(tmp_path, model, pollfreq="10") as (sim, entry):
        snap = entry.snapshot()
        assert snap.value("device.model") == "SimQ1 1000"
        assert snap.value("ups.mfr") is None  # nutdrv_qx names it device.mfr only
        session = sim.session()
        assert isinstance(session, MegatecSession)
        assert session.received[:3] == ["Q1", "I", "Q1"]  # claim, then the init walk
        began = trio.current_time()
        model.change(utility_fail=True, input_voltage=0.0)
        snap = await until(entry, lambda s: s.value("ups.status") == "OB")
        assert snap.value("input.voltage") == "230.0"  # a quick update: status bits only
        snap = await until(entry, lambda s: s.value("input.voltage") == "0.0")
        assert trio.current_time() - began >= 5  # the next full update (pollfreq 10)


async def test_a_command_forces_a_full_update(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    model.change(ack=b"")
    async with on_pty(tmp_path, model, pollfreq="1000") as (_sim, entry):
        model.change(load=77)
        await trio.sleep(5)
        assert entry.snapshot().value("ups.load") == "21"
        command = DriverCommand(CommandKind.INSTCMD, "beeper.toggle")
        assert entry.submit(command)
        assert await command.result.wait() is CommandStatus.SUCCESS
        snap = await until(entry, lambda s: s.value("ups.load") == "77")
        assert snap.value("ups.beeper.status") == "disabled"


async def test_garbage_then_stale_then_back(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        sim.faults.garbage = True
        await until(entry, lambda s: s.stale)
        sim.faults.garbage = False
        await until(entry, lambda s: not s.stale)
