"""Differential: ``apcsmart -k`` (Debian's) and nuttrio's apcsmart shutdown send the same bytes.

One simulated Smart-UPS (:mod:`nuttrio.hw.sim_apcsmart`) on two ptys: the real driver's
``-a ups -k`` runs on one, :meth:`nuttrio.hw.apcsmart.ApcSmart.shutdown` on the other, for
the same state (on line, on battery) and the same ``sdtype``/``advorder``/``cshdelay``.
The requests each port received must be the same, in the same order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nuttrio.hw.apcsmart import apcsmart_factory
from nuttrio.hw.base import DriverContext
from nuttrio.hw.sim_apcsmart import ApcModel
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.nutconf import load_nut_config

from .serialdiff import minus_k_confdirs, require_driver, run_minus_k

pytestmark = pytest.mark.realnut

ON_BATTERY = {"online": False, "on_battery": True}
CASES = [
    pytest.param({}, {}, id="online-default"),
    pytest.param(ON_BATTERY, {}, id="battery-default"),
    pytest.param({}, {"sdtype": "1", "awd": "5"}, id="online-sdtype1"),
    pytest.param({}, {"sdtype": "2"}, id="online-sdtype2"),
    pytest.param(ON_BATTERY, {"sdtype": "3"}, id="battery-sdtype3"),
    pytest.param({}, {"sdtype": "4", "cshdelay": "0.5"}, id="online-sdtype4"),
    pytest.param({}, {"sdtype": "5", "awd": "12"}, id="online-sdtype5"),
    pytest.param({}, {"advorder": "0132"}, id="online-advorder"),
    pytest.param(ON_BATTERY, {"advorder": "40", "cshdelay": "0.5"}, id="battery-advorder"),
    pytest.param({}, {"advorder": "no", "sdtype": "2"}, id="advorder-no"),
]


def _ours_k(confdir: Path) -> None:
    config = load_nut_config(confdir)
    driver = apcsmart_factory(config.ups[0], DriverContext(confdir))
    trio.run(driver.shutdown)


@pytest.mark.parametrize(("status", "options"), CASES)
def test_minus_k_sends_the_same_bytes(
    tmp_path: Path, status: dict[str, bool], options: dict[str, str]
) -> None:
    require_driver("apcsmart")
    model = ApcModel()
    model.change(**status)
    links = [tmp_path / "ttyReal", tmp_path / "ttyOurs"]
    with PtySimulator(model.session, links) as sim:
        dirs = minus_k_confdirs(tmp_path, "apcsmart", links, options)
        done = run_minus_k("apcsmart", dirs[0])
        assert done.returncode == 0, done.stderr
        _ours_k(dirs[1])
        real, ours = sim.session(0).received, sim.session(1).received
    print(f"real -k sent {real!r}")
    assert ours == real
    assert real[0] == "Y"
