"""NUT's real dummy-ups binary served through the bridge (``--nut-driver``, external drivers).

* For a sample of the NUT DDL dumps, upsc prints the same for nuttrio serving them with
  NUT's dummy-ups binary as for nuttrio's own simulator (driver.* lines aside).
* SET VAR and INSTCMD with TRACKING reach the driver and its answer comes back.
* Killing the driver process gives DRIVER-NOT-CONNECTED, then the supervisor restarts it.
* SIGHUP (reload) restarts only the driver whose section changed.
* With external drivers nuttrio starts none and follows the one started by "the system".
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio

from nuttrio.client import NutClient, NutError, open_nut_client
from nuttrio.daemon import Daemon, DaemonOptions, open_daemon
from nuttrio.hw.nutdriver import NutDriverBridge

from .helpers import wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ddl_ups_name,
    ddl_ups_sections,
    driver_binary,
    free_port,
    require_ddl,
    require_real_nut,
    upsc_dump_many,
    write_dev_file,
    write_nut_config,
)

pytestmark = pytest.mark.realnut

#: How many DDL dumps the differential test serves (spread over the whole library).
DDL_SAMPLE = 8


def _conf(tmp_path: Path, ups: Mapping[str, Mapping[str, str | int]], globals_: str = "") -> Path:
    """A NUT directory whose drivers run as the current user (``user`` in ups.conf)."""
    require_real_nut()
    confdir = write_nut_config(tmp_path / "conf", port=3493, ups=ups)
    upsconf = confdir / "ups.conf"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
    upsconf.write_text(f"user = {user}\n{globals_}" + upsconf.read_text())
    return confdir


def _options(confdir: Path, **kw: object) -> DaemonOptions:
    return DaemonOptions(confdir=confdir, listen=[("127.0.0.1", 0)], **kw)  # type: ignore[arg-type]


def _bridge(daemon: Daemon, name: str) -> NutDriverBridge:
    driver = daemon.driver(name)
    assert isinstance(driver, NutDriverBridge)
    return driver


async def _until(predicate: object, limit: float = 15.0, every: float = 0.05) -> None:
    """Wait on the real clock for state a real driver process changes."""
    with trio.fail_after(limit):
        while not await predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(every)


async def _error(nut: NutClient, ups: str) -> str | None:
    try:
        await nut.get_var(ups, "ups.status")
    except NutError as exc:
        return exc.code
    return None


async def test_ddl_sample_served_by_nut_dummy_ups_matches_nuttrio_s_simulator(tmp_path):
    files = require_ddl()
    sample = files[:: max(len(files) // DDL_SAMPLE, 1)][:DDL_SAMPLE]
    confdir = _conf(tmp_path, ddl_ups_sections(sample))
    async with (
        open_daemon(_options(confdir, nut_drivers=["all"])) as bridged,
        open_daemon(_options(confdir)) as native,
    ):
        assert all(
            isinstance(bridged.driver(ddl_ups_name(i)), NutDriverBridge) for i in range(len(sample))
        )
        targets = {
            side: [f"{ddl_ups_name(i)}@{host}:{port}" for i in range(len(sample))]
            for side, (host, port) in (
                ("bridge", bridged.addresses[0]),
                ("own", native.addresses[0]),
            )
        }
        dumps = await trio.to_thread.run_sync(upsc_dump_many, targets["bridge"] + targets["own"])
    mismatches = []
    for i, path in enumerate(sample):
        theirs = [x for x in dumps[targets["bridge"][i]] if not x.startswith("driver.")]
        mine = [x for x in dumps[targets["own"][i]] if not x.startswith("driver.")]
        assert theirs, f"nothing served for {path.name} through the bridge"
        if mine != theirs:
            mismatches.append(f"{path.name}: {sorted(set(mine) ^ set(theirs))[:6]}")
    assert not mismatches, "\n".join(mismatches)
    bridge_driver_lines = [x for x in dumps[targets["bridge"][0]] if x.startswith("driver.name")]
    assert bridge_driver_lines == ["driver.name: dummy-ups"]


def _one_ups(tmp_path: Path, **keys: str) -> Path:
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL", "battery.charge": "100"})
    return _conf(tmp_path, {"u": {"port": str(dev), **keys}})


async def test_tracking_goes_through_the_bridge(tmp_path):
    confdir = _one_ups(tmp_path)
    async with open_daemon(_options(confdir, nut_drivers=["u"])) as daemon:
        assert _bridge(daemon, "u").pid is not None
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            await nut.username("admin")
            await nut.password("adminpass")
            await nut.set_tracking(True)
            result = await nut.set_var("u", "battery.charge", "42")
            assert result.id is not None
            with trio.fail_after(10):
                assert await result == "SUCCESS"
            assert await nut.get_var("u", "battery.charge") == "42"
            command = await nut.instcmd("u", "load.off")
            with trio.fail_after(10), pytest.raises(NutError) as err:
                await command  # dummy-ups answers every instant command "unknown"
            assert err.value.code == "UNKNOWN"


async def test_killing_the_driver_gives_driver_not_connected_then_a_restart(tmp_path):
    confdir = _one_ups(tmp_path)
    async with open_daemon(_options(confdir, nut_drivers=["u"])) as daemon:
        host, port = daemon.addresses[0]
        entry = daemon.store.get("u")
        assert entry is not None
        first = _bridge(daemon, "u").pid
        assert first is not None
        async with open_nut_client(host, port) as nut:
            assert await _error(nut, "u") is None
            os.kill(first, signal.SIGKILL)

            async def not_connected() -> bool:
                return await _error(nut, "u") == "DRIVER-NOT-CONNECTED"

            await _until(not_connected, every=0.01)

            async def served_again() -> bool:
                return await _error(nut, "u") is None

            await _until(served_again)
            second = _bridge(daemon, "u").pid
            assert second is not None
            assert second != first
            assert entry.statistics().restarts == 1


async def test_reload_restarts_only_the_changed_driver(tmp_path):
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL"})
    confdir = _conf(tmp_path, {"a": {"port": str(dev)}, "b": {"port": str(dev)}})
    async with open_daemon(_options(confdir, nut_drivers=["all"])) as daemon:
        pid_a, pid_b = _bridge(daemon, "a").pid, _bridge(daemon, "b").pid
        upsconf = confdir / "ups.conf"
        text = upsconf.read_text()
        head, _, tail = text.partition("[b]")
        upsconf.write_text(head + "[b]\n\tpollinterval = 3" + tail)
        await daemon.reload()
        entry_b = daemon.store.get("b")
        assert entry_b is not None

        async def b_restarted() -> bool:
            return entry_b.snapshot().value("driver.parameter.pollinterval") == "3"

        await _until(b_restarted)
        assert _bridge(daemon, "a").pid == pid_a
        assert _bridge(daemon, "b").pid not in (None, pid_b)
        entry_a = daemon.store.get("a")
        assert entry_a is not None
        assert entry_a.statistics().restarts == 0


async def test_external_drivers_are_followed_as_upsd_does(tmp_path):
    confdir = _one_ups(tmp_path)
    binary = driver_binary("dummy-ups")
    assert binary is not None
    env = {**os.environ, "NUT_CONFPATH": str(confdir), "NUT_STATEPATH": str(confdir / "state")}
    argv = [str(binary), "-a", "u", "-F", "-u", "root" if os.geteuid() == 0 else os.environ["USER"]]
    async with open_daemon(_options(confdir, external_drivers=True)) as daemon:
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            assert await _error(nut, "u") == "DRIVER-NOT-CONNECTED"
            for _ in range(2):  # the system starts the driver, it dies, it is started again
                proc = await trio.lowlevel.open_process(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                try:

                    async def served() -> bool:
                        return await _error(nut, "u") is None

                    await _until(served)
                    assert await nut.get_var("u", "battery.charge") == "100"
                finally:
                    proc.kill()
                    await proc.wait()

                async def gone() -> bool:
                    return await _error(nut, "u") == "DRIVER-NOT-CONNECTED"

                await _until(gone)
        assert daemon.store.get("u").statistics().restarts == 0  # type: ignore[union-attr]


def test_the_command_line_flags_serve_through_nut_s_binary(tmp_path):
    confdir = _one_ups(tmp_path)
    port = free_port()
    base = ["--nut-config", str(confdir), "--listen", f"127.0.0.1:{port}", "-v"]
    with NuttrioProcess([*base, "--nut-driver", "u"]) as proc:
        assert "starting" in proc.wait_for_log("dummy-ups -a u -F")
        wait_until(lambda: "battery.charge: 100" in _upsc(f"u@127.0.0.1:{port}"), 15, "data")
    with NuttrioProcess([*base, "--external-drivers"]) as proc:
        assert "no driver at" in proc.wait_for_log(str(confdir / "state" / "dummy-ups-u"))
        assert _upsc(f"u@127.0.0.1:{port}") == ["Error: Driver not connected"]


def _upsc(target: str) -> list[str]:
    done = subprocess.run(["upsc", target], capture_output=True, text=True, check=False)
    return [line for line in (done.stdout + done.stderr).splitlines() if "SSL" not in line]


async def test_nut_s_clone_binary_follows_a_bridged_driver_socket(tmp_path):
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL", "battery.charge": "80"})
    confdir = _conf(
        tmp_path,
        {"real": {"port": str(dev)}, "outlet": {"driver": "clone", "port": "dummy-ups-real"}},
    )
    async with open_daemon(_options(confdir, nut_drivers=["real"])) as daemon:
        assert isinstance(daemon.driver("outlet"), NutDriverBridge)  # nuttrio has no clone
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:

            async def cloned() -> bool:
                return await _error(nut, "outlet") is None

            await _until(cloned)
            assert await nut.get_var("outlet", "driver.name") == "clone"
            assert await nut.get_var("outlet", "battery.charge") == "80"
            await nut.username("admin")
            await nut.password("adminpass")
            await nut.set_var("real", "ups.status", "OB")

            async def followed() -> bool:
                return await nut.get_var("outlet", "ups.status") == "OB"

            await _until(followed)


async def test_a_frozen_driver_reads_data_stale_then_fresh_when_it_answers_again(tmp_path):
    confdir = _one_ups(tmp_path)
    (confdir / "upsd.conf").write_text((confdir / "upsd.conf").read_text() + "MAXAGE 3\n")
    async with open_daemon(_options(confdir, nut_drivers=["u"])) as daemon:
        host, port = daemon.addresses[0]
        pid = _bridge(daemon, "u").pid
        assert pid is not None
        async with open_nut_client(host, port) as nut:
            assert await _error(nut, "u") is None
            os.kill(pid, signal.SIGSTOP)  # the driver stops answering (PING unanswered)
            try:

                async def stale() -> bool:
                    return await _error(nut, "u") == "DATA-STALE"

                await _until(stale, limit=10)
            finally:
                os.kill(pid, signal.SIGCONT)

            async def fresh() -> bool:
                return await _error(nut, "u") is None

            await _until(fresh, limit=10)
            assert _bridge(daemon, "u").pid == pid  # the same driver: nothing restarted
