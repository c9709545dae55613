"""nuttrio's own ``driver = clone`` (nuttrio.hw.clone), as NUT 2.8.0's clone.c.

* The sans-IO core: what it copies, its FSD and timers, mincharge/minruntime, SET.
* Config errors with ups.conf's file and line.
* The three sources: a local section (MockClock), a NUT driver socket (NUT's dummy-ups
  binary), a UPS on another server (a second nuttrio); stale and back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest
import trio
import trio.testing

from nuttrio.client import NutError, open_nut_client
from nuttrio.daemon import DaemonOptions, open_daemon
from nuttrio.hw import DriverContext, create_driver
from nuttrio.hw.clone import CloneUps
from nuttrio.hw.clone_core import CloneCore, CloneSettings, c_strtod
from nuttrio.nutconf import ConfigError
from nuttrio.state import CommandKind, CommandStatus, StateStore, Variable

from . import nutbridge as nb
from .helpers import run_command, snapshot_where, ups_section
from .realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    RealNutError,
    free_port,
    upsc_dump,
    write_dev_file,
)

SOURCE = {"ups.status": "OL", "battery.charge": "80", "battery.runtime": "900"}


def _vars(**extra: str) -> list[Variable]:
    return [Variable(k, v) for k, v in {**SOURCE, **extra}.items()]


def _view(core: CloneCore) -> dict[str, str]:
    return {v.name: v.value for v in core.variables()}


# -- the core ---------------------------------------------------------------------------------


def test_the_core_copies_the_source_but_driver_delay_timer_and_low_marks():
    core = CloneCore(CloneSettings(mincharge=20, own=(("driver.name", "clone"),)))
    assert _view(core)["ups.status"] == "WAIT"
    core.feed(
        _vars(**{"driver.name": "dummy-ups", "ups.delay.shutdown": "9", "ups.timer.start": "5"}),
        ["load.off"],
    )
    core.feed(_vars(**{"battery.charge.low": "50", "driver.name": "dummy-ups"}))
    view = _view(core)
    assert view == {
        "ups.status": "OL",
        "battery.charge": "80",
        "battery.charge.low": "20",
        "battery.runtime": "900",
        "battery.runtime.low": "0",
        "ups.delay.shutdown": "120",
        "ups.delay.start": "30",
        "ups.timer.shutdown": "-1",
        "ups.timer.start": "-1",
        "driver.name": "clone",
    }
    low = next(v for v in core.variables() if v.name == "battery.charge.low")
    assert (low.rw, low.string, low.aux) == (True, True, 3)
    assert core.commands == ("shutdown.return", "shutdown.stayoff")


def test_shutdown_return_counts_down_sends_load_off_then_load_on_when_back_on_line():
    core = CloneCore(CloneSettings(offdelay=4, ondelay=2, load_off="off.cmd", load_on="on.cmd"))
    core.feed(_vars(**{"ups.status": "OB"}))
    assert core.tick(0) == []
    assert core.instcmd("shutdown.return") is CommandStatus.SUCCESS
    assert _view(core)["ups.status"] == "FSD OB"
    assert [core.tick(t) for t in (2, 4)] == [[], []]
    assert _view(core)["ups.timer.shutdown"] == "0"
    assert core.tick(6) == ["off.cmd"]
    assert (_view(core)["ups.timer.shutdown"], _view(core)["ups.timer.start"]) == ("-1", "2")
    assert core.tick(10) == []  # on battery: the start timer stays at ondelay
    assert _view(core)["ups.timer.start"] == "2"
    core.feed(_vars())  # on line again: no FSD (the shutdown timer is over)
    assert _view(core)["ups.status"] == "OL"
    assert [core.tick(t) for t in (12, 14)] == [[], ["on.cmd"]]  # 2, 0, then below 0
    assert _view(core)["ups.timer.start"] == "-1"


def test_a_new_source_status_keeps_fsd_while_the_shutdown_timer_runs():
    core = CloneCore(CloneSettings(offdelay=10))
    core.feed(_vars())
    core.instcmd("shutdown.stayoff")
    core.feed(_vars(**{"ups.status": "OB"}))
    assert _view(core)["ups.status"] == "FSD OB"
    assert _view(core)["ups.timer.start"] == "-1"


def test_load_status_off_means_no_shutdown_timer():
    core = CloneCore(CloneSettings(load_status="outlet.1.status"))
    core.feed(_vars(**{"outlet.1.status": "off"}))
    core.instcmd("shutdown.return")
    assert _view(core)["ups.timer.shutdown"] == "-1"
    assert _view(core)["ups.status"] == "OL"


@pytest.mark.parametrize(
    ("settings", "charge", "runtime", "fsd"),
    [
        ({"mincharge": 50}, "40", "900", True),
        ({"mincharge": 50}, "60", "900", False),
        ({"minruntime": 1000}, "80", "900", True),
        ({"minruntime": 600}, "80", "900", False),
    ],
)
def test_on_battery_below_mincharge_or_minruntime_is_fsd(settings, charge, runtime, fsd):
    core = CloneCore(CloneSettings(**settings))
    core.feed(_vars(**{"ups.status": "OB", "battery.charge": charge, "battery.runtime": runtime}))
    core.tick(0)
    assert (_view(core)["ups.status"] == "FSD OB") is fsd
    assert "LB" not in _view(core)["ups.status"]


def test_set_low_marks_and_unknown_commands():
    core = CloneCore(CloneSettings())
    core.feed(_vars())
    assert core.setvar("battery.charge.low", "33.5xyz") is CommandStatus.SUCCESS
    assert _view(core)["battery.charge.low"] == "33.5"
    assert core.setvar("ups.mfr", "x") is None
    assert core.instcmd("load.off") is None
    assert (c_strtod("  12e1 "), c_strtod("abc"), c_strtod("-3.")) == (120.0, 0.0, -3.0)


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("offdelay", "abc"), ("ondelay", "1.5"), ("mincharge", "x20"), ("pollinterval", "0")],
)
def test_bad_numbers_are_refused_with_file_and_line(tmp_path, key, value):
    section = ups_section("c", "clone", "real", lineno=7, **{key: value})
    with pytest.raises(ConfigError) as info:
        create_driver(section, DriverContext(confdir=tmp_path))
    assert "ups.conf:7" in str(info.value)
    assert key in str(info.value)


def test_unknown_keys_and_bad_remote_ports_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="'colour' is not a valid setting"):
        create_driver(ups_section("c", "clone", "real", colour="red"), DriverContext(tmp_path))
    with pytest.raises(ConfigError, match="upsname@hostname"):
        create_driver(ups_section("c", "clone", "u@"), DriverContext(tmp_path))


def test_default_and_override_keys_as_nut_s_main_applies_them(tmp_path):
    section = ups_section(
        "c",
        "clone",
        "real",
        **{
            "default.ups.mfr": "Acme",
            "override.battery.charge": "55",
            "default.battery.runtime": "1",
        },
    )
    driver = create_driver(section, DriverContext(tmp_path))
    assert isinstance(driver, CloneUps)
    core = CloneCore(driver.settings)
    assert _view(core)["ups.mfr"] == "Acme"  # before the source has it
    core.feed(_vars(**{"ups.mfr": "Real"}))
    view = _view(core)
    assert (view["ups.mfr"], view["battery.charge"], view["battery.runtime"]) == (
        "Real",
        "55",
        "900",
    )


# -- a local section, on the mock clock --------------------------------------------------------


async def test_a_local_section_is_followed_forwarded_and_stale_while_it_is(
    tmp_path, autojump_clock
):
    store = StateStore()
    real = store.add("real")
    clone_entry = store.add("c")
    sections = (ups_section("real", "dummy-ups"), ups_section("c", "clone", "real"))
    context = DriverContext(confdir=tmp_path, store=store, sections=sections)
    driver = create_driver(sections[1], context)
    assert isinstance(driver, CloneUps)
    commands = []
    async with trio.open_nursery() as nursery:
        with real.connect() as link:
            with link.update() as u:
                for name, value in SOURCE.items():
                    u.set(name, value)
                u.add_command("beeper.off")
                u.dumped = True

            async def serve_real() -> None:
                async for command in link.commands:
                    commands.append((command.kind, command.name))
                    command.result.resolve(CommandStatus.SUCCESS)

            nursery.start_soon(serve_real)

            async def run_clone() -> None:
                with clone_entry.connect() as clink:
                    await driver.run(clink)

            nursery.start_soon(run_clone)
            snap = await snapshot_where(clone_entry, lambda s: s.value("ups.status") == "OL")
            assert snap.commands == ("shutdown.return", "shutdown.stayoff", "beeper.off")
            assert snap.value("driver.name") == "clone"
            assert await run_command(clone_entry, CommandKind.INSTCMD, "beeper.off") == 0
            assert commands == [(CommandKind.INSTCMD, "beeper.off")]
            with link.update() as u:
                u.stale = True
            await snapshot_where(clone_entry, lambda s: s.stale)
            with link.update() as u:
                u.stale = False
                u.set("ups.status", "OB")
            snap = await snapshot_where(clone_entry, lambda s: s.value("ups.status") == "OB")
            assert not snap.stale
        await snapshot_where(clone_entry, lambda s: s.stale)  # the source's driver is gone
        nursery.cancel_scope.cancel()


async def test_a_source_silent_for_15_s_is_dead_as_clone_c_says(tmp_path, autojump_clock):
    """clone.c's ``sstate_dead(15)``: a source not heard from for 15 s (not declared stale,
    still connected: a hung driver) makes the clone DATA-STALE; its next word, fresh."""
    store = StateStore(maxage=60)  # the store's own MAXAGE would be later than clone.c's
    real = store.add("real")
    clone_entry = store.add("c")
    sections = (ups_section("real", "dummy-ups"), ups_section("c", "clone", "real"))
    driver = create_driver(sections[1], DriverContext(tmp_path, store=store, sections=sections))
    async with trio.open_nursery() as nursery:
        with real.connect() as link, clone_entry.connect() as clink:
            with link.update() as u:
                for name, value in SOURCE.items():
                    u.set(name, value)
                u.dumped = True
            nursery.start_soon(driver.run, clink)
            await snapshot_where(clone_entry, lambda s: s.value("ups.status") == "OL")
            heard = trio.current_time()
            await snapshot_where(clone_entry, lambda s: s.stale)
            assert 15 < trio.current_time() - heard <= 15 + 2  # within a pollinterval
            assert not real.snapshot().data_stale  # the source itself is not stale
            link.heartbeat()
            await snapshot_where(clone_entry, lambda s: not s.stale)
            nursery.cancel_scope.cancel()


async def test_the_timers_run_on_the_clock_and_send_load_off_then_load_on(tmp_path, autojump_clock):
    store = StateStore()
    real, clone_entry = store.add("real"), store.add("c")
    options = {"offdelay": "6", "ondelay": "4", "load.off": "off.x", "load.on": "on.x"}
    sections = (ups_section("real", "dummy-ups"), ups_section("c", "clone", "real", **options))
    driver = create_driver(sections[1], DriverContext(tmp_path, store=store, sections=sections))
    sent: list[tuple[float, str]] = []
    async with trio.open_nursery() as nursery:
        with real.connect() as link:
            with link.update() as u:
                u.set("ups.status", "OB")
                u.dumped = True

            async def serve_real() -> None:
                async for command in link.commands:
                    sent.append((trio.current_time(), command.name))
                    command.result.resolve(CommandStatus.SUCCESS)

            async def run_clone() -> None:
                with clone_entry.connect() as clink:
                    await driver.run(clink)

            nursery.start_soon(serve_real)
            nursery.start_soon(run_clone)
            await snapshot_where(clone_entry, lambda s: s.value("ups.status") == "OB")
            start = trio.current_time()
            assert await run_command(clone_entry, CommandKind.INSTCMD, "shutdown.return") == 0
            snap = await snapshot_where(clone_entry, lambda s: s.value("ups.timer.shutdown") == "6")
            assert snap.value("ups.status") == "FSD OB"
            await snapshot_where(clone_entry, lambda s: s.value("ups.timer.shutdown") == "-1")
            await trio.testing.wait_all_tasks_blocked()
            assert [name for _, name in sent] == ["off.x"]
            assert 6 < sent[0][0] - start <= 10  # below zero at the first poll after 6 s
            with link.update() as u:
                u.set("ups.status", "OL")
            await snapshot_where(clone_entry, lambda s: s.value("ups.status") == "OL")
            await snapshot_where(clone_entry, lambda s: s.value("ups.timer.start") == "-1")
            await trio.testing.wait_all_tasks_blocked()
            assert [name for _, name in sent] == ["off.x", "on.x"]
            nursery.cancel_scope.cancel()


# -- a NUT driver socket and a remote server (real processes, real time) ------------------------


async def _until_value(nut, ups: str, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    async def check() -> bool:
        try:
            return bool(await nut.get_var(ups, name) == value)
        except NutError:  # stale or not yet there: try again
            return False

    await nb.until(check, limit=20)


@pytest.mark.realnut
async def test_a_nut_driver_socket_is_followed(tmp_path):
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL", "battery.charge": "80"})
    confdir = nb.conf(
        tmp_path,
        {
            "real": {"port": str(dev)},
            "outlet": {"driver": "clone", "port": "dummy-ups-real", "pollinterval": 1},
        },
    )
    async with open_daemon(nb.options(confdir, nut_drivers=["real"])) as daemon:
        assert isinstance(daemon.driver("outlet"), CloneUps)
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            await _until_value(nut, "outlet", "battery.charge", "80")
            assert await nut.get_var("outlet", "driver.name") == "clone"
            assert await nut.list_cmd("outlet") == ["shutdown.return", "shutdown.stayoff"]
            await nut.username("admin")
            await nut.password("adminpass")
            await nut.set_var("real", "ups.status", "OB")
            await _until_value(nut, "outlet", "ups.status", "OB")


@pytest.mark.realnut
async def test_a_remote_ups_is_followed_stale_while_away_and_commands_forwarded(tmp_path):
    port = free_port()
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL", "battery.charge": "70"})
    src = nb.conf(tmp_path / "s", {"u": {"port": str(dev)}})
    rep = nb.conf(
        tmp_path / "r",
        {
            "c": {
                "driver": "clone",
                "port": f"u@127.0.0.1:{port}",
                "pollinterval": 1,
                "username": ADMIN_USER,
                "password": ADMIN_PASSWORD,
            }
        },
    )
    async with trio.open_nursery() as nursery:
        scopes: list[trio.CancelScope] = []

        async def run_source(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED):  # type: ignore[no-untyped-def]
            with trio.CancelScope() as scope:
                scopes.append(scope)
                async with open_daemon(DaemonOptions(confdir=src, listen=[("127.0.0.1", port)])):
                    task_status.started()
                    await trio.sleep_forever()

        await nursery.start(run_source)
        async with open_daemon(nb.options(rep)) as daemon:
            host, rport = daemon.addresses[0]
            async with open_nut_client(host, rport) as nut:
                await _until_value(nut, "c", "battery.charge", "70")
                await nut.username(ADMIN_USER)
                await nut.password(ADMIN_PASSWORD)
                await nut.set_var("c", "battery.charge", "42")
                await _until_value(nut, "c", "battery.charge", "42")
                scopes[-1].cancel()

                async def stale() -> bool:
                    return await nb.error(nut, "c") == "DATA-STALE"

                await nb.until(stale, limit=20)
                await nursery.start(run_source)
                await _until_value(nut, "c", "battery.charge", "70")
        nursery.cancel_scope.cancel()


# -- differential: NUT's clone under the real upsd against nuttrio's, on one dummy-ups --------


def _upscmd_list(target: str) -> list[str]:
    done = subprocess.run(["upscmd", "-l", target], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[1:]  # the first line names the UPS


def _without_driver(lines: list[str]) -> list[str]:
    return [x for x in lines if not x.startswith("driver.")]


def _upsc(target: str) -> list[str]:
    """upsc's lines, or its error (stale, not connected yet) as one line."""
    try:
        return upsc_dump(target)
    except RealNutError as exc:
        return [str(exc)]


@pytest.mark.realnut
async def test_nut_s_clone_and_nuttrio_s_print_the_same(real_nut, tmp_path):
    dev = write_dev_file(
        tmp_path / "u.dev",
        {"ups.status": "OL", "battery.charge": "80", "battery.runtime": "900", "ups.mfr": "M"},
    )
    theirs = real_nut(
        {
            "real": {"port": str(dev)},
            # Without load.status NUT 2.8.0's clone crashes at its first shutdown.return
            # (dstate_getinfo(NULL)): name a variable the source does not have.
            "outlet": {
                "driver": "clone",
                "port": "dummy-ups-real",
                "mincharge": 50,
                "load.status": "outlet.1.status",
            },
        }
    )
    upsconf = theirs.confdir / "ups.conf"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
    upsconf.write_text(f"user = {user}\n" + upsconf.read_text())
    # nuttrio reads the same dummy-ups process (its socket is live): one source for both.
    async with open_daemon(nb.options(theirs.confdir, nut_drivers=["real"])) as daemon:
        assert isinstance(daemon.driver("outlet"), CloneUps)
        host, port = daemon.addresses[0]
        mine, real = f"outlet@{host}:{port}", theirs.target("outlet")

        async def dumps() -> tuple[list[str], list[str]]:
            return await trio.to_thread.run_sync(
                lambda: (_without_driver(_upsc(real)), _without_driver(_upsc(mine)))
            )

        async def same() -> bool:
            a, b = await dumps()
            return a == b and "ups.status: OL" in a

        with contextlib.suppress(trio.TooSlowError):
            await nb.until(same, limit=20, every=0.5)
        a, b = await dumps()
        assert a == b, sorted(set(a) ^ set(b))
        assert await trio.to_thread.run_sync(_upscmd_list, real) == await trio.to_thread.run_sync(
            _upscmd_list, mine
        )
        async with open_nut_client("127.0.0.1", theirs.port) as nut:
            await nut.username(ADMIN_USER)
            await nut.password(ADMIN_PASSWORD)
            await nut.set_var("real", "battery.charge", "30")
            await nut.set_var("real", "ups.status", "OB")
        for target in (real, mine):

            async def fsd(target: str = target) -> bool:
                lines = await trio.to_thread.run_sync(_upsc, target)
                return "ups.status: FSD OB" in lines

            with contextlib.suppress(trio.TooSlowError):
                await nb.until(fsd, limit=20, every=0.5)
        a, b = await dumps()
        assert "ups.status: FSD OB" in a, a
        assert "ups.status: FSD OB" in b, b
        timers = ("ups.timer.shutdown",)
        assert [x for x in a if not x.startswith(timers)] == [
            x for x in b if not x.startswith(timers)
        ]
