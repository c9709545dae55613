"""The manager's process runner: RUN_AS_USER for NOTIFYCMD, the wall and CMDSCRIPT.

As root (CI), commands really switch user: the child writes ``id -u`` and ``id -g`` into a
world-writable directory outside ``tmp_path`` (which only root may enter); ``nobody``
stands in for RUN_AS_USER, so no user has to be created.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from nuttrio.mgmt.notify import Notifier
from nuttrio.mgmt.process import DEFAULT_RUN_AS_USER, RunAs, command_user, run_command
from nuttrio.nutconf import load_upsmon_conf, load_upssched_conf

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may write into (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="nuttrio-runas-") as name:
        os.chmod(name, 0o777)
        yield Path(name)


def id_script(d: Path) -> Path:
    """A script writing ``<uid> <gid> <first argument>`` to ``d/ids``."""
    script = d / "ids.sh"
    script.write_text(f'#!/bin/sh\necho "$(id -u) $(id -g) $1" >> {d}/ids\n')
    script.chmod(0o755)
    return script


def ids(d: Path) -> list[tuple[int, int, str]]:
    out = []
    for line in (d / "ids").read_text().splitlines():
        uid, gid, word = [*line.split(" ", 2), ""][:3]
        out.append((int(uid), int(gid), word))
    return out


NOBODY = pwd.getpwnam("nobody")


@needs_root
async def test_run_command_runs_as_the_given_user(open_dir):
    result = await run_command(
        [str(id_script(open_dir)), "x"],
        env=dict(os.environ),
        time_limit=10,
        run_as=RunAs.lookup("nobody"),
    )
    assert result.ok, result.describe()
    assert ids(open_dir) == [(NOBODY.pw_uid, NOBODY.pw_gid, "x")]


@needs_root
async def test_run_command_without_a_user_keeps_ours(open_dir):
    result = await run_command([str(id_script(open_dir)), "y"], env=dict(os.environ), time_limit=10)
    assert result.ok
    assert ids(open_dir) == [(0, 0, "y")]


@needs_root
def test_command_user_follows_upsmon():
    nut = command_user(None)  # root drops to the default user
    assert nut is not None
    assert nut.name == DEFAULT_RUN_AS_USER
    assert command_user("nobody") == RunAs.lookup("nobody")
    assert command_user("root") is None  # already that user: no switch
    with pytest.raises(KeyError):
        command_user("no-such-user-here")


def test_run_as_lookup_takes_a_name_or_a_uid():
    assert RunAs.lookup(str(NOBODY.pw_uid)).name == NOBODY.pw_name
    assert NOBODY.pw_gid in RunAs.lookup("nobody").groups


@needs_root
async def test_notifycmd_and_the_wall_run_as_run_as_user(tmp_path, open_dir):
    script = id_script(open_dir)
    conf = tmp_path / "upsmon.conf"
    conf.write_text(
        f"MONITOR u@localhost 1 m p primary\nSHUTDOWNCMD true\nNOTIFYCMD {script}\n"
        "NOTIFYFLAG ONBATT EXEC+WALL\nRUN_AS_USER nobody\n"
    )
    conf.chmod(0o600)
    upsmon = load_upsmon_conf(conf)
    notifier = Notifier(
        upsmon,
        use_syslog=False,
        wall_command=(str(script), "wall"),
        run_as=command_user(upsmon.run_as_user),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        notifier.send("ONBATT", "u@localhost")
        with trio.fail_after(10):
            await notifier.drain()
        nursery.cancel_scope.cancel()
    assert [(u, g) for u, g, _ in ids(open_dir)] == [(NOBODY.pw_uid, NOBODY.pw_gid)] * 2
    assert [w.split()[0] for _, _, w in ids(open_dir)] == ["wall", "UPS"]


@needs_root
async def test_upssched_cmdscript_runs_as_run_as_user(tmp_path, open_dir):
    script = id_script(open_dir)
    conf = tmp_path / "upsmon.conf"
    conf.write_text(
        "MONITOR u@localhost 1 m p primary\nSHUTDOWNCMD true\nNOTIFYCMD upssched\n"
        "NOTIFYFLAG ONBATT EXEC\n"
    )
    conf.chmod(0o600)
    sched = tmp_path / "upssched.conf"
    sched.write_text(f"CMDSCRIPT {script}\nAT ONBATT * EXECUTE onbatt\n")
    notifier = Notifier(
        load_upsmon_conf(conf),
        upssched=load_upssched_conf(sched),
        use_syslog=False,
        wall_command=(),
        run_as=RunAs.lookup("nobody"),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        notifier.send("ONBATT", "u@localhost")
        assert notifier.upssched is not None
        with trio.fail_after(10):
            await notifier.upssched.drain()
        nursery.cancel_scope.cancel()
    assert ids(open_dir) == [(NOBODY.pw_uid, NOBODY.pw_gid, "onbatt")]


def test_not_root_never_switches_and_needs_no_default_user(monkeypatch):
    import nuttrio.mgmt.process as process

    monkeypatch.setattr(os, "geteuid", lambda: 12345)
    monkeypatch.setattr(process, "DEFAULT_RUN_AS_USER", "no-such-default-user")
    assert command_user(None) is None  # the default user is not needed, so not looked up
    assert command_user("nobody") is None  # cannot switch: runs as itself
    with pytest.raises(KeyError):
        command_user("no-such-user-here")  # but a bad RUN_AS_USER is still an error


@needs_root
def test_a_missing_default_user_is_a_configuration_error(tmp_path, monkeypatch):
    import nuttrio.mgmt.process as process
    from nuttrio.daemon import run_as_user
    from nuttrio.nutconf import ConfigError

    monkeypatch.setattr(process, "DEFAULT_RUN_AS_USER", "no-such-default-user")
    conf = tmp_path / "upsmon.conf"
    conf.write_text("MONITOR u@localhost 1 m p primary\nSHUTDOWNCMD true\n")
    conf.chmod(0o600)
    with pytest.raises(ConfigError, match="RUN_AS_USER is not set and the default user") as info:
        run_as_user(load_upsmon_conf(conf))
    assert info.value.path == conf
