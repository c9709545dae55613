"""Differential: Debian's blazer_ser and nuttrio's, on one simulated Megatec UPS."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuttrio.hw.sim_megatec import MegatecModel

from .serialdiff import differential_pair, require_driver

pytestmark = pytest.mark.realnut


def test_blazer_ser_same_upsc(tmp_path: Path) -> None:
    require_driver("blazer_ser")
    model = MegatecModel()
    with differential_pair(tmp_path, model.session, {"driver": "blazer_ser", "pollinterval": "1"}) as pair:
        real, ours = pair.both()
        assert ours == real
