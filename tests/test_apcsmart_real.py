"""Differential: Debian's apcsmart and nuttrio's read one simulated APC Smart-UPS.

The simulator (:mod:`nuttrio.hw.sim_apcsmart`) serves two ptys: the real apcsmart + upsd
on one, nuttrio's native driver on the other, with the same ups.conf section. ``upsc``
must print the same (``driver.*`` aside) as the status changes (with the alerts a real
unit sends), and instant commands and SETs must reach the simulator as the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nuttrio.hw.sim_apcsmart import DEFAULT_VALUES, ApcModel

from .helpers import wait_until
from .serialdiff import Pair, differential_pair, require_driver

pytestmark = pytest.mark.realnut

SECTION = {"driver": "apcsmart", "pollinterval": "1"}
#: The queries a poll sends (with the status query Q), left out of the command logs.
SIMPLE_COMMANDS = ("test.battery.start", "test.panel.start", "calibrate.start", "bypass.start")
POLLED = frozenset("QCPXiLF9GMN/OhH{}tT[]fBjY\x1b")


def sent(pair: Pair, index: int, since: int) -> list[str]:
    return [c for c in pair.received(index)[since:] if c not in POLLED]


def test_states_reach_both_the_same(tmp_path: Path) -> None:
    require_driver("apcsmart")
    model = ApcModel()
    with differential_pair(tmp_path, model.session, SECTION) as pair:
        first = pair.converge(lambda d: d.get("ups.status") == "OL")
        listed = pair.upscmd_list(pair.real_target)
        assert "calibrate.start" in listed
        assert pair.upscmd_list(pair.nuttrio_target) == listed
        writable = pair.upsrw_list(pair.real_target)
        assert pair.upsrw_list(pair.nuttrio_target) == writable
        assert "[input.transfer.high]" in writable
        assert first["battery.runtime"] == "2520"
        assert first["input.transfer.reason"] == "no transfers yet since turnon"
        steps: list[tuple[dict[str, bool], dict[str, str], str]] = [
            ({"online": False, "on_battery": True}, {"f": "080.0", "j": "0012:"}, "OB"),
            ({"low_battery": True}, {"f": "010.0", "G": "L"}, "OB LB"),
            ({"online": True, "on_battery": False, "low_battery": False}, {}, "OL"),
            ({"boost": True, "overload": True}, {"P": "104.0"}, "BOOST OL OVER"),
            ({"boost": False, "overload": False, "replace_battery": True}, {}, "OL RB"),
            ({"replace_battery": False, "calibration": True}, {}, "CAL OL"),
            ({"calibration": False, "online": False}, {}, "OFF"),
        ]
        for bits, values, status in steps:
            for query, value in values.items():
                model.set_value(query, value)
            model.change(**bits)
            got = pair.converge(lambda d, s=status: d.get("ups.status") == s)  # type: ignore[misc]
            for query, value in values.items():
                if query == "f":
                    assert got["battery.charge"] == value


def test_instcmds_and_sets_reach_the_simulator_the_same_way(tmp_path: Path) -> None:
    require_driver("apcsmart")
    model = ApcModel()
    with differential_pair(tmp_path, model.session, SECTION) as pair:
        assert pair.upsrw_list(pair.nuttrio_target) == pair.upsrw_list(pair.real_target)
        start = [len(pair.received(0)), len(pair.received(1))]
        outcomes: list[list[str]] = [[], []]
        for index, target in ((0, pair.real_target), (1, pair.nuttrio_target)):
            for cmd in SIMPLE_COMMANDS:
                outcomes[index].append(pair.upscmd(target, cmd))
            outcomes[index].append(pair.upsrw(target, "input.transfer.high=271"))
            outcomes[index].append(pair.upsrw(target, "ups.id=NEWID"))
            outcomes[index].append(pair.upsrw(target, "ups.delay.shutdown=7"))  # not a choice
            # A nasty command runs only when given twice, 3 to 15 s apart.
            outcomes[index].append(pair.upscmd(target, "shutdown.return", "at:5"))
            time.sleep(4.5)  # inside the window even if each driver is in a poll
            outcomes[index].append(pair.upscmd(target, "shutdown.return", "at:5"))
            wait_until(
                lambda i=index: "@005" in pair.received(i)[start[i] :],  # type: ignore[misc]
                10,
                f"the shutdown on port {index}",
            )
            model.change(calibration=False)
            model.set_value("u", "253")
            model.set_value("c", "UPS_IDEN")
        assert outcomes[1] == outcomes[0]
        real_sent, ours_sent = sent(pair, 0, start[0]), sent(pair, 1, start[1])
        assert ours_sent == real_sent
        assert {"W", "A", "D", "^", "-", "-NEWID\r\r\r", "@005"} <= set(real_sent)
        # Each driver read its settings back after its SET (they are not polled).
        pair.converge(lambda d: (d["ups.id"], d["input.transfer.high"]) == ("NEWID", "271"))


def test_an_old_model_from_the_firmware_table(tmp_path: Path) -> None:
    require_driver("apcsmart")
    values = {k: v for k, v in DEFAULT_VALUES.items() if k not in "b\x01"}
    model = ApcModel({**values, "V": "6QD"})  # a Smart-UPS 600 of the 1990s: no "a"
    with differential_pair(tmp_path, model.session, SECTION) as pair:
        got = pair.converge(lambda d: d.get("ups.status") == "OL")
        assert got["ups.model"] == "Smart-UPS"
        assert got["ups.firmware"] == "6QD"
        assert pair.upscmd_list(pair.nuttrio_target) == pair.upscmd_list(pair.real_target)
        assert "a" not in pair.received(0)
        assert "a" not in pair.received(1)
