"""SerialLine on a pty: waits on an idle port, reads to an end byte, survives the port going,
locks the port as NUT's drivers do."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from nuttrio.hw.dstate import DriverArgs
from nuttrio.hw.megatec import BLAZER_VARS
from nuttrio.hw.serial_line import PortLost, SerialLine
from nuttrio.hw.sim_megatec import MegatecModel
from nuttrio.hw.sim_pty import PtySimulator
from nuttrio.hw.transport import SerialSettings
from nuttrio.nutconf import UpsSection


async def test_an_idle_port_is_waited_on_not_taken_for_a_hang_up(tmp_path: Path) -> None:
    model = MegatecModel()
    with PtySimulator(model.session, [tmp_path / "tty"]):
        line = SerialLine(str(tmp_path / "tty"), SerialSettings())
        began = trio.current_time()
        assert await line.read_until(b"\r", 0.3) == b""  # nothing sent: a timeout
        assert trio.current_time() - began >= 0.3
        reply = await line.exchange(b"Q1\r", b"\r", 1.0)
        assert reply.startswith(b"(230.0")
        assert reply.endswith(b"\r")
        assert await line.exchange(b"F\r", b"\r", 1.0) == b"#230.0 004 024.0 50.0\r"
        await line.aclose()


async def test_a_vanished_port_raises_port_lost_and_is_reopened(tmp_path: Path) -> None:
    model = MegatecModel()
    with PtySimulator(model.session, [tmp_path / "tty"]) as sim:
        line = SerialLine(str(tmp_path / "tty"), SerialSettings())
        assert (await line.exchange(b"I\r", b"\r", 1.0)).startswith(b"#nuttrio")
        sim.vanish()
        with pytest.raises(PortLost):
            await line.exchange(b"I\r", b"\r", 1.0)
        assert not line.is_open
        with pytest.raises(PortLost, match="cannot open"):
            await line.exchange(b"I\r", b"\r", 1.0)
        sim.come_back()
        assert (await line.exchange(b"I\r", b"\r", 1.0)).startswith(b"#nuttrio")
        await line.aclose()


async def test_a_locked_port_is_not_shared(tmp_path: Path) -> None:
    model = MegatecModel()
    with PtySimulator(model.session, [tmp_path / "tty"]):
        first = SerialLine(str(tmp_path / "tty"), SerialSettings(exclusive=True))
        await first.open()
        second = SerialLine(str(tmp_path / "tty"), SerialSettings(exclusive=True))
        with pytest.raises(PortLost, match="lock"):
            await second.open()
        await first.aclose()
        await second.open()  # free again
        await second.aclose()


def test_drivers_lock_their_port_unless_nolock() -> None:
    def args(**options: str) -> DriverArgs:
        section = UpsSection("u", "blazer_ser", "/dev/ttyS0", options=options)
        return DriverArgs.from_section(section, BLAZER_VARS)

    assert args().lock
    assert not args(nolock="").lock
