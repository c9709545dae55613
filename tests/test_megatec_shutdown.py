"""Differential: ``blazer_ser -k`` (Debian's) and nuttrio's blazer_ser shutdown send the same.

One simulated Megatec unit (:mod:`nuttrio.hw.sim_megatec`) on two ptys: the real driver's
``-a ups -k`` on one, :meth:`nuttrio.hw.megatec.BlazerSer.shutdown` on the other, with
the same ``offdelay``/``ondelay`` and the same answers (``(ACK``, a refusal, silence).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nuttrio.hw import DriverFailed
from nuttrio.hw.base import DriverContext
from nuttrio.hw.megatec import blazer_ser_factory
from nuttrio.hw.qx_megatec import nutdrv_qx_factory
from nuttrio.hw.sim_megatec import MegatecModel, MegatecState
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.nutconf import load_nut_config

from .serialdiff import minus_k_confdirs, require_driver, run_minus_k

pytestmark = pytest.mark.realnut

CASES = [
    pytest.param(b"(ACK\r", {}, 0, id="ack-defaults"),
    pytest.param(b"(ACK\r", {"offdelay": "20", "ondelay": "0"}, 0, id="ack-short-no-return"),
    pytest.param(b"(ACK\r", {"offdelay": "130", "ondelay": "7"}, 0, id="ack-minutes"),
    pytest.param(b"(NAK\r", {}, 1, id="refused"),
    pytest.param(b"", {"offdelay": "12"}, 0, id="silent"),
]
QX = {"protocol": "megatec"}
QX_CASES = [
    pytest.param(b"ACK\r", QX, 0, id="ack-defaults"),
    pytest.param(b"ACK\r", {**QX, "stayoff": "", "offdelay": "42"}, 0, id="ack-stayoff"),
    pytest.param(b"ACK\r", {**QX, "offdelay": "300", "ondelay": "120"}, 0, id="ack-minutes"),
    pytest.param(b"(ACK\r", QX, 1, id="paren-ack-is-refused"),  # nutdrv_qx wants ACK only
]


FACTORIES = {"blazer_ser": blazer_ser_factory, "nutdrv_qx": nutdrv_qx_factory}


def _ours_k(driver_name: str, confdir: Path) -> str | None:
    config = load_nut_config(confdir)
    driver = FACTORIES[driver_name](config.ups[0], DriverContext(confdir))
    try:
        trio.run(driver.shutdown)
    except DriverFailed as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(("ack", "options", "code"), CASES)
def test_blazer_ser_minus_k_sends_the_same_lines(
    tmp_path: Path, ack: bytes, options: dict[str, str], code: int
) -> None:
    _compare(tmp_path, "blazer_ser", ack, options, code)


@pytest.mark.parametrize(("ack", "options", "code"), QX_CASES)
def test_nutdrv_qx_minus_k_sends_the_same_lines(
    tmp_path: Path, ack: bytes, options: dict[str, str], code: int
) -> None:
    _compare(tmp_path, "nutdrv_qx", ack, options, code)


def _compare(tmp_path: Path, driver: str, ack: bytes, options: dict[str, str], code: int) -> None:
    require_driver(driver)
    model = MegatecModel(MegatecState(ack=ack))
    links = [tmp_path / "ttyReal", tmp_path / "ttyOurs"]
    with PtySimulator(model.session, links) as sim:
        dirs = minus_k_confdirs(tmp_path, driver, links, options)
        done = run_minus_k(driver, dirs[0])
        failed = _ours_k(driver, dirs[1])
        real, ours = sim.session(0).received, sim.session(1).received
    print(f"real -k sent {real!r}, exit {done.returncode}: {done.stderr.strip()[-80:]!r}")
    assert done.returncode == code, done.stderr
    assert (failed is not None) == bool(code), failed
    assert ours == real
