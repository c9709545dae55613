"""nuttrio's blazer_ser: the sans-IO core on recorded replies, and the driver on a pty simulator.

Driver tests run on ``MockClock(rate=4)``: virtual time runs four times faster than real
time, so NUT's 1 s reply timeout and the 1 s polls cost 0.25 s each, while the simulator
thread still answers well within any timeout (room for a loaded machine).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from nuttrio.hw.base import DRIVERS, DriverContext, create_driver
from nuttrio.hw.dstate import DriverArgs
from nuttrio.hw.megatec import (
    BLAZER_VARS,
    BlazerCore,
    BlazerSer,
    BlazerSettings,
    blazer_ser_factory,
    strtod,
)
from nuttrio.hw.serial_line import STARTUP_PATIENCE
from nuttrio.hw.sim_megatec import MegatecModel, MegatecSession, MegatecState
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.nutconf import ConfigError, UpsSection
from nuttrio.state import CommandKind, CommandStatus, UpsEntry, UpsSnapshot

from .helpers import run_command, snapshot_where, ups_section, wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import free_port, nut_request, write_nut_config

Q1_OL = b"(230.0 230.0 230.0 021 50.0 27.30 25.0 00001001\r"


def section(port: str = "/dev/ttyS0", **options: str) -> UpsSection:
    return ups_section("q1", "blazer_ser", port, lineno=12, **options)


def core(**options: str) -> BlazerCore:
    args = DriverArgs.from_section(section(**options), BLAZER_VARS)
    c = BlazerCore(args, BlazerSettings.from_args(args))
    c.start()
    return c


def values(c: BlazerCore) -> dict[str, str]:
    return {v.name: v.value for v in c.variables() if not v.name.startswith("driver.")}


# ---------------------------------------------------------------------------------------
# The core


def test_strtod_reads_a_prefix() -> None:
    assert strtod("027.5") == 27.5
    assert strtod("1.2.3") == 1.2
    assert strtod(".") == 0.0
    assert strtod("") == 0.0


def test_status_reply_fields_and_skipped_dashes() -> None:
    c = core()
    assert c.parse_status(b"(226.0 195.0 --.-- 014 49.0 27.5 --.- 00001000\r")
    got = values(c)
    assert got["input.voltage"] == "226.0"
    assert got["input.voltage.fault"] == "195.0"
    assert "output.voltage" not in got
    assert "ups.temperature" not in got
    assert got["ups.load"] == "14"
    assert got["battery.voltage"] == "27.50"
    assert got["ups.beeper.status"] == "disabled"
    assert got["ups.type"] == "offline / line interactive"
    assert got["ups.status"] == "OL"


@pytest.mark.parametrize(
    ("bits", "vout", "status", "alarm"),
    [
        ("10000000", "230.0", "OB", None),
        ("11000000", "230.0", "OB LB", None),
        ("00100000", "200.0", "OL TRIM", None),
        ("00100000", "231.0", "OL BYPASS", None),
        ("00100000", "250.0", "OL BOOST", None),
        ("00100000", "100.0", "OL", None),
        ("00000100", "230.0", "OL CAL", None),
        ("00010000", "230.0", "ALARM OL", "UPS selftest failed!"),
        ("10000010", "230.0", "ALARM OB FSD", "Shutdown imminent!"),
        ("00010010", "230.0", "ALARM OL FSD", "UPS selftest failed! Shutdown imminent!"),
    ],
)
def test_status_bits(bits: str, vout: str, status: str, alarm: str | None) -> None:
    c = core()
    assert c.parse_status(f"(230.0 230.0 {vout} 021 50.0 27.30 25.0 {bits}\r".encode())
    assert c.getinfo("ups.status") == status
    assert c.getinfo("ups.alarm") == alarm


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"(230.0 230.0 230.0 021\r",  # short
        b"#230.0 230.0 230.0 021 50.0 27.30 25.0 00001001\r",  # wrong start
        b"(230.0 230.0 230.0 021 50.0 27.30 25.0 0000100\r ",  # seven bits
        b"(230.0 230.0 230.0 021 50.0 27.30 25.0 000010011\r",  # nine bits
        b"(230.0 230.0 230.0 021 50.0 27.30 25.0 0000x001\r",
        b"\x8f#@~\x00zz?\xff" * 5 + b"\r",  # garbage
    ],
)
def test_bad_status_replies_fail(reply: bytes) -> None:
    c = core()
    assert not c.parse_status(reply)
    assert c.getinfo("ups.status") is None


def test_rating_detects_battery_packs_and_guesses_limits() -> None:
    c = core()
    assert c.parse_status(b"(230.0 230.0 230.0 021 50.0 2.27 25.0 00001001\r")
    assert c.parse_rating(b"#230.0 004 024.0 50.0\r")
    assert c.packs == 12
    c.init_battery(0.0)
    assert c.parse_status(b"(230.0 230.0 230.0 021 50.0 2.27 25.0 00001001\r")
    got = values(c)
    assert got["battery.voltage"] == "27.24"
    assert got["battery.voltage.low"] == "20.80"
    assert got["battery.voltage.high"] == "26.00"
    assert got["battery.charge"] == "100"
    assert got["input.current.nominal"] == "4.0"
    assert got["ups.delay.start"] == "180"
    assert got["ups.delay.shutdown"] == "30"
    assert "test.battery.start" in c.commands


def test_charge_from_configured_voltages() -> None:
    c = core(**{"default.battery.voltage.low": "22", "default.battery.voltage.high": "26"})
    assert c.parse_status(b"(230.0 230.0 230.0 021 50.0 24.5 25.0 00001001\r")
    assert c.getinfo("battery.charge") == f"{100 * 2.5 / 4:.0f}"


def test_vendor_fields_trimmed() -> None:
    c = core()
    assert c.parse_vendor(b"#NOT_A_LIVE_UPS  TESTING    TESTING   \r")
    assert (c.getinfo("ups.mfr"), c.getinfo("ups.model"), c.getinfo("ups.firmware")) == (
        "NOT_A_LIVE_UPS",
        "TESTING",
        "TESTING",
    )
    assert not c.parse_vendor(b"#short\r")


def test_runtimecal_integrates_charge_and_runtime() -> None:
    c = core(runtimecal="300,100,1200,50", chargetime="3600", idleload="20")
    assert c.parse_status(b"(230.0 230.0 230.0 050 50.0 27.30 25.0 00001001\r")
    assert c.parse_rating(b"#230.0 004 024.0 50.0\r")
    c.init_battery(100.0)
    exp = math.log(1200 / 300) / math.log(100 / 50)
    nominal = 300 * (100 / 100) ** exp
    assert c.runt_nom == pytest.approx(nominal)
    # No charge yet: it is taken from the voltage between nominal and 1.15 * nominal.
    start = float(f"{100 * (27.3 - 24) / (1.15 * 24 - 24):.0f}")
    assert c.getinfo("battery.charge") == f"{start:.0f}"
    assert c.parse_status(b"(000.0 230.0 230.0 050 50.0 25.00 25.0 10001001\r")
    c.after_status(160.0)  # 60 s on battery at 50 % load
    eff = max(0.5**exp, 0.2)
    estimate = nominal * start / 100 - eff * 60
    assert c.getinfo("battery.charge") == f"{100 * estimate / nominal:.0f}"
    assert c.getinfo("battery.runtime") == f"{estimate / eff:.0f}"
    assert c.parse_status(Q1_OL)
    c.after_status(520.0)  # 360 s on mains recharge a tenth of the nominal runtime
    recharged = min(estimate + nominal * 360 / 3600, nominal)
    assert c.getinfo("battery.charge") == f"{100 * recharged / nominal:.0f}"


@pytest.mark.parametrize(
    ("options", "command", "extra", "sent"),
    [
        ({}, "shutdown.return", None, b"S.5R0003\r"),
        ({"ondelay": "0"}, "shutdown.return", None, b"S.5\r"),
        ({"ondelay": "0", "offdelay": "130"}, "shutdown.return", None, b"S02\r"),
        ({"offdelay": "59", "ondelay": "12"}, "shutdown.return", None, b"S.9R0012\r"),
        ({"offdelay": "600"}, "shutdown.return", None, b"S10R0003\r"),
        ({"offdelay": "13"}, "shutdown.stayoff", None, b"S.2R0000\r"),
        ({"offdelay": "60"}, "shutdown.stayoff", None, b"S01R0000\r"),
        ({}, "test.battery.start", None, b"T10\r"),
        ({}, "test.battery.start", "7", b"T07\r"),
        ({}, "test.battery.start", "100", CommandStatus.FAILED),
        ({}, "LOAD.OFF", None, b"S00R0000\r"),
        ({}, "beeper.toggle", None, b"Q\r"),
        ({}, "test.battery.stop", None, b"CT\r"),
        ({}, "nope", None, CommandStatus.UNKNOWN),
    ],
)
def test_instcmd_requests(
    options: dict[str, str], command: str, extra: str | None, sent: bytes | CommandStatus
) -> None:
    assert core(**options).instcmd_request(command, extra) == sent


def test_command_replies() -> None:
    assert BlazerCore.command_status(b"") is CommandStatus.SUCCESS
    assert BlazerCore.command_status(b"(ACK\r") is CommandStatus.SUCCESS
    assert BlazerCore.command_status(b"ACK\r") is CommandStatus.SUCCESS
    assert BlazerCore.command_status(b"(NAK\r") is CommandStatus.FAILED
    assert BlazerCore.command_status(b"T\r") is CommandStatus.FAILED  # echoed: unknown


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"offdelay": "11"}, "shutdown delay '11' out of range"),
        ({"ondelay": "10000"}, "start delay '10000' out of range"),
        ({"cablepower": "sideways"}, "not valid for 'cablepower'"),
        ({"runtimecal": "300,100,1200"}, "insufficient parameters for runtimecal"),
        ({"runtimecal": "300,100,200,50"}, "out of range (runtime)"),
        ({"runtimecal": "300,100,1200,50", "idleload": "0"}, "idle load out of range"),
        ({"runtimecal": "300,100,1200,50", "chargetime": "-1"}, "charge time out of range"),
        ({"bogus": "1"}, "'bogus' is not a valid setting for driver blazer_ser"),
        ({"pollinterval": "0"}, "invalid pollinterval"),
        ({"protocol": "voltronic"}, "protocol 'voltronic' is none of megatec, mustek"),
    ],
)
def test_bad_sections_name_file_and_line(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        blazer_ser_factory(section(**options), DriverContext(Path("/etc/nut")))
    assert "/etc/nut/ups.conf" in str(err.value)
    assert "12" in str(err.value)


def test_registered_and_lazily_loaded() -> None:
    assert "blazer_ser" in DRIVERS
    driver = create_driver(section(), DriverContext(Path("/etc/nut")))
    assert isinstance(driver, BlazerSer)


# ---------------------------------------------------------------------------------------
# The driver on a pty


@asynccontextmanager
async def on_pty(
    tmp_path: Path, model: MegatecModel, **options: str
) -> AsyncIterator[tuple[PtySimulator, UpsEntry]]:
    link = tmp_path / "ttyQ1"
    with PtySimulator(model.session, [link]) as sim:
        driver = blazer_ser_factory(
            section(str(link), pollinterval="1", **options), DriverContext(tmp_path)
        )
        entry = UpsEntry("q1")
        with entry.connect() as dlink:
            async with trio.open_nursery() as nursery:
                await nursery.start(driver.run, dlink)
                yield sim, entry
                nursery.cancel_scope.cancel()


async def until(
    entry: UpsEntry, check: Callable[[UpsSnapshot], object], limit: float = 30.0
) -> UpsSnapshot:
    return await snapshot_where(entry, check, limit)


async def test_driver_publishes_and_follows_the_simulator(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        snap = entry.snapshot()
        assert not snap.stale
        assert snap.value("ups.status") == "OL"
        assert snap.value("ups.mfr") == "nuttrio"
        assert snap.value("driver.name") == "blazer_ser"
        assert sim.session().received[:4] == ["Q1", "F", "I", "Q1"]
        model.change(utility_fail=True, battery_low=True)
        await until(entry, lambda s: s.value("ups.status") == "OB LB")


async def test_faults_make_the_data_stale_and_it_comes_back(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        for fault in ("silent", "garbage", "short"):
            setattr(sim.faults, fault, True)
            began = trio.current_time()
            await until(entry, lambda s: s.stale)
            assert trio.current_time() - began >= 4  # five failed reads in a row
            setattr(sim.faults, fault, False)
            snap = await until(entry, lambda s: not s.stale)
            assert snap.value("ups.status") == "OL"


async def test_port_vanishing_and_coming_back(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        sim.vanish()
        await until(entry, lambda s: s.stale)
        model.change(utility_fail=True)
        await trio.sleep(3)
        assert entry.snapshot().stale
        sim.come_back()
        snap = await until(entry, lambda s: not s.stale)
        assert snap.value("ups.status") == "OB"
        assert sim.session().received[0] == "Q1"  # the new pty: polled, not detected again


async def test_detection_waits_for_a_silent_ups(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    link = tmp_path / "ttyQ1"
    with PtySimulator(model.session, [link]) as sim:
        sim.faults.silent = True
        driver = blazer_ser_factory(section(str(link), pollinterval="1"), DriverContext(tmp_path))
        entry = UpsEntry("q1")
        with entry.connect() as dlink:
            async with trio.open_nursery() as nursery:
                began = trio.current_time()
                await nursery.start(driver.run, dlink)
                # Detection (4 protocols, 3 tries of 1 s) goes on; the daemon goes on.
                assert trio.current_time() - began == pytest.approx(STARTUP_PATIENCE, abs=0.5)
                assert entry.snapshot().stale
                assert entry.snapshot().value("ups.status") is None
                sim.faults.silent = False
                snap = await until(entry, lambda s: not s.stale)
                # megatec, or zinto (Q1 too) if the silence ended during its tries.
                assert snap.value("ups.status") == "OL"
                nursery.cancel_scope.cancel()


send = run_command


async def test_instcmds_and_their_outcomes(
    fast_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    model = MegatecModel()
    async with on_pty(tmp_path, model) as (sim, entry):
        session = sim.session()
        assert isinstance(session, MegatecSession)
        assert await send(entry, CommandKind.INSTCMD, "test.battery.start.deep") is (
            CommandStatus.SUCCESS
        )
        await until(entry, lambda s: "CAL" in (s.value("ups.status") or ""))
        model.change(ack=b"(NAK\r")
        assert await send(entry, CommandKind.INSTCMD, "test.battery.stop") is CommandStatus.FAILED
        model.change(ack=b"")
        assert await send(entry, CommandKind.INSTCMD, "test.battery.stop") is (
            CommandStatus.SUCCESS
        )
        assert await send(entry, CommandKind.SET, "ups.delay.start", "60") is (
            CommandStatus.UNKNOWN
        )
        assert [c for c in session.received if c != "Q1"][-3:] == ["TL", "CT", "CT"]


def test_nuttrio_serves_a_ups_whose_port_is_missing_as_stale(tmp_path: Path) -> None:
    """The daemon starts at once; the UPS is DATA-STALE until its port appears."""
    port = free_port()
    confdir = write_nut_config(
        tmp_path / "conf",
        port=port,
        ups={"q1": {"driver": "blazer_ser", "port": str(tmp_path / "ttyNone")}},
    )
    model = MegatecModel()
    with NuttrioProcess(["--nut-config", str(confdir)]):
        assert nut_request(port, b"GET VAR q1 ups.status\n") == b"ERR DATA-STALE\n"
        with PtySimulator(model.session, [tmp_path / "ttyNone"]):
            wait_until(
                lambda: (
                    nut_request(port, b"GET VAR q1 ups.status\n") == b'VAR q1 ups.status "OL"\n'
                ),
                15,
                "the UPS to answer once its port exists",
            )


@pytest.mark.parametrize(
    ("queries", "vendor", "sent"),
    [
        (("QS",), "I", ["Q1", "Q1", "Q1", "QS", "F", "I", "QS"]),
        (("D",), "I", ["Q1"] * 3 + ["QS"] * 3 + ["D", "F", "I", "D"]),
        (("Q1",), "FW?", ["Q1", "F", "I", "I", "I", "Q1"]),  # megatec: no vendor data
    ],
)
async def test_other_dialects_are_detected(
    fast_clock: trio.testing.MockClock,
    tmp_path: Path,
    queries: tuple[str, ...],
    vendor: str,
    sent: list[str],
) -> None:
    model = MegatecModel(MegatecState(status_queries=queries, vendor_query=vendor))
    async with on_pty(tmp_path, model) as (sim, entry):
        assert sim.session().received[: len(sent)] == sent
        snap = entry.snapshot()
        assert snap.value("ups.status") == "OL"
        assert (snap.value("ups.model") is None) == (vendor != "I")


async def test_zinto_protocol_reads_fw(fast_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    model = MegatecModel(MegatecState(vendor_query="FW?"))
    async with on_pty(tmp_path, model, protocol="zinto") as (sim, entry):
        assert sim.session().received[:4] == ["Q1", "F", "FW?", "Q1"]
        assert entry.snapshot().value("ups.model") == "SimQ1 1000"
