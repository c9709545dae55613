"""Differential: Debian's blazer_ser / nutdrv_qx and nuttrio's read one simulated Megatec UPS.

Each test starts the simulator on two ptys, the real blazer_ser + upsd on one and nuttrio
(native driver) on the other, with the same ups.conf section; ``upsc`` must print the
same on both (``driver.*`` aside) as the simulated state changes, and instant commands
must reach the simulator as the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuttrio.hw.sim_megatec import MegatecModel, MegatecState

from .helpers import wait_until
from .serialdiff import Pair, differential_pair, require_driver

pytestmark = pytest.mark.realnut

POLLS = frozenset({"Q1", "F", "I"})


def assert_same(pair: Pair) -> dict[str, str]:
    real, ours = pair.both()
    assert ours == real
    return ours


def commands(pair: Pair, index: int, since: int = 0) -> list[str]:
    """What port ``index`` was sent after its first ``since`` requests, polls aside."""
    return [c for c in pair.received(index)[since:] if c not in POLLS]


#: Each driver's section for fast tests (nutdrv_qx reads the measurements only at its
#: full updates, every ``pollfreq`` seconds).
SECTIONS = {
    "blazer_ser": {"driver": "blazer_ser", "pollinterval": "1"},
    "nutdrv_qx": {"driver": "nutdrv_qx", "pollinterval": "1", "pollfreq": "1"},
}


@pytest.mark.parametrize("driver", sorted(SECTIONS))
def test_states_reach_both_the_same(tmp_path: Path, driver: str) -> None:
    require_driver(driver)
    model = MegatecModel()
    section = SECTIONS[driver]
    with differential_pair(tmp_path, model.session, section) as pair:
        first = assert_same(pair)
        listed = pair.upscmd_list(pair.real_target)
        assert "test.battery.start.quick" in listed
        assert pair.upscmd_list(pair.nuttrio_target) == listed
        writable = pair.upsrw_list(pair.real_target)
        assert pair.upsrw_list(pair.nuttrio_target) == writable
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
            load = change.get("load")
            values = pair.converge(
                lambda d, s=status, n=load: (
                    d.get("ups.status") == s  # type: ignore[misc]
                    and (n is None or d.get("ups.load") == str(n))
                )
            )
            assert values["ups.status"] == status


@pytest.mark.parametrize(
    ("driver", "ondelay", "test_time"), [("blazer_ser", "2", "5"), ("nutdrv_qx", "150", "300")]
)
def test_instcmds_reach_the_simulator_the_same_way(
    tmp_path: Path, driver: str, ondelay: str, test_time: str
) -> None:
    require_driver(driver)
    model = MegatecModel()
    model.change(ack=b"ACK\r")  # what both drivers take for success
    section = {**SECTIONS[driver], "offdelay": "45", "ondelay": ondelay}
    with differential_pair(tmp_path, model.session, section) as pair:
        cmds = [
            ("beeper.toggle",),
            ("test.battery.start.quick",),
            ("test.battery.start", test_time),
            ("test.battery.stop",),
            ("test.battery.start.deep",),
            ("shutdown.return",),
            ("shutdown.stop",),
            ("shutdown.stayoff",),
            ("load.on",),
            ("load.off",),
            ("beeper.toggle",),
        ]
        start = [len(pair.received(0)), len(pair.received(1))]  # start-up probes aside
        for index, target in ((0, pair.real_target), (1, pair.nuttrio_target)):
            for n, cmd in enumerate(cmds, 1):
                assert pair.upscmd(target, *cmd) == "OK"
                wait_until(
                    lambda i=index, k=n: len(commands(pair, i, start[i])) >= k,  # type: ignore[misc]
                    10,
                    f"{cmd} on port {index}",
                )
        sent = commands(pair, 0, start[0])
        assert commands(pair, 1, start[1]) == sent
        assert sent[:6] == ["Q", "T", "T05", "CT", "TL", "S.7R0002"]
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


def test_blazer_ser_detects_an_old_dialect_the_same_way(tmp_path: Path) -> None:
    require_driver("blazer_ser")
    model = MegatecModel(MegatecState(status_queries=("D",)))  # old Megatec firmware
    with differential_pair(tmp_path, model.session, SECTIONS["blazer_ser"]) as pair:
        values = assert_same(pair)
        assert values["ups.status"] == "OL"
        detection = ["Q1"] * 3 + ["QS"] * 3 + ["D", "F", "I"]
        assert pair.received(0)[:9] == pair.received(1)[:9] == detection
