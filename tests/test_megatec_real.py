"""Differential: Debian's blazer_ser and nuttrio's read one simulated Megatec UPS.

Each test starts the simulator on two ptys, the real blazer_ser + upsd on one and nuttrio
(native driver) on the other, with the same ups.conf section; ``upsc`` must print the
same on both (``driver.*`` aside) as the simulated state changes, and instant commands
must reach the simulator as the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuttrio.hw.sim_megatec import MegatecModel

from .helpers import wait_until
from .serialdiff import Pair, differential_pair, require_driver

pytestmark = pytest.mark.realnut

POLLS = frozenset({"Q1", "F", "I"})


def assert_same(pair: Pair) -> dict[str, str]:
    real, ours = pair.both()
    assert ours == real
    return ours


def commands(pair: Pair, index: int) -> list[str]:
    return [c for c in pair.received(index) if c not in POLLS]


def test_states_reach_both_the_same(tmp_path: Path) -> None:
    require_driver("blazer_ser")
    model = MegatecModel()
    section = {"driver": "blazer_ser", "pollinterval": "1"}
    with differential_pair(tmp_path, model.session, section) as pair:
        first = assert_same(pair)
        assert first["ups.status"] == "OL"
        assert first["battery.charge"] == "100"
        steps: list[tuple[dict[str, object], str]] = [
            ({"utility_fail": True, "battery_voltage": 24.1, "input_voltage": 0.0}, "OB"),
            ({"battery_low": True, "battery_voltage": 21.0, "load": 55}, "OB LB"),
            (
                {
                    "utility_fail": False,
                    "battery_low": False,
                    "input_voltage": 190.0,
                    "output_voltage": 225.0,
                    "boost_buck": True,
                },
                "OL BOOST",
            ),
            ({"ups_failed": True, "boost_buck": False, "beeper": False}, "ALARM OL"),
            ({"ups_failed": False, "test": True, "standby": False, "load": None}, "OL CAL"),
            ({"test": False, "temperature": None, "input_frequency": 60.0}, "OL"),
        ]
        for change, status in steps:
            model.change(**change)
            pair.wait_both(
                lambda d, s=status, c=change: (
                    d.get("ups.status") == s  # type: ignore[misc]
                    and (
                        "load" not in c or c["load"] is None or d.get("ups.load") == str(c["load"])
                    )
                )
            )
            values = assert_same(pair)
            assert values["ups.status"] == status


def test_instcmds_reach_the_simulator_the_same_way(tmp_path: Path) -> None:
    require_driver("blazer_ser")
    model = MegatecModel()
    section = {"driver": "blazer_ser", "pollinterval": "1", "offdelay": "45", "ondelay": "2"}
    with differential_pair(tmp_path, model.session, section) as pair:
        cmds = [
            ("beeper.toggle",),
            ("test.battery.start.quick",),
            ("test.battery.start", "5"),
            ("test.battery.stop",),
            ("test.battery.start.deep",),
            ("shutdown.return",),
            ("shutdown.stop",),
            ("shutdown.stayoff",),
            ("load.on",),
            ("load.off",),
            ("beeper.toggle",),
        ]
        for index, target in ((0, pair.real_target), (1, pair.nuttrio_target)):
            for n, cmd in enumerate(cmds, 1):
                assert pair.upscmd(target, *cmd) == "OK"
                wait_until(
                    lambda i=index, k=n: len(commands(pair, i)) >= k,  # type: ignore[misc]
                    10,
                    f"{cmd} on port {index}",
                )
        assert commands(pair, 1) == commands(pair, 0)
        assert commands(pair, 0)[:6] == ["Q", "T", "T05", "CT", "TL", "S.7R0002"]
        real, ours = pair.both()
        assert ours["ups.delay.shutdown"] == real["ups.delay.shutdown"] == "42"
        assert ours["ups.delay.start"] == real["ups.delay.start"] == "120"
        assert pair.upscmd(pair.nuttrio_target, "nope.cmd") == pair.upscmd(
            pair.real_target, "nope.cmd"
        )


def test_options_give_the_same_variables(tmp_path: Path) -> None:
    require_driver("blazer_ser")
    model = MegatecModel()
    model.change(battery_voltage=2.2, nominal_battery_voltage=36.0)  # per-cell: packs found
    section = {
        "driver": "blazer_ser",
        "pollinterval": "1",
        "default.battery.voltage.low": "31.5",
        "default.battery.voltage.high": "40.5",
        "override.ups.mfr": "Overridden",
        "default.ups.serial": "XYZ",
        "runtimecal": "300,100,1200,50",
        "novendor": "",
        "offdelay": "120",
    }
    with differential_pair(tmp_path, model.session, section) as pair:
        values = assert_same(pair)
        assert values["ups.mfr"] == "Overridden"
        assert "battery.runtime" in values
        assert "ups.model" not in values
