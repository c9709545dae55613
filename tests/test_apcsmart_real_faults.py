"""Differential: Debian's apcsmart and nuttrio's when the simulated APC Smart-UPS goes silent.

Both make the data stale at the first failed update, leave the UPS alone for nine polls,
then put it in smart mode again (see tests/test_apcsmart_real.py for the set-up).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuttrio.hw.sim_apcsmart import ApcModel

from .helpers import wait_until
from .serialdiff import differential_pair, require_driver
from .test_apcsmart_real import SECTION

pytestmark = pytest.mark.realnut


def test_faults_reach_both_the_same(tmp_path: Path) -> None:
    require_driver("apcsmart")
    model = ApcModel()
    with differential_pair(tmp_path, model.session, SECTION) as pair:
        pair.sim.faults.silent = True
        for target in (pair.real_target, pair.nuttrio_target):
            wait_until(
                lambda t=target: pair.upsc_error(t).endswith("Error: Data stale"),  # type: ignore[misc]
                15,
                f"stale data on {target}",
            )
        pair.sim.faults.silent = False
        pair.converge(lambda d: d.get("ups.status") == "OL", timeout=30)
