"""Differential: Debian's blazer_ser / nutdrv_qx and nuttrio's when the Megatec UPS talks garbage.

Both count four failed status reads, make the data stale at the fifth, and are fresh
again at the first good read (see tests/test_megatec_real.py for the set-up).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuttrio.hw.sim_megatec import MegatecModel

from .helpers import wait_until
from .serialdiff import differential_pair, require_driver
from .test_megatec_real import SECTIONS

pytestmark = pytest.mark.realnut


@pytest.mark.parametrize("driver", sorted(SECTIONS))
def test_garbage_makes_both_stale_and_both_come_back(tmp_path: Path, driver: str) -> None:
    require_driver(driver)
    model = MegatecModel()
    with differential_pair(tmp_path, model.session, SECTIONS[driver]) as pair:
        pair.sim.faults.garbage = True
        for target in (pair.real_target, pair.nuttrio_target):
            wait_until(
                lambda t=target: pair.upsc_error(t).endswith("Error: Data stale"),  # type: ignore[misc]
                25,
                f"stale data on {target}",
            )
        pair.sim.faults.garbage = False
        model.change(utility_fail=True)
        pair.converge(lambda d: d.get("ups.status") == "OB", timeout=20)
