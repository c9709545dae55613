"""NUT's real dummy-ups binary served through the bridge (``--nut-driver``, external drivers).

* For a sample of the NUT DDL dumps, upsc prints the same for nuttrio serving them with
  NUT's dummy-ups binary as for nuttrio's own simulator (driver.* lines aside).
* SET VAR and INSTCMD with TRACKING reach the driver and its answer comes back.
* ``--nut-driver`` and ``--external-drivers`` on the command line; NUT's clone binary.

Restarts, reloads, external drivers and frozen drivers: tests/test_nutdriver_restarts.py.
"""

from __future__ import annotations

import subprocess

import pytest
import trio

from nuttrio.client import NutError, open_nut_client
from nuttrio.daemon import open_daemon
from nuttrio.hw.nutdriver import NutDriverBridge

from . import nutbridge as nb
from .helpers import wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ddl_ups_name,
    ddl_ups_sections,
    free_port,
    require_ddl,
    upsc_dump_many,
    write_dev_file,
)

pytestmark = pytest.mark.realnut

#: How many DDL dumps the differential test serves (spread over the whole library).
DDL_SAMPLE = 8


async def test_ddl_sample_served_by_nut_dummy_ups_matches_nuttrio_s_simulator(tmp_path):
    files = require_ddl()
    sample = files[:: max(len(files) // DDL_SAMPLE, 1)][:DDL_SAMPLE]
    confdir = nb.conf(tmp_path, ddl_ups_sections(sample))
    async with (
        open_daemon(nb.options(confdir, nut_drivers=["all"])) as bridged,
        open_daemon(nb.options(confdir)) as native,
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


async def test_tracking_goes_through_the_bridge(tmp_path):
    confdir = nb.one_ups(tmp_path)
    async with open_daemon(nb.options(confdir, nut_drivers=["u"])) as daemon:
        assert nb.bridge(daemon, "u").pid is not None
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


def test_the_command_line_flags_serve_through_nut_s_binary(tmp_path):
    confdir = nb.one_ups(tmp_path)
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
    confdir = nb.conf(
        tmp_path,
        {"real": {"port": str(dev)}, "outlet": {"driver": "clone", "port": "dummy-ups-real"}},
    )
    async with open_daemon(nb.options(confdir, nut_drivers=["real", "outlet"])) as daemon:
        assert isinstance(daemon.driver("outlet"), NutDriverBridge)  # NUT's, not nuttrio's
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:

            async def cloned() -> bool:
                return await nb.error(nut, "outlet") is None

            await nb.until(cloned)
            assert await nut.get_var("outlet", "driver.name") == "clone"
            assert await nut.get_var("outlet", "battery.charge") == "80"
            await nut.username("admin")
            await nut.password("adminpass")
            await nut.set_var("real", "ups.status", "OB")

            async def followed() -> bool:
                return await nut.get_var("outlet", "ups.status") == "OB"

            await nb.until(followed)
