"""The daemon embedded in a Trio program: supervision, reload, serving, RFC 9271 words."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import nuttrio
from nuttrio.hw import DRIVERS
from nuttrio.state import DriverLink

from .helpers import exchange, new_session


@attrs.define
class CrashingDriver:
    """Publishes a status, then fails after ``lifetime`` seconds; records start times."""

    starts: list[float]
    lifetime: float = 5.0

    async def run(self, link: DriverLink, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        with link.update() as u:
            u.set("ups.status", "OL")
            u.dumped = True
        task_status.started()
        await trio.sleep(self.lifetime)
        raise RuntimeError("simulated hardware fault")


@pytest.fixture
def crashing(monkeypatch):
    starts: list[float] = []
    monkeypatch.setitem(DRIVERS, "test-crashing", lambda section, confdir: CrashingDriver(starts))
    return starts


def write_conf(d: Path, ups: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
    (d / "upsd.users").write_text("[admin]\n password = pw\n actions = fsd\n upsmon primary\n")
    (d / "ups.conf").write_text(ups)
    (d / "a.dev").write_text("ups.status: OL\n")
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


def options(confdir: Path | None = None) -> nuttrio.DaemonOptions:
    return nuttrio.DaemonOptions(confdir=confdir, listen=(("127.0.0.1", 0),))


async def test_embedded_default_serves_sim_over_tcp():
    async with nuttrio.open_daemon(options()) as daemon:
        host, port = daemon.addresses[0]
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET VAR sim ups.status\nLIST UPS\n")
        data = b""
        with trio.fail_after(5):
            while not data.endswith(b"END LIST UPS\n"):
                data += await stream.receive_some()
        assert data.startswith(b'VAR sim ups.status "OL"\nBEGIN LIST UPS\nUPS sim ')
        await stream.aclose()


async def test_a_failing_driver_is_restarted_with_backoff(tmp_path, crashing, autojump_clock):
    confdir = write_conf(tmp_path / "c", "[c]\n driver = test-crashing\n port = none\n")
    async with nuttrio.open_daemon(options(confdir)) as daemon:
        core, session = daemon.core, new_session()
        t0 = crashing[0]
        await trio.sleep(5.5)  # crashed at 5 s, waits 1 s
        assert exchange(core, session, b"GET VAR c ups.status\n") == b"ERR DRIVER-NOT-CONNECTED\n"
        await trio.sleep(1)
        assert exchange(core, session, b"GET VAR c ups.status\n") == b'VAR c ups.status "OL"\n'
        await trio.sleep(30)
    # Runs of 5 s each, back-off 1, 2, 4, 8 ... seconds.
    assert [round(t - t0, 6) for t in crashing[:5]] == [0, 6, 13, 22, 35]


async def test_reload_adds_removes_and_restarts_and_keeps_the_rest(tmp_path):
    confdir = write_conf(
        tmp_path / "c",
        "[keep]\n driver = dummy-ups\n port = a.dev\n"
        "[drop]\n driver = dummy-ups\n port = a.dev\n"
        "[change]\n driver = dummy-ups\n port = a.dev\n",
    )
    async with nuttrio.open_daemon(options(confdir)) as daemon:
        session = new_session()
        assert exchange(daemon.core, session, b"USERNAME admin\nPASSWORD pw\nFSD keep\n") == (
            b"OK\nOK\nOK FSD-SET\n"
        )
        (confdir / "b.dev").write_text("ups.status: OB\n")
        (confdir / "ups.conf").write_text(
            "[new]\n driver = dummy-ups\n port = a.dev\n"
            "[keep]\n driver = dummy-ups\n port = a.dev\n desc = kept\n"
            "[change]\n driver = dummy-ups\n port = b.dev\n"
        )
        await daemon.reload()
        assert daemon.store.names() == ["new", "keep", "change"]
        keep = daemon.store.get("keep")
        assert keep.snapshot().fsd  # the same UPS entry: the latch stays
        assert keep.desc == "kept"
        with trio.fail_after(5):
            async for snap in daemon.store.get("change").watch():
                if snap.value("ups.status") == "OB":
                    break
        assert exchange(daemon.core, session, b"GET VAR drop ups.status\n") == (
            b"ERR UNKNOWN-UPS\n"
        )


async def test_a_change_of_the_ups_conf_globals_restarts_every_driver(tmp_path, caplog):
    sections = "[a]\n driver = dummy-ups\n port = a.dev\n[b]\n driver = dummy-ups\n port = a.dev\n"
    confdir = write_conf(tmp_path / "c", sections)
    caplog.set_level(logging.INFO, logger="nuttrio")
    async with nuttrio.open_daemon(options(confdir)) as daemon:
        session = new_session()
        ask = b"GET VAR a driver.parameter.pollinterval\nGET VAR b driver.parameter.pollinterval\n"
        before = exchange(daemon.core, session, ask)
        await daemon.reload()  # nothing changed: nothing restarts
        assert "restarting every driver" not in caplog.text
        (confdir / "ups.conf").write_text("pollinterval = 7\n" + sections)
        await daemon.reload()
        assert "global settings changed; restarting every driver" in caplog.text
        with trio.fail_after(5):
            for name in ("a", "b"):
                async for snap in daemon.store.get(name).watch():
                    if snap.value("driver.parameter.pollinterval") == "7":
                        break
        assert exchange(daemon.core, session, ask) == (
            b'VAR a driver.parameter.pollinterval "7"\nVAR b driver.parameter.pollinterval "7"\n'
        )
        assert before != exchange(daemon.core, session, ask)


async def test_a_bad_reload_keeps_the_running_configuration(tmp_path, caplog):
    confdir = write_conf(tmp_path / "c", "[a]\n driver = dummy-ups\n port = a.dev\n")
    async with nuttrio.open_daemon(options(confdir)) as daemon:
        (confdir / "ups.conf").write_text("[a]\n driver = no-such-driver\n port = x\n")
        await daemon.reload()
        assert daemon.store.names() == ["a"]
        assert "reload failed" in caplog.text
        assert "no-such-driver" in caplog.text


async def test_rfc_vocabulary_end_to_end():
    async with nuttrio.open_daemon(options()) as daemon:
        host, port = daemon.addresses[0]
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"ATTACH sim\nGET NUMATTACH sim\nDETACH\n")
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                data += chunk
        # No user in the built-in configuration: ATTACH needs one, as LOGIN does.
        assert data == b"ERR USERNAME-REQUIRED\nNUMATTACH sim 0\nOK Goodbye\n"


async def test_attach_twice_and_help_in_rfc_words(tmp_path):
    confdir = write_conf(tmp_path / "c", "[a]\n driver = dummy-ups\n port = a.dev\n")
    async with nuttrio.open_daemon(options(confdir)) as daemon:
        session = new_session()
        assert exchange(
            daemon.core,
            session,
            b"HELP\nUSERNAME admin\nPASSWORD pw\nATTACH a\nGET NUMATTACH a\nATTACH a\nHELP\n",
        ) == (
            b"Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
            b"OK\nOK\nOK\nNUMATTACH a 1\nERR ALREADY-ATTACHED\n"
            b"Commands: HELP VER GET LIST SET INSTCMD ATTACH DETACH USERNAME PASSWORD STARTTLS\n"
        )


async def test_shutdown_ups_sends_shutdown_return_to_a_driver_that_has_it(
    tmp_path, monkeypatch, capsys
):
    from nuttrio.cli import tools
    from nuttrio.state import CommandStatus, Variable

    from .helpers import ScriptedDriver

    driver = ScriptedDriver(
        [Variable(name="ups.status", value="OB"), Variable(name="ups.delay.shutdown", value="20")],
        ["load.off", "shutdown.return"],
        answer=CommandStatus.SUCCESS,
    )
    monkeypatch.setitem(DRIVERS, "test-scripted", lambda section, confdir: driver)
    confdir = write_conf(tmp_path / "c", "[u]\n driver = test-scripted\n port = none\n")
    status = await tools.shutdown_ups(nuttrio.DaemonOptions(confdir=confdir), "U")
    assert status == 0
    assert [(c.kind.value, c.name) for c in driver.received] == [("INSTCMD", "shutdown.return")]
    assert (
        "UPS u: shutdown.return: cut the load after 20 s (ups.delay.shutdown) and restore it "
        "when the power returns" in capsys.readouterr().out
    )


async def test_sighup_reload_reaches_the_manager_and_its_notifier(tmp_path, caplog):
    confdir = write_conf(tmp_path / "c", "[a]\n driver = dummy-ups\n port = a.dev\n")
    monitor = "MONITOR a@localhost 1 admin pw primary\nSHUTDOWNCMD true\n"
    (confdir / "upsmon.conf").write_text(monitor + "FINALDELAY 30\n")
    (confdir / "upsmon.conf").chmod(0o600)
    opts = nuttrio.DaemonOptions(
        confdir=confdir, listen=(("127.0.0.1", 0),), role=nuttrio.Role.PRIMARY
    )
    async with nuttrio.open_daemon(opts) as daemon:
        (confdir / "upsmon.conf").write_text(
            monitor + 'FINALDELAY 2\nNOTIFYMSG ONBATT "on battery: %s"\n'
        )
        await daemon.reload()
        assert daemon.manager.machine.policy.finaldelay == 2
        assert daemon.notifier.message_for("ONBATT", "a@localhost") == "on battery: a@localhost"
        (confdir / "upsmon.conf").write_text("MONITOR a@localhost 1 other pw primary\n")
        await daemon.reload()
        assert "upsmon.conf reload failed" in caplog.text
        assert daemon.manager.machine.policy.finaldelay == 2
