"""The driver kit: the registry and context, the serial and USB transports, the polling loop."""

from __future__ import annotations

import os
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from nuttrio.daemon import driver_context
from nuttrio.hw.base import DriverContext, DriverRegistry, create_driver
from nuttrio.hw.kit import DeviceSilent, every, run_polling_driver
from nuttrio.hw.transport import BlockingDevice, SerialSettings, open_serial
from nuttrio.nutconf import UpsSection, load_nut_config
from nuttrio.state import CommandKind, CommandStatus, DriverCommand, UpsEntry, Variable

REPO = Path(__file__).resolve().parents[1]


def section(driver: str, name: str = "u") -> UpsSection:
    return UpsSection(
        name=name,
        driver=driver,
        port="auto",
        options={"driver": driver, "port": "auto"},
        path=Path("/etc/nut/ups.conf"),
        lineno=3,
    )


# -- the registry and the context ------------------------------------------------------


def test_a_driver_module_is_imported_only_when_a_section_names_it(tmp_path, monkeypatch):
    (tmp_path / "fake_usb_driver.py").write_text(
        textwrap.dedent(
            """
            import fake_pyusb  # stands for pyusb: imported with the driver module

            def factory(section, context):
                return ("driver for", section.name, context.confdir)
            """
        )
    )
    (tmp_path / "fake_pyusb.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = DriverRegistry({"fake-usbhid": "fake_usb_driver:factory"})
    monkeypatch.setattr("nuttrio.hw.base.DRIVERS", registry)
    assert "fake-usbhid" in registry
    assert list(registry) == ["fake-usbhid"]
    assert "fake_pyusb" not in sys.modules
    driver = create_driver(section("fake-usbhid"), DriverContext(tmp_path))
    assert driver == ("driver for", "u", tmp_path)
    assert "fake_pyusb" in sys.modules
    monkeypatch.delitem(sys.modules, "fake_pyusb")
    monkeypatch.delitem(sys.modules, "fake_usb_driver")


def test_a_driver_module_that_cannot_load_is_a_config_error(monkeypatch):
    from nuttrio.nutconf import ConfigError

    monkeypatch.setattr(
        "nuttrio.hw.base.DRIVERS", DriverRegistry({"broken": "no_such_module_xyz:factory"})
    )
    with pytest.raises(ConfigError, match=r"/etc/nut/ups.conf:3: .*'broken' cannot be loaded"):
        create_driver(section("broken"), DriverContext(Path()))


def test_serving_dummy_ups_imports_neither_pyusb_nor_pyserial(tmp_path):
    (tmp_path / "u.dev").write_text("ups.status: OL\n")
    (tmp_path / "ups.conf").write_text("[u]\n\tdriver = dummy-ups\n\tport = u.dev\n")
    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "upsd.users").write_text("")
    script = textwrap.dedent(
        f"""
        import sys
        import nuttrio.daemon, nuttrio.hw.transport, nuttrio.hw.kit
        from nuttrio.nutconf import load_nut_config
        from nuttrio.daemon import driver_context
        from nuttrio.hw import create_driver
        from pathlib import Path
        config = load_nut_config(Path({str(tmp_path)!r}))
        drivers = [create_driver(s, driver_context(config)) for s in config.ups]
        assert type(drivers[0]).__name__ == "DummyUps", drivers
        print(sorted(m for m in ("usb", "serial") if m in sys.modules))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def test_driver_context_from_the_configuration(tmp_path):
    (tmp_path / "u.dev").write_text("ups.status: OL\n")
    (tmp_path / "ups.conf").write_text(
        "pollinterval = 7\nmaxretry = 3\n[u]\n\tdriver = dummy-ups\n\tport = u.dev\n"
    )
    (tmp_path / "upsd.conf").write_text(f"STATEPATH {tmp_path}/state\n")
    (tmp_path / "upsd.users").write_text("")
    context = driver_context(load_nut_config(tmp_path))
    assert context.confdir == tmp_path
    assert context.statepath == tmp_path / "state"
    assert dict(context.ups_globals) == {"pollinterval": "7", "maxretry": "3"}
    assert context.clock is trio.current_time


# -- the serial port -----------------------------------------------------------------


@pytest.fixture
def pty():
    """A pseudo-terminal: the driver side's path and the peer (the "UPS") side's fd."""
    peer, driver_side = os.openpty()
    yield os.ttyname(driver_side), peer
    os.close(driver_side)
    os.close(peer)


async def test_serial_stream_talks_to_a_peer_on_a_pty(pty, nursery):
    path, peer_fd = pty
    async with (
        await open_serial(path, SerialSettings(baudrate=9600, stopbits=2)) as port,
        trio.lowlevel.FdStream(os.dup(peer_fd)) as peer,
    ):
        attrs_ = termios.tcgetattr(port.port.fileno())
        # pyserial set the speed, the stop bits and raw mode (a Linux pty keeps no data
        # bits or parity, so those are not checked here).
        assert attrs_[4] == attrs_[5] == termios.B9600
        assert attrs_[2] & termios.CSTOPB
        assert not attrs_[3] & (termios.ICANON | termios.ECHO)
        await port.send_all(b"Q1\r")
        got = b""
        while not got.endswith(b"\r"):
            got += await peer.receive_some()
        assert got == b"Q1\r"

        # A read waiting for the UPS does not block anyone else.
        ticks = 0
        received = trio.Event()
        answer = bytearray()

        async def reader():
            while not answer.endswith(b"\r"):
                answer.extend(await port.receive_some())
            received.set()

        nursery.start_soon(reader)
        for _ in range(5):
            await trio.sleep(0.01)
            ticks += 1
        assert ticks == 5
        assert not received.is_set()
        await peer.send_all(b"(230.0 230.0 230.0 023 50.0 13.6 25.0 00001001\r")
        with trio.fail_after(5):
            await received.wait()
        assert bytes(answer).startswith(b"(230.0")


async def test_serial_open_fails_with_the_path(tmp_path):
    with pytest.raises(OSError, match="nonexistent"):
        await open_serial(str(tmp_path / "nonexistent"))


# -- blocking USB calls ----------------------------------------------------------------


@attrs.define
class FakeUsb:
    """A blocking "device": each call sleeps for real and records overlap."""

    busy: int = 0
    most: int = 0
    calls: list[str] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def transfer(self, name: str, seconds: float) -> str:
        with self.lock:
            self.busy += 1
            self.most = max(self.most, self.busy)
        time.sleep(seconds)
        with self.lock:
            self.busy -= 1
            self.calls.append(name)
        return f"done {name}"


async def test_usb_calls_of_one_device_run_one_at_a_time_and_never_block_trio():
    fake = FakeUsb()
    usb = BlockingDevice("usb 001/004")
    results = []
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await trio.sleep(0.005)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        async with trio.open_nursery() as calls:
            for i in range(4):
                calls.start_soon(_append, results, usb.call(fake.transfer, f"c{i}", 0.03))
        nursery.cancel_scope.cancel()
    assert fake.most == 1  # never two threads on the device
    assert sorted(results) == ["done c0", "done c1", "done c2", "done c3"]
    assert ticks >= 10  # Trio kept running during ~0.12 s of blocking calls


async def _append(out, awaitable):
    out.append(await awaitable)


async def test_two_devices_run_in_parallel():
    fake = FakeUsb()
    a, b = BlockingDevice("a"), BlockingDevice("b")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.call, fake.transfer, "a", 0.1)
        nursery.start_soon(b.call, fake.transfer, "b", 0.1)
    assert fake.most == 2


async def test_a_usb_call_once_begun_is_not_cancelled():
    fake = FakeUsb()
    usb = BlockingDevice("u")
    began = time.monotonic()
    with trio.move_on_after(0.01) as scope:
        result = await usb.call(fake.transfer, "slow", 0.2)
        assert result == "done slow"  # the result comes back; the cancel comes next
        await trio.lowlevel.checkpoint()
        pytest.fail("the cancellation was not delivered at the next checkpoint")
    assert scope.cancelled_caught
    assert fake.calls == ["slow"]  # ran to its end, not abandoned
    assert time.monotonic() - began >= 0.2
    # A call still waiting for its turn is cancelled at once.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(usb.call, fake.transfer, "holder", 0.2)
        await trio.sleep(0.05)
        with trio.move_on_after(0.01) as waiting:
            await usb.call(fake.transfer, "never", 0)
        assert waiting.cancelled_caught
    assert "never" not in fake.calls


# -- the polling loop -------------------------------------------------------------------


@attrs.define
class FakeCore:
    """A driver core: ``values`` is what the device last said."""

    values: dict[str, str] = attrs.Factory(dict)

    def variables(self):
        return [Variable(name, value) for name, value in self.values.items()]

    @property
    def commands(self):
        return ("beeper.toggle",)


class FakeDevice:
    def __init__(self, core: FakeCore):
        self.core = core
        self.answers = True
        self.load = 10
        self.polled: list[float] = []
        self.executed: list[tuple[str, float]] = []

    async def poll(self, planned: float) -> None:
        self.polled.append(planned)
        await trio.sleep(0.3)  # the exchange with the device takes time
        if not self.answers:
            raise DeviceSilent("no reply to Q1")
        self.core.values = {"ups.status": "OL", "ups.load": str(self.load)}

    async def execute(self, command: DriverCommand) -> CommandStatus:
        self.executed.append((command.name, trio.current_time()))
        await trio.sleep(3)  # a slow command runs past a planned poll
        self.load = 99
        self.core.values["ups.load"] = "99"
        return CommandStatus.SUCCESS


async def test_polling_loop(nursery, autojump_clock):
    core = FakeCore()
    device = FakeDevice(core)
    entry = UpsEntry("u")
    with entry.connect() as link:
        t0 = trio.current_time()
        await nursery.start(
            lambda task_status: run_polling_driver(
                core, link, device.poll, device.execute, every(2, t0 + 1),
                stale_after=2, task_status=task_status,
            )
        )  # fmt: skip
        snap = entry.snapshot()
        assert snap.dumped
        assert not snap.stale
        assert snap.value("ups.load") == "10"
        assert snap.commands == ("beeper.toggle",)
        # Nothing changes: nothing is published, but the driver is heard from.
        version = entry.versioned.get()[0]
        await trio.sleep(20)
        assert entry.versioned.get()[0] == version
        assert trio.current_time() - entry.last_heard <= 2
        # Commands are served between polls; a slow one delays one poll, not the plan.
        command = DriverCommand(CommandKind.INSTCMD, "beeper.toggle")
        assert entry.submit(command)
        assert await command.result.wait() is CommandStatus.SUCCESS
        assert entry.snapshot().value("ups.load") == "99"
        await trio.sleep(10)
        assert [p - t0 for p in device.polled] == [1 + 2 * k for k in range(len(device.polled))]
        # Silence: stale after two silent polls, fresh at the first answer.
        device.answers = False
        polls = len(device.polled)
        async for snap in entry.watch():
            if snap.stale:
                break
        assert len(device.polled) - polls == 2
        assert snap.value("ups.load") == "99"  # the last values stay, marked stale
        device.answers = True
        async for snap in entry.watch():
            if not snap.stale:
                break
        assert len(device.polled) - polls == 3


async def test_a_silent_first_poll_starts_the_driver_stale(nursery, autojump_clock):
    core = FakeCore()
    device = FakeDevice(core)
    device.answers = False
    entry = UpsEntry("u")
    with entry.connect() as link:
        await nursery.start(
            lambda task_status: run_polling_driver(
                core, link, device.poll, device.execute, every(2, trio.current_time()),
                stale_after=3, task_status=task_status,
            )
        )  # fmt: skip
        assert entry.snapshot().stale  # the daemon is not kept waiting on a silent device
