"""Differential: Debian's nutdrv_qx and nuttrio's on what only nutdrv_qx has.

Writable delays (SET with ranges), its ACK rule, its options in seconds (see
tests/test_megatec_real.py for the set-up).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuttrio.hw.sim_megatec import MegatecModel

from .helpers import wait_until
from .serialdiff import differential_pair, require_driver, upsc_values
from .test_megatec_real import SECTIONS, commands

pytestmark = pytest.mark.realnut


def test_nutdrv_qx_delays_are_writable_the_same_way(tmp_path: Path) -> None:
    require_driver("nutdrv_qx")
    model = MegatecModel()
    model.change(ack=b"(ACK\r")  # nutdrv_qx's megatec wants ACK exactly: this fails
    with differential_pair(tmp_path, model.session, SECTIONS["nutdrv_qx"]) as pair:
        start = [len(pair.received(0)), len(pair.received(1))]  # start-up probes aside
        outcomes: list[str] = []
        for index, target in ((0, pair.real_target), (1, pair.nuttrio_target)):
            assert pair.upsrw(target, "ups.delay.shutdown=95") == "OK"
            assert pair.upsrw(target, "ups.delay.start=200") == "OK"
            wait_until(
                lambda t=target: upsc_values(t).get("ups.delay.shutdown") == "60",  # type: ignore[misc]
                10,
                f"the SET on {target}",
            )
            outcomes.append(pair.upscmd(target, "shutdown.return"))
            wait_until(
                lambda i=index: commands(pair, i, start[i]),  # type: ignore[misc]
                10,
                f"the command on port {index}",
            )
            assert pair.upsrw(target, "ups.delay.shutdown=5") != "OK"  # out of range
        assert commands(pair, 1, start[1]) == commands(pair, 0, start[0]) == ["S01R0003"]
        assert outcomes[0] == outcomes[1]
        pair.converge(lambda d: d.get("ups.status") == "ALARM OL FSD")  # the shutdown bit
        assert pair.upsrw_list(pair.nuttrio_target) == pair.upsrw_list(pair.real_target)


def test_nutdrv_qx_options_give_the_same_variables(tmp_path: Path) -> None:
    require_driver("nutdrv_qx")
    model = MegatecModel()
    model.change(battery_voltage=2.2, nominal_battery_voltage=36.0)
    section = {
        **SECTIONS["nutdrv_qx"],
        "default.battery.voltage.low": "31.5",
        "default.battery.voltage.high": "40.5",
        "override.device.mfr": "Overridden",
        "runtimecal": "300,100,1200,50",
        "norating": "",
        "ondelay": "600",
        "offdelay": "20",
    }
    with differential_pair(tmp_path, model.session, section) as pair:
        values = pair.converge(lambda d: "battery.runtime" in d)
        assert values["device.mfr"] == "Overridden"
        assert values["ups.delay.start"] == "600"
        assert values["ups.delay.shutdown"] == "18"
        assert "input.voltage.nominal" not in values
