"""The repeater (dummy-ups with port = ups@host[:port]) against nuttrio and the real upsd.

Variables are followed with their types, SET VAR and INSTCMD are forwarded (the remote
driver's TRACKING answer comes back), and the UPS reads DATA-STALE while the remote server
is unreachable, fresh again when it is back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nuttrio.client import NutClient, NutError, open_nut_client
from nuttrio.daemon import DaemonOptions, open_daemon
from nuttrio.hw import DriverContext, create_driver
from nuttrio.hw.repeater import RepeaterUps
from nuttrio.nutconf import ConfigError, UpsSection

from .helpers import until
from .realnut import ADMIN_PASSWORD, ADMIN_USER, free_port, upsc_dump_many, write_dev_file

USERS = f"[{ADMIN_USER}]\n\tpassword = {ADMIN_PASSWORD}\n\tactions = SET\n\tinstcmds = ALL\n"


def _confdir(path: Path, ups_conf: str) -> Path:
    path.mkdir()
    (path / "ups.conf").write_text(ups_conf)
    (path / "upsd.conf").write_text("")
    (path / "upsd.users").write_text(USERS)
    for item in path.iterdir():
        item.chmod(0o600)
    return path


def _repeater_conf(tmp_path: Path, port: int) -> Path:
    return _confdir(
        tmp_path / "rep",
        f"[rep]\n\tdriver = dummy-ups\n\tport = u@127.0.0.1:{port}\n\tpollinterval = 0.2\n"
        f"\tusername = {ADMIN_USER}\n\tpassword = {ADMIN_PASSWORD}\n",
    )


def _source_conf(tmp_path: Path) -> Path:
    dev = write_dev_file(
        tmp_path / "u.dev",
        {
            "ups.status": "OL",
            "battery.charge": "100",
            "ups.mfr": "Some Maker",
            "input.voltage": "230",
        },
    )
    return _confdir(tmp_path / "src", f"[u]\n\tdriver = dummy-ups\n\tport = {dev}\n")


async def _status_or_error(nut: NutClient, ups: str) -> str:
    try:
        return await nut.get_var(ups, "ups.status")
    except NutError as exc:
        return f"ERR {exc.code}"


async def _typed_view(nut: NutClient, ups: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    values = await nut.list_var(ups)
    rw = await nut.list_rw(ups)
    return {
        k: (v, await nut.get_type(ups, k) if k in rw else ())
        for k, v in values.items()
        if not k.startswith("driver.")
    }


async def _check_forwarding(rep: NutClient, source: NutClient, remote: str) -> None:
    await rep.username(ADMIN_USER)
    await rep.password(ADMIN_PASSWORD)
    await rep.set_tracking(True)
    result = await rep.set_var("rep", "ups.mfr", "Other Maker")
    with trio.fail_after(10):
        assert await result == "SUCCESS"

    async def both_changed() -> bool:
        return (await source.get_var(remote, "ups.mfr"), await rep.get_var("rep", "ups.mfr")) == (
            "Other Maker",
            "Other Maker",
        )

    await until(both_changed)
    command = await rep.instcmd("rep", "load.off")
    with trio.fail_after(10), pytest.raises(NutError) as err:
        await command  # the remote dummy-ups answers UNKNOWN, and so does the repeater
    assert err.value.code == "UNKNOWN"


async def test_the_repeater_follows_a_nuttrio_ups_and_goes_stale_while_it_is_away(tmp_path):
    port = free_port()
    src = DaemonOptions(confdir=_source_conf(tmp_path), listen=[("127.0.0.1", port)])
    rep_options = DaemonOptions(confdir=_repeater_conf(tmp_path, port), listen=[("127.0.0.1", 0)])
    async with trio.open_nursery() as nursery:
        source_scope = trio.CancelScope()

        async def run_source(
            *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            with source_scope:
                async with open_daemon(src):
                    task_status.started()
                    await trio.sleep_forever()

        await nursery.start(run_source)
        async with open_daemon(rep_options) as rep_daemon:
            assert isinstance(rep_daemon.driver("rep"), RepeaterUps)
            host, rep_port = rep_daemon.addresses[0]
            async with (
                open_nut_client(host, rep_port) as rep,
                open_nut_client("127.0.0.1", port) as source,
            ):
                assert await _typed_view(rep, "rep") == await _typed_view(source, "u")
                own = await rep.list_var("rep")
                assert own["driver.parameter.port"] == f"u@127.0.0.1:{port}"
                assert await rep.list_cmd("rep") == await source.list_cmd("u")
                await _check_forwarding(rep, source, "u")
            source_scope.cancel()  # the remote server goes away

            async with open_nut_client(host, rep_port) as rep:

                async def stale() -> bool:
                    return await _status_or_error(rep, "rep") == "ERR DATA-STALE"

                await until(stale)
                await nursery.start(_run_again, src)  # back on the same port

                async def fresh() -> bool:
                    return await _status_or_error(rep, "rep") == "OL"

                await until(fresh)
        nursery.cancel_scope.cancel()


async def _run_again(
    options: DaemonOptions, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    async with open_daemon(options):
        task_status.started()
        await trio.sleep_forever()


@pytest.mark.realnut
async def test_the_repeater_follows_the_real_upsd(tmp_path, real_nut):
    dev = write_dev_file(
        tmp_path / "u.dev", {"ups.status": "OB LB", "battery.charge": "5", "ups.mfr": "X"}
    )
    nut = real_nut({"u": {"port": str(dev)}})
    rep_options = DaemonOptions(
        confdir=_repeater_conf(tmp_path, nut.port), listen=[("127.0.0.1", 0)]
    )
    async with open_daemon(rep_options) as rep_daemon:
        host, rep_port = rep_daemon.addresses[0]
        async with (
            open_nut_client(host, rep_port) as rep,
            open_nut_client("127.0.0.1", nut.port) as source,
        ):
            view = await _typed_view(rep, "rep")
            assert view == await _typed_view(source, "u")
            assert view["ups.mfr"] == ("X", ("RW", "STRING:32"))
            assert view["device.mfr"] == ("X", ())
            assert await rep.get_var("rep", "ups.status") == "OB LB"
            targets = [f"rep@{host}:{rep_port}", f"u@127.0.0.1:{nut.port}"]
            dumps = await trio.to_thread.run_sync(upsc_dump_many, targets)
            ours, theirs = (_no_driver(dumps[t]) for t in targets)
            assert ours == theirs  # what upsc prints, in its order, driver.* aside
            assert "ups.status: OB LB" in ours
            await _check_forwarding(rep, source, "u")
        await trio.to_thread.run_sync(nut.stop)
        async with open_nut_client(host, rep_port) as rep:

            async def stale() -> bool:
                return await _status_or_error(rep, "rep") == "ERR DATA-STALE"

            await until(stale)


def _no_driver(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("driver.")]


@pytest.mark.parametrize(
    ("port", "options", "message"),
    [
        ("u@", {}, "needs upsname@hostname"),
        ("x.dev", {"mode": "repeater"}, "needs upsname@hostname"),
        ("u@host:99999", {}, "port = 'u@host:99999'"),
        ("u@host", {"pollinterval": "0"}, "invalid pollinterval"),
        ("u@host", {"bogus": "1"}, "'bogus' is not a valid setting for dummy-ups"),
    ],
)
def test_bad_repeater_sections_name_the_file_and_line(port, options, message):
    section = UpsSection(
        name="rep",
        driver="dummy-ups",
        port=port,
        options={"driver": "dummy-ups", "port": port, **options},
        path=Path("/etc/nut/ups.conf"),
        lineno=3,
    )
    with pytest.raises(ConfigError, match=message) as info:
        create_driver(section, DriverContext(Path("/etc/nut")))
    assert (info.value.path, info.value.lineno) == (Path("/etc/nut/ups.conf"), 3)


def test_a_repeater_section_gets_the_remote_and_the_settings():
    section = UpsSection(
        name="rep",
        driver="dummy-ups",
        port="myups@[::1]:3500",
        options={"driver": "dummy-ups", "port": "myups@[::1]:3500", "username": "mon"},
    )
    driver = create_driver(section, DriverContext(Path(), ups_globals={"pollinterval": "7"}))
    assert isinstance(driver, RepeaterUps)
    s = driver.settings
    assert (s.remote, s.host, s.tcp_port, s.pollinterval, s.username) == (
        "myups",
        "::1",
        3500,
        7.0,
        "mon",
    )
