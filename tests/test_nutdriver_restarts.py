"""NUT's dummy-ups through the bridge when it dies, freezes, changes or is started by others.

* Killing the driver process gives DRIVER-NOT-CONNECTED, then the supervisor restarts it.
* SIGHUP (reload) restarts only the driver whose section changed.
* With external drivers nuttrio starts none and follows the one started by "the system".
* A driver that stops answering reads DATA-STALE past MAXAGE, fresh when it answers again.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import trio

from nuttrio.client import open_nut_client
from nuttrio.daemon import open_daemon

from . import nutbridge as nb
from .realnut import driver_binary, write_dev_file

pytestmark = pytest.mark.realnut


async def test_killing_the_driver_gives_driver_not_connected_then_a_restart(tmp_path):
    confdir = nb.one_ups(tmp_path)
    async with open_daemon(nb.options(confdir, nut_drivers=["u"])) as daemon:
        host, port = daemon.addresses[0]
        entry = daemon.store.get("u")
        assert entry is not None
        first = nb.bridge(daemon, "u").pid
        assert first is not None
        async with open_nut_client(host, port) as nut:
            assert await nb.error(nut, "u") is None
            os.kill(first, signal.SIGKILL)

            async def not_connected() -> bool:
                return await nb.error(nut, "u") == "DRIVER-NOT-CONNECTED"

            await nb.until(not_connected, every=0.01)

            async def served_again() -> bool:
                return await nb.error(nut, "u") is None

            await nb.until(served_again)
            second = nb.bridge(daemon, "u").pid
            assert second is not None
            assert second != first
            assert entry.statistics().restarts == 1


async def test_reload_restarts_only_the_changed_driver(tmp_path):
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL"})
    confdir = nb.conf(tmp_path, {"a": {"port": str(dev)}, "b": {"port": str(dev)}})
    async with open_daemon(nb.options(confdir, nut_drivers=["all"])) as daemon:
        pid_a, pid_b = nb.bridge(daemon, "a").pid, nb.bridge(daemon, "b").pid
        upsconf = confdir / "ups.conf"
        text = upsconf.read_text()
        head, _, tail = text.partition("[b]")
        upsconf.write_text(head + "[b]\n\tpollinterval = 3" + tail)
        await daemon.reload()
        entry_b = daemon.store.get("b")
        assert entry_b is not None

        async def b_restarted() -> bool:
            return entry_b.snapshot().value("driver.parameter.pollinterval") == "3"

        await nb.until(b_restarted)
        assert nb.bridge(daemon, "a").pid == pid_a
        assert nb.bridge(daemon, "b").pid not in (None, pid_b)
        entry_a = daemon.store.get("a")
        assert entry_a is not None
        assert entry_a.statistics().restarts == 0


async def test_external_drivers_are_followed_as_upsd_does(tmp_path):
    confdir = nb.one_ups(tmp_path)
    binary = driver_binary("dummy-ups")
    assert binary is not None
    env = {**os.environ, "NUT_CONFPATH": str(confdir), "NUT_STATEPATH": str(confdir / "state")}
    argv = [str(binary), "-a", "u", "-F", "-u", "root" if os.geteuid() == 0 else os.environ["USER"]]
    async with open_daemon(nb.options(confdir, external_drivers=True)) as daemon:
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            assert await nb.error(nut, "u") == "DRIVER-NOT-CONNECTED"
            for _ in range(2):  # the system starts the driver, it dies, it is started again
                proc = await trio.lowlevel.open_process(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                try:

                    async def served() -> bool:
                        return await nb.error(nut, "u") is None

                    await nb.until(served)
                    assert await nut.get_var("u", "battery.charge") == "100"
                finally:
                    proc.kill()
                    await proc.wait()

                async def gone() -> bool:
                    return await nb.error(nut, "u") == "DRIVER-NOT-CONNECTED"

                await nb.until(gone)
        assert daemon.store.get("u").statistics().restarts == 0  # type: ignore[union-attr]


async def test_a_frozen_driver_reads_data_stale_then_fresh_when_it_answers_again(tmp_path):
    confdir = nb.one_ups(tmp_path)
    (confdir / "upsd.conf").write_text((confdir / "upsd.conf").read_text() + "MAXAGE 3\n")
    async with open_daemon(nb.options(confdir, nut_drivers=["u"])) as daemon:
        host, port = daemon.addresses[0]
        pid = nb.bridge(daemon, "u").pid
        assert pid is not None
        async with open_nut_client(host, port) as nut:
            assert await nb.error(nut, "u") is None
            os.kill(pid, signal.SIGSTOP)  # the driver stops answering (PING unanswered)
            try:

                async def stale() -> bool:
                    return await nb.error(nut, "u") == "DATA-STALE"

                await nb.until(stale, limit=10)
            finally:
                os.kill(pid, signal.SIGCONT)

            async def fresh() -> bool:
                return await nb.error(nut, "u") is None

            await nb.until(fresh, limit=10)
            assert nb.bridge(daemon, "u").pid == pid  # the same driver: nothing restarted
