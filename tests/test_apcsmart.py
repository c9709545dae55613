"""nuttrio's apcsmart: the core's rules, and the driver on a pty simulator (fast mock clock).

``MockClock(rate=4)``: virtual time runs four times faster than real time, so polls,
NUT's 1.5 s and 3 s read timeouts and the 3..15 s window of the nasty commands cost a
quarter, while the simulator thread still answers well within any timeout (250 ms of
real time for a 1 s one, room for a loaded machine).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from nuttrio.cli import tools
from nuttrio.daemon import DaemonOptions
from nuttrio.hw.apcsmart import (
    APC_VARS,
    STALE_PAUSE,
    VARTAB,
    ApcCore,
    apcsmart_factory,
    convert,
)
from nuttrio.hw.base import DRIVERS, DriverContext
from nuttrio.hw.dstate import DriverArgs
from nuttrio.hw.sim_apcsmart import DEFAULT_VALUES, ApcModel, ApcSession
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.nutconf import ConfigError, UpsSection
from nuttrio.state import CommandKind, CommandStatus, UpsEntry

from .helpers import run_command, snapshot_where, ups_section


def section(port: str = "/dev/ttyS0", **options: str) -> UpsSection:
    return ups_section("apc", "apcsmart", port, lineno=3, **options)


def core() -> ApcCore:
    c = ApcCore(DriverArgs.from_section(section(), APC_VARS))
    c.start()
    return c


def var(name: str) -> int:
    return next(i for i, v in enumerate(VARTAB) if v.name == name)


# ---------------------------------------------------------------------------------------
# The core


def test_conversions() -> None:
    assert convert(VARTAB[var("battery.runtime")], "0042:") == "2520"
    assert convert(VARTAB[var("ups.test.interval")], "336") == str(336 * 3600)
    assert convert(VARTAB[var("input.transfer.reason")], "T") == "line voltage notch or spike"
    assert convert(VARTAB[var("input.transfer.reason")], "Q") == "Q"
    assert convert(VARTAB[var("ups.load")], "012.4") == "012.4"


@pytest.mark.parametrize(
    ("byte", "status"),
    [("08", "OL"), ("10", "OB"), ("50", "OB LB"), ("00", "OFF"), ("0D", "CAL BOOST OL"),
     ("A8", "OL OVER RB"), ("0a", "TRIM OL")],
)  # fmt: skip
def test_status_byte(byte: str, status: str) -> None:
    c = core()
    assert c.status_reply(byte)
    assert c.getinfo("ups.status") == status


def test_alerts_change_the_status() -> None:
    c = core()
    c.status_reply("08")
    for alert, status in (("!", "OB"), ("%", "OB LB"), ("$", "OL LB"), ("+", "OL"),
                          ("?", "OL OVER"), ("=", "OL"), ("#", "OL RB")):  # fmt: skip
        c.alert(alert)
        assert c.getinfo("ups.status") == status
    assert not c.status_reply("NA")


def test_capabilities_become_enumerations() -> None:
    c = core()
    c.setinfo("ups.firmware", "651.13.I")
    for name in ("input.transfer.high", "ups.delay.shutdown", "ambient.0.humidity"):
        c.present.add(var(name))
        c.setinfo(name, "x")
    # u for every location, p only for D (domestic: not this I unit), H packed (refused).
    c.parse_caps("#u4432532642712640pD2202180H4220011")
    snap = {v.name: v for v in c.variables()}
    assert snap["input.transfer.high"].rw
    assert snap["input.transfer.high"].enums == ("253", "264", "271")
    assert not snap["ups.delay.shutdown"].rw
    assert not snap["ambient.0.humidity"].rw


def test_packed_values() -> None:
    c = core()
    index = var("ambient.0.temperature")
    c.set_var(index, "21.50,,30.00")
    got = {v.name: v.value for v in c.variables()}
    assert got["ambient.0.temperature"] == "21.50"
    assert got["ambient.1.temperature"] == "N/A"
    assert got["ambient.2.temperature"] == "30.00"
    c.set_var(index, "22.00")
    assert c.getinfo("ambient.1.temperature") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"awd": "1234"}, "invalid value (1234) for option 'awd'"),
        ({"sdtype": "6"}, "invalid value (6) for option 'sdtype'"),
        ({"advorder": "5"}, "invalid value (5) for option 'advorder'"),
        ({"cshdelay": "10"}, "invalid value (10) for option 'cshdelay'"),
        ({"nope": "1"}, "'nope' is not a valid setting for driver apcsmart"),
    ],
)
def test_bad_sections(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        apcsmart_factory(section(**options), DriverContext(Path("/etc/nut")))
    assert message in str(err.value)
    assert "/etc/nut/ups.conf" in str(err.value)
    assert "apcsmart" in DRIVERS


# ---------------------------------------------------------------------------------------
# The driver on a pty


@asynccontextmanager
async def on_pty(tmp_path: Path, model: ApcModel) -> AsyncIterator[tuple[PtySimulator, UpsEntry]]:
    link = tmp_path / "ttyAPC"
    with PtySimulator(model.session, [link]) as sim:
        driver = apcsmart_factory(section(str(link), pollinterval="1"), DriverContext(tmp_path))
        entry = UpsEntry("apc")
        with entry.connect() as dlink:
            async with trio.open_nursery() as nursery:
                await nursery.start(driver.run, dlink)
                yield sim, entry
                nursery.cancel_scope.cancel()


until = snapshot_where


send = run_command


async def test_driver_follows_the_simulator(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = ApcModel()
    async with on_pty(tmp_path, model) as (_sim, entry):
        snap = entry.snapshot()
        assert snap.value("ups.status") == "OL"
        assert snap.value("ups.mfr") == "APC"
        assert snap.value("battery.runtime") == "2520"
        assert "shutdown.return" in snap.commands
        model.change(online=False, on_battery=True, low_battery=True)
        await until(entry, lambda s: s.value("ups.status") == "OB LB")
        model.set_value("C", "NA")  # the unit stops answering a query: the variable goes
        await until(entry, lambda s: s.value("ups.temperature") is None)


async def test_silence_and_a_vanished_port_make_the_data_stale(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = ApcModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        sim.faults.silent = True
        await until(entry, lambda s: s.stale)
        sim.faults.silent = False
        began = trio.current_time()
        await until(entry, lambda s: not s.stale)
        # Left alone for STALE_PAUSE - 1 polls first (the polls missed during the failed
        # one's 3 s timeout run back to back, so the pause is shorter than 9 s).
        assert trio.current_time() - began >= STALE_PAUSE / 2
        sim.faults.short = True
        await until(entry, lambda s: s.stale)
        sim.faults.short = False
        await until(entry, lambda s: not s.stale)
        sim.vanish()
        await until(entry, lambda s: s.stale)
        sim.come_back()
        snap = await until(entry, lambda s: not s.stale)
        assert snap.value("ups.status") == "OL"


async def test_nasty_commands_need_confirming(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = ApcModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        session = sim.session()
        assert isinstance(session, ApcSession)
        assert await send(entry, CommandKind.INSTCMD, "shutdown.stayoff") is CommandStatus.SUCCESS
        await trio.sleep(20)  # too late: this one only starts a new confirmation
        assert await send(entry, CommandKind.INSTCMD, "shutdown.stayoff") is CommandStatus.SUCCESS
        assert "K" not in session.received
        await trio.sleep(5)
        assert await send(entry, CommandKind.INSTCMD, "shutdown.stayoff") is CommandStatus.SUCCESS
        assert model.shutdowns == ["KK"]
        assert await send(entry, CommandKind.INSTCMD, "shutdown.return", "bogus") is (
            CommandStatus.INVALID_ARGUMENT
        )
        assert await send(entry, CommandKind.INSTCMD, "test.battery.start") is (
            CommandStatus.SUCCESS
        )
        assert session.received[-1] == "W"


async def test_sets(fast_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    model = ApcModel()
    async with on_pty(tmp_path, model) as (_sim, entry):
        high = entry.snapshot().get("input.transfer.high")
        assert high is not None
        assert high.enums == ("253", "264", "271", "280")
        assert await send(entry, CommandKind.SET, "input.transfer.high", "280") is (
            CommandStatus.SUCCESS
        )
        assert model.values["u"] == "280"
        assert entry.snapshot().value("input.transfer.high") == "280"
        assert await send(entry, CommandKind.SET, "ups.id", "ROOM2") is CommandStatus.SUCCESS
        assert model.values["c"] == "ROOM2"
        assert await send(entry, CommandKind.SET, "ups.id", "MUCHTOOLONG") is CommandStatus.FAILED
        assert await send(entry, CommandKind.SET, "ups.load", "5") is CommandStatus.UNKNOWN


async def test_shutdown_ups_sends_the_minus_k_sequence(
    fast_clock: trio.testing.MockClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ApcModel()
    model.change(online=False, on_battery=True)
    link = tmp_path / "ttyAPC"
    confdir = tmp_path / "conf"
    confdir.mkdir()
    (confdir / "ups.conf").write_text(f"[apc]\n\tdriver = apcsmart\n\tport = {link}\n")
    (confdir / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
    (confdir / "upsd.users").write_text("")
    with PtySimulator(model.session, [link]):
        assert await tools.shutdown_ups(DaemonOptions(confdir=confdir), "apc") == 0
    assert model.shutdowns == ["S"]  # sdtype 0 on battery: the soft shutdown, sent once
    assert "the apcsmart shutdown sequence" in capsys.readouterr().out


async def test_an_old_model_is_set_up_from_the_firmware_table(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    values = {k: v for k, v in DEFAULT_VALUES.items() if k not in "b\x01"}
    model = ApcModel({**values, "V": "6QD"})
    async with on_pty(tmp_path, model) as (sim, entry):
        snap = entry.snapshot()
        assert (snap.value("ups.model"), snap.value("ups.firmware")) == ("Smart-UPS", "6QD")
        assert "calibrate.start" in snap.commands  # D is in 6QD's list
        assert "a" not in sim.session().received
