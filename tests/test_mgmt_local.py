"""A primary serving its own UPS: only at its own listeners, never with more rights than upsmon.

In ``--primary`` the manager follows the UPSes attached in the same process through the
store and never logs in over TCP; these tests check it still needs the credentials the
real upsmon would need (upsd.users), that only its own listener's host and port count as
local, and what ``LIST CLIENT`` shows for it.
"""

from __future__ import annotations

import logging
import os
import pwd
import tempfile
from pathlib import Path

import pytest
import trio

from nuttrio import DaemonOptions, Role, open_daemon
from nuttrio.nutconf import ConfigError

from .realnut import free_port, write_dev_file, write_nut_config

USERS = """\
[admin]
    password = adminpass
    upsmon primary
[mon]
    password = monpass
    upsmon secondary
[nobody-much]
    password = pw
    actions = SET
"""


def confdir(tmp_path: Path, monitor: str, extra: str = "", *, users: str = USERS) -> Path:
    """A NUT directory with UPS ``u`` on a free port and an upsmon.conf with ``monitor``.

    ``{port}`` in ``monitor`` becomes the listener's port.
    """
    port = free_port()
    d = tmp_path / "etc"
    write_nut_config(
        d,
        port=port,
        ups={"u": {"port": str(write_dev_file(tmp_path / "u.dev", {"ups.status": "OL"}))}},
        users=users,
    )
    (d / "upsmon.conf").write_text(
        f"# upsmon.conf\nMONITOR {monitor.format(port=port)}\nSHUTDOWNCMD true\n{extra}"
    )
    (d / "upsmon.conf").chmod(0o600)
    return d


def options(d: Path) -> DaemonOptions:
    return DaemonOptions(confdir=d, role=Role.PRIMARY)


def port_of(d: Path) -> int:
    return int((d / "upsd.conf").read_text().split("LISTEN 127.0.0.1 ")[1].split()[0])


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def refused(d: Path) -> ConfigError:
    """Start the primary, expect it to refuse its configuration, return the error."""
    with pytest.raises(BaseException) as info:  # noqa: PT011 - unwrapped below
        async with open_daemon(options(d)):
            pass
    errors = [e for e in _leaves(info.value) if isinstance(e, ConfigError)]
    assert errors, f"expected a ConfigError, got {info.value!r}"
    return errors[0]


async def ask(port: int, *lines: str) -> list[str]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all("".join(f"{line}\n" for line in lines).encode())
        data = b""
        while not data.endswith(b"END LIST CLIENT u\n") and not data.startswith(b"ERR"):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines()


@pytest.mark.parametrize(
    ("monitor", "why"),
    [
        ("u@localhost:{port} 1 admin wrongpass primary", "password of user 'admin'"),
        ("u@localhost:{port} 1 mon monpass primary", "no 'upsmon primary'"),
        ("u@127.0.0.1:{port} 1 ghost pw secondary", "user 'ghost' is not in upsd.users"),
        ("u@localhost:{port} 1 nobody-much pw secondary", "may not LOGIN"),
        ("u@localhost:{port} 1 mon wrong secondary", "password of user 'mon'"),
    ],
)
async def test_a_local_monitor_upsd_would_refuse_stops_the_start(tmp_path, monitor, why):
    d = confdir(tmp_path, monitor)
    error = await refused(d)
    assert error.path == d / "upsmon.conf"
    assert error.lineno == 2
    assert why in error.message
    assert "upsd.users" in str(error)


async def test_a_secondary_monitor_of_the_local_ups_needs_only_a_login(tmp_path):
    d = confdir(tmp_path, "u@localhost:{port} 1 mon monpass secondary")
    async with open_daemon(options(d)) as daemon:
        assert daemon.manager is not None
        assert [r.username for r in daemon.store.get("u").logins] == ["mon"]


async def test_list_client_shows_the_loopback_address_of_the_primary(tmp_path):
    d = confdir(tmp_path, "u@localhost:{port} 1 admin adminpass primary")
    async with open_daemon(options(d)):
        reply = await ask(port_of(d), "LIST CLIENT u")
    assert reply == ["BEGIN LIST CLIENT u", "CLIENT u 127.0.0.1", "END LIST CLIENT u"]


async def test_a_monitor_on_another_port_is_not_the_local_ups(tmp_path):
    """Not taken as the local UPS, so not checked here: polled over TCP (nothing there)."""
    d = confdir(tmp_path, f"u@127.0.0.1:{free_port()} 1 admin wrongpass primary")
    async with open_daemon(options(d)) as daemon:
        assert not daemon.store.get("u").logins


async def test_sighup_refuses_credentials_upsd_would_refuse_and_keeps_running(tmp_path, caplog):
    d = confdir(tmp_path, "u@localhost:{port} 1 admin adminpass primary")
    async with open_daemon(options(d)) as daemon:
        assert daemon.manager is not None
        running = daemon.manager.config
        (d / "upsd.users").write_text(USERS.replace("adminpass", "newpass"))
        with caplog.at_level(logging.ERROR, logger="nuttrio"):
            await daemon.reload()
        assert daemon.manager.config is running
        assert "password of user 'admin'" in caplog.text
        assert "upsmon.conf:2" in caplog.text
        # With upsd.users back as it was, the reload goes through.
        (d / "upsd.users").write_text(USERS)
        with (d / "upsmon.conf").open("a") as f:
            f.write("FINALDELAY 2\n")
        await daemon.reload()
        assert daemon.manager.config.finaldelay == 2


async def test_a_primary_whose_fsd_right_is_revoked_by_sighup_sets_no_fsd(tmp_path, caplog):
    """upsd checks each FSD against the upsd.users in force: so does the in-process primary.

    The reload is refused (the running upsmon.conf stays), but the right is gone from the
    server at once, as after upsd's reload; the shutdown still runs, without FSD.
    """
    d = confdir(tmp_path, "u@localhost:{port} 1 admin adminpass primary", "FINALDELAY 0\n")
    async with open_daemon(options(d)) as daemon:
        assert daemon.manager is not None
        assert daemon.fsd_refusal(daemon.manager.config.monitors[0]) is None
        (d / "upsd.users").write_text(USERS.replace("upsmon primary", "upsmon secondary", 1))
        await daemon.reload()
        with caplog.at_level(logging.ERROR, logger="nuttrio"):
            daemon.manager.request_fsd()
            with trio.fail_after(10):
                await daemon.manager.done.wait()
        assert not daemon.store.get("u").snapshot().fsd
        assert "FSD on u@localhost" in caplog.text
        assert "refused" in caplog.text


async def test_a_primary_monitor_without_the_fsd_action_stops_the_start(tmp_path):
    users = USERS + "[halfprimary]\n    password = hp\n    actions = MASTER LOGIN\n"
    d = confdir(tmp_path, "u@localhost:{port} 1 halfprimary hp primary", users=users)
    error = await refused(d)
    assert error.lineno == 2
    assert "no 'fsd' action" in error.message


async def test_an_unknown_run_as_user_stops_the_start(tmp_path):
    d = confdir(
        tmp_path, "u@localhost:{port} 1 admin adminpass primary", "RUN_AS_USER nosuchuser\n"
    )
    error = await refused(d)
    assert error.path == d / "upsmon.conf"
    assert error.lineno == 4
    assert "nosuchuser" in error.message


def id_script(out: Path) -> Path:
    """A script any user may run that appends ``<NOTIFYTYPE or $1> <uid>`` to ``out/ids``."""
    out.chmod(0o777)
    (out / "ids").touch()
    (out / "ids").chmod(0o666)  # root's SHUTDOWNCMD may create it first
    script = out / "id.sh"
    script.write_text(f'#!/bin/sh\necho "${{NOTIFYTYPE:-$1}} $(id -u)" >> {out}/ids\n')
    script.chmod(0o755)
    return script


def primary_running_commands_as(tmp_path: Path, script: Path, user: str) -> Path:
    d = confdir(
        tmp_path,
        "u@localhost:{port} 1 admin adminpass primary",
        f"NOTIFYCMD {script}\nNOTIFYFLAG SHUTDOWN EXEC\nRUN_AS_USER {user}\nFINALDELAY 0\n",
    )
    text = (d / "upsmon.conf").read_text()
    (d / "upsmon.conf").write_text(text.replace("SHUTDOWNCMD true", f'SHUTDOWNCMD "{script} cmd"'))
    return d


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
async def test_notifications_run_as_run_as_user_and_shutdowncmd_as_root(tmp_path):
    with tempfile.TemporaryDirectory(prefix="nuttrio-runas-") as name:
        script = id_script(Path(name))
        d = primary_running_commands_as(tmp_path, script, "nobody")
        async with open_daemon(options(d)) as daemon:
            assert daemon.manager is not None
            assert daemon.notifier is not None
            daemon.manager.request_fsd()
            with trio.fail_after(10):
                await daemon.manager.done.wait()
                await daemon.notifier.drain()
        lines = sorted((script.parent / "ids").read_text().splitlines())
    nobody = pwd.getpwnam("nobody").pw_uid
    assert lines == sorted([f"SHUTDOWN {nobody}", "cmd 0"])
