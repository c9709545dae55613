"""The bridge to NUT's drivers (nuttrio.hw.nutdriver) against a scripted driver socket.

The scripted driver is a Unix socket server speaking the driver side of the protocol (the
dump recorded from dummy-ups 2.8.0 in tests/fixtures/driver_socket); the tests with the
real dummy-ups binary are in tests/test_nutdriver_real.py.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from nuttrio.client import NutClient, NutError, open_nut_client
from nuttrio.daemon import DaemonOptions, open_daemon
from nuttrio.hw import DriverContext, create_driver
from nuttrio.hw.nutdriver import DriverGone, NutDriverBridge, NutDriverSettings, nut_driver_factory
from nuttrio.nutconf import ConfigError, UpsSection
from nuttrio.state import CommandKind, CommandStatus, DriverCommand, StateStore

RECORDING = Path(__file__).parent / "fixtures" / "driver_socket" / "dummy-ups-2.8.0.jsonl"
DUMP = json.loads(RECORDING.read_text().splitlines()[0])["receive"].encode("latin-1")


@attrs.define
class ScriptedNutDriver:
    """The driver side of a driver socket: dumps, answers PING, SET and INSTCMD.

    SET answers ``SETINFO`` and ``TRACKING id 0``; INSTCMD ``TRACKING id <instcmd_status>``.
    ``mute`` stops every answer; :meth:`push` sends a line to every connection.
    """

    path: Path
    dump: bytes = DUMP
    instcmd_status: int = 1
    mute: bool = False
    received: list[bytes] = attrs.Factory(list)
    connections: list[trio.SocketStream] = attrs.Factory(list)
    connected: trio.Event = attrs.Factory(trio.Event)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(os.fspath(self.path))
        sock.listen()
        listener = trio.SocketListener(sock)
        task_status.started()
        try:
            await trio.serve_listeners(self._handle, [listener])
        finally:
            self.path.unlink(missing_ok=True)

    async def push(self, line: bytes) -> None:
        for stream in list(self.connections):
            try:
                await stream.send_all(line)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.connections.remove(stream)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections.append(stream)
        self.connected.set()
        buffer = b""
        try:
            async for data in stream:
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self.received.append(line)
                    if not self.mute:
                        await stream.send_all(self._answer(shlex.split(line.decode())))
        except trio.BrokenResourceError:
            pass  # the bridge left while an answer was on its way: as a driver, go on

    def _answer(self, words: list[str]) -> bytes:
        if words == ["DUMPALL"]:
            return self.dump
        if words == ["PING"]:
            return b"PONG\n"
        if words == ["GETPID"]:
            return b"PID 4321\n"
        if words[0] == "SET" and words[-2] == "TRACKING":
            return f'SETINFO {words[1]} "{words[2]}"\nTRACKING {words[-1]} 0\n'.encode()
        if words[0] == "INSTCMD" and words[-2] == "TRACKING":
            return f"TRACKING {words[-1]} {self.instcmd_status}\n".encode()
        return b""


def settings(path: Path, **kw: object) -> NutDriverSettings:
    options: dict[str, object] = {"retry_interval": 0.05, "ping_interval": 0.2, **kw}
    return NutDriverSettings(ups="u", driver="dummy-ups", socket_path=path, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def bridged(
    nursery: trio.Nursery, bridge: NutDriverBridge, maxage: float = 15.0
) -> AsyncIterator[tuple[StateStore, object]]:
    store = StateStore(maxage=maxage)
    nursery.start_soon(store.run)
    entry = store.add("u")
    with entry.connect() as link:
        await nursery.start(bridge.run, link)
        yield store, entry


async def test_an_external_driver_is_followed_across_restarts(tmp_path):
    path = tmp_path / "dummy-ups-u"
    bridge = NutDriverBridge(settings(path))
    async with trio.open_nursery() as nursery, bridged(nursery, bridge) as (_store, entry):
        snap = entry.snapshot()
        assert not snap.connected  # no socket yet: DRIVER-NOT-CONNECTED
        fake = ScriptedNutDriver(path)
        async with trio.open_nursery() as driver_nursery:
            driver_nursery.start_soon(fake.serve)
            await _wait(lambda: entry.snapshot().dumped)
            snap = entry.snapshot()
            assert snap.connected
            assert not snap.data_stale
            assert snap.value("battery.charge") == "93"
            assert snap.commands == ("load.off",)
            assert fake.received[0] == b"DUMPALL"
            driver_nursery.cancel_scope.cancel()  # the driver goes away
        await _wait(lambda: not entry.snapshot().connected)
        fake2 = ScriptedNutDriver(path, dump=DUMP.replace(b'"93"', b'"12"'))
        nursery.start_soon(fake2.serve)
        await _wait(lambda: entry.snapshot().value("battery.charge") == "12")
        assert entry.snapshot().connected
        nursery.cancel_scope.cancel()


async def _wait(predicate: Callable[[], object], limit: float = 5.0) -> None:
    """Poll state that changes on socket traffic (real time: the peers are real sockets)."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_commands_carry_the_bridge_s_own_tracking_ids(tmp_path):
    path = tmp_path / "dummy-ups-u"
    fake = ScriptedNutDriver(path, instcmd_status=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        bridge = NutDriverBridge(settings(path))
        async with bridged(nursery, bridge) as (_store, entry):
            set_cmd = DriverCommand(CommandKind.SET, "ups.mfr", "a b", tracking="client-id")
            assert entry.submit(set_cmd)
            assert await set_cmd.result.wait() is CommandStatus.SUCCESS
            await _wait(lambda: entry.snapshot().value("ups.mfr") == "a b")
            inst = DriverCommand(CommandKind.INSTCMD, "load.off", "5")
            assert entry.submit(inst)
            assert await inst.result.wait() is CommandStatus.INVALID_ARGUMENT
            sent = [line for line in fake.received if line.startswith((b"SET", b"INSTCMD"))]
            assert sent == [
                b'SET ups.mfr "a b" TRACKING nuttrio-1',
                b"INSTCMD load.off 5 TRACKING nuttrio-2",
            ]
            refused = DriverCommand(CommandKind.SET, "ups.mfr", "caf\xe9")
            assert entry.submit(refused)
            assert await refused.result.wait() is CommandStatus.INVALID_ARGUMENT
            fake.mute = True
            lost = DriverCommand(CommandKind.INSTCMD, "load.off")
            assert entry.submit(lost)
            await _wait(lambda: fake.received[-1].startswith(b"INSTCMD"))
            nursery.cancel_scope.cancel()
    assert lost.result.status is CommandStatus.FAILED  # never answered: FAILED at the end


async def test_datastale_and_a_silent_driver_read_stale_then_fresh_again(tmp_path):
    path = tmp_path / "dummy-ups-u"
    fake = ScriptedNutDriver(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        bridge = NutDriverBridge(settings(path, ping_interval=0.1))
        async with bridged(nursery, bridge, maxage=0.5) as (_store, entry):
            assert not entry.snapshot().data_stale
            await fake.push(b"DATASTALE\n")
            await _wait(lambda: entry.snapshot().stale)
            await fake.push(b"DATAOK\n")
            await _wait(lambda: not entry.snapshot().stale)
            await trio.sleep(0.7)  # PINGs keep a quiet driver fresh
            assert not entry.snapshot().silent
            assert b"PING" in fake.received
            fake.mute = True  # the driver stops answering: silent past MAXAGE
            await _wait(lambda: entry.snapshot().silent)
            assert entry.snapshot().data_stale
            fake.mute = False
            await _wait(lambda: not entry.snapshot().silent)
            nursery.cancel_scope.cancel()


async def test_a_silence_limit_drops_a_mute_driver_and_connects_again(tmp_path):
    """``silence_limit`` (clone.c's 15 s): a socket that stays open but says nothing, PINGs
    unanswered, is dropped and connected again; without a limit it is kept, as upsd does."""
    path = tmp_path / "dummy-ups-u"
    fake = ScriptedNutDriver(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        bridge = NutDriverBridge(settings(path, ping_interval=0.1, silence_limit=0.4))
        async with bridged(nursery, bridge) as (_store, entry):
            fake.mute = True
            # Dropped, then connected again: the new connection's DUMPALL has come.
            await _wait(lambda: fake.received.count(b"DUMPALL") == 2)
            assert len(fake.connections) == 2
            assert fake.received.count(b"PING") >= 2  # prodded before it was given up
            fake.mute = False
            await fake.push(fake.dump)  # the answer to the new connection's DUMPALL
            await _wait(lambda: entry.snapshot().dumped)
            assert entry.snapshot().connected
        kept = ScriptedNutDriver(tmp_path / "dummy-ups-v", mute=False)
        await nursery.start(kept.serve)
        upsd_like = NutDriverBridge(
            NutDriverSettings(ups="v", driver="dummy-ups", socket_path=kept.path, ping_interval=0.1)
        )
        store = StateStore()
        with store.add("v").connect() as link:
            await nursery.start(upsd_like.run, link)
            kept.mute = True
            await trio.sleep(0.6)  # real sockets: no mock clock; past the other's limit
            assert len(kept.connections) == 1
        nursery.cancel_scope.cancel()


async def test_a_live_socket_is_used_instead_of_starting_a_driver(tmp_path):
    path = tmp_path / "dummy-ups-u"
    fake = ScriptedNutDriver(path)
    binary = tmp_path / "never-run"
    binary.write_text("#!/bin/sh\ntouch " + str(tmp_path / "ran") + "\n")
    binary.chmod(0o755)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        bridge = NutDriverBridge(settings(path, binary=binary))
        async with bridged(nursery, bridge) as (_store, entry):
            assert entry.snapshot().value("battery.charge") == "93"
            assert bridge.pid is None
            nursery.cancel_scope.cancel()
    assert not (tmp_path / "ran").exists()


async def test_a_started_driver_that_exits_ends_the_run(tmp_path):
    binary = tmp_path / "fake-driver"
    binary.write_text('#!/bin/sh\necho "driver args: $*"\nexit 3\n')
    binary.chmod(0o755)
    bridge = NutDriverBridge(settings(tmp_path / "fake-driver-u", binary=binary, user="nut"))
    store = StateStore()
    entry = store.add("u")
    expected = r"exited with status 3 \(its last output: driver args: -a u -F -u nut\)$"
    with entry.connect() as link, pytest.raises(DriverGone, match=expected):
        await bridge.run(link)
    assert not entry.snapshot().connected


def _section(driver: str, name: str = "u", **options: str) -> UpsSection:
    return UpsSection(
        name=name,
        driver=driver,
        port="auto",
        options={"driver": driver, "port": "auto", **options},
        path=Path("/etc/nut/ups.conf"),
        lineno=4,
    )


def test_the_factory_finds_the_binary_socket_and_settings(tmp_path):
    (tmp_path / "snmp-ups").write_text("#!/bin/sh\n")
    (tmp_path / "snmp-ups").chmod(0o755)
    context = DriverContext(
        tmp_path,
        statepath=tmp_path / "state",
        ups_globals={"driverpath": str(tmp_path), "user": "nut", "maxstartdelay": "20"},
        maxage=9,
    )
    bridge = create_driver(_section("snmp-ups"), context)
    assert isinstance(bridge, NutDriverBridge)
    s = bridge.settings
    assert s.socket_path == tmp_path / "state" / "snmp-ups-u"
    assert s.argv() == [str(tmp_path / "snmp-ups"), "-a", "u", "-F", "-u", "nut"]
    assert s.start_timeout == 20
    assert s.ping_interval == 3
    env = s.environment()
    assert env["NUT_CONFPATH"] == str(tmp_path)
    assert env["NUT_STATEPATH"] == str(tmp_path / "state")
    with pytest.raises(ConfigError, match=r"ups.conf:4: .*'no-such-drv' is neither"):
        create_driver(_section("no-such-drv"), context)
    external = create_driver(_section("no-such-drv"), attrs.evolve(context, external_drivers=True))
    assert isinstance(external, NutDriverBridge)
    assert external.settings.external
    with pytest.raises(ConfigError, match="maxstartdelay"):
        nut_driver_factory(_section("snmp-ups", maxstartdelay="soon"), context)
    with pytest.raises(ConfigError, match="longer than a Unix socket"):
        create_driver(_section("snmp-ups"), attrs.evolve(context, statepath=tmp_path / ("x" * 120)))


def test_nut_driver_takes_over_a_native_driver_by_name_or_all(tmp_path):
    context = DriverContext(
        tmp_path, statepath=tmp_path, ups_globals={"driverpath": "/nonexistent"}
    )
    dummy = _section("dummy-ups", port_="x")
    assert not context.uses_nut_binary(dummy)
    assert attrs.evolve(context, nut_drivers=frozenset({"u"})).uses_nut_binary(dummy)
    assert not attrs.evolve(context, nut_drivers=frozenset({"v"})).uses_nut_binary(dummy)
    assert attrs.evolve(context, nut_drivers=frozenset({"*"})).uses_nut_binary(dummy)
    assert DaemonOptions(nut_drivers=["ALL", "Ups1"]).nut_drivers == {"*", "ups1"}


def _write_conf(confdir: Path, statepath: Path, names: list[str]) -> None:
    confdir.mkdir(exist_ok=True)
    sections = "".join(f"[{n}]\n\tdriver = fake-drv\n\tport = auto\n" for n in names)
    (confdir / "ups.conf").write_text(sections)
    (confdir / "upsd.conf").write_text(f"STATEPATH {statepath}\n")
    (confdir / "upsd.users").write_text("[admin]\n\tpassword = pw\n\tinstcmds = ALL\n")
    for path in confdir.iterdir():
        path.chmod(0o600)


async def test_external_drivers_as_upsd_driver_not_connected_until_the_socket_appears(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    _write_conf(tmp_path / "conf", state, ["u", "v"])
    options = DaemonOptions(
        confdir=tmp_path / "conf", listen=[("127.0.0.1", 0)], external_drivers=True
    )
    async with open_daemon(options) as daemon, trio.open_nursery() as nursery:
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            with pytest.raises(NutError) as err:
                await nut.get_var("u", "ups.status")
            assert err.value.code == "DRIVER-NOT-CONNECTED"
            fake = ScriptedNutDriver(state / "fake-drv-u")
            await nursery.start(fake.serve)
            status = await _served(nut, "u", "ups.status")
            assert status == "OL CHRG"
            with pytest.raises(NutError) as err:
                await nut.get_var("v", "ups.status")
            assert err.value.code == "DRIVER-NOT-CONNECTED"
            nursery.cancel_scope.cancel()


async def _served(nut: NutClient, ups: str, var: str, limit: float = 10.0) -> str:
    """GET VAR once the UPS is served (DRIVER-NOT-CONNECTED or DATA-STALE until then)."""
    codes = []
    with trio.fail_after(limit):
        while True:
            try:
                return await nut.get_var(ups, var)
            except NutError as exc:
                codes.append(exc.code)
            assert set(codes) <= {"DRIVER-NOT-CONNECTED", "DATA-STALE"}
            await trio.sleep(0.05)


async def test_nut_driver_names_are_checked(tmp_path):
    _write_conf(tmp_path / "conf", tmp_path, ["u"])
    bad = DaemonOptions(confdir=tmp_path / "conf", listen=[("127.0.0.1", 0)], nut_drivers=["x"])
    with pytest.raises(ConfigError, match=r"--nut-driver x: no such UPS in ups.conf"):
        async with open_daemon(bad):
            pass
    with pytest.raises(ConfigError, match="need a NUT configuration directory"):
        async with open_daemon(DaemonOptions(external_drivers=True)):
            pass


@pytest.mark.parametrize(("version", "pid"), [(b"2.8.0", None), (b"2.8.3.1-g2", 4321)])
async def test_getpid_and_logout_only_for_a_driver_that_has_them(tmp_path, version, pid):
    path = tmp_path / "dummy-ups-u"
    dump = DUMP.replace(b'version "2.8.0"', b'version "' + version + b'"')
    fake = ScriptedNutDriver(path, dump=dump)
    async with trio.open_nursery() as outer:
        await outer.start(fake.serve)
        bridge = NutDriverBridge(settings(path))
        async with trio.open_nursery() as nursery, bridged(nursery, bridge) as (_store, entry):
            assert entry.snapshot().value("driver.version") == version.decode()
            await _wait(lambda: bridge.pid == pid)
            await _wait(lambda: b"PING" in fake.received)  # sent after a GETPID would be
            assert (b"GETPID" in fake.received) is (pid is not None)
            nursery.cancel_scope.cancel()  # the bridge leaves; the driver stays
        assert bridge.pid is None
        await trio.sleep(0.3)  # what the bridge said last reaches the driver
        assert (fake.received[-1] == b"LOGOUT") is (pid is not None)
        outer.cancel_scope.cancel()


FAKE_BINARY = """\
#!{python}
# A stand-in for a NUT driver binary: records its command line and environment, then
# serves the recorded dump on STATEPATH/dummy-ups-u as a driver would.
import json, os, socket, sys, time
state = os.environ["NUT_STATEPATH"]
with open(os.path.join(state, "started.json"), "w") as f:
    json.dump({{"argv": sys.argv[1:], "confpath": os.environ["NUT_CONFPATH"]}}, f)
if "--no-socket" in open(os.path.join(state, "mode")).read():
    time.sleep(60)  # a driver that never opens its socket
server = socket.socket(socket.AF_UNIX)
server.bind(os.path.join(state, "dummy-ups-u"))
server.listen()
conn, _ = server.accept()
dump = {dump!r}
buf = b""
while data := conn.recv(4096):
    buf += data
    while b"\\n" in buf:
        line, buf = buf.split(b"\\n", 1)
        if line == b"DUMPALL":
            conn.sendall(dump)
        elif line == b"PING":
            conn.sendall(b"PONG\\n")
"""


def _fake_binary(tmp_path: Path, mode: str = "") -> Path:
    import sys

    binary = tmp_path / "dummy-ups"
    binary.write_text(FAKE_BINARY.format(python=sys.executable, dump=DUMP))
    binary.chmod(0o755)
    (tmp_path / "mode").write_text(mode)
    return binary


async def test_a_started_driver_is_served_past_its_start_timeout(tmp_path):
    binary = _fake_binary(tmp_path)
    (tmp_path / "conf").mkdir()
    bridge = NutDriverBridge(
        settings(
            tmp_path / "dummy-ups-u", binary=binary, confdir=tmp_path / "conf", start_timeout=3
        )
    )
    async with trio.open_nursery() as nursery, bridged(nursery, bridge) as (_store, entry):
        started = json.loads((tmp_path / "started.json").read_text())
        assert started == {"argv": ["-a", "u", "-F"], "confpath": str(tmp_path / "conf")}
        assert entry.snapshot().value("battery.charge") == "93"
        pid = bridge.pid
        assert pid is not None
        await trio.sleep(3.5)  # longer than start_timeout: still served
        assert entry.snapshot().connected
        assert not entry.snapshot().data_stale
        nursery.cancel_scope.cancel()
    assert bridge.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped when the bridge was cancelled


async def test_a_started_driver_without_a_socket_times_out(tmp_path):
    binary = _fake_binary(tmp_path, "--no-socket")
    bridge = NutDriverBridge(settings(tmp_path / "dummy-ups-u", binary=binary, start_timeout=0.5))
    entry = StateStore().add("u")
    with entry.connect() as link, pytest.raises(DriverGone, match=r"did not open .* within 0.5 s"):
        await bridge.run(link)


async def test_a_driver_that_never_dumps_does_not_hold_up_the_start(tmp_path, caplog):
    path = tmp_path / "dummy-ups-u"
    fake = ScriptedNutDriver(path, dump=b'SETINFO ups.status "OL"\n')  # no DUMPDONE
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        bridge = NutDriverBridge(settings(path, binary=tmp_path / "unused", start_timeout=0.3))
        with trio.fail_after(2):
            async with bridged(nursery, bridge) as (_store, entry):
                snap = entry.snapshot()
                assert snap.connected
                assert snap.data_stale  # nothing complete to serve yet
                assert "no complete dump from the driver after 0.3 s" in caplog.text
                await fake.push(b"DUMPDONE\n")
                await _wait(lambda: not entry.snapshot().data_stale)
                assert entry.snapshot().value("ups.status") == "OL"
                nursery.cancel_scope.cancel()


async def test_a_line_too_long_drops_the_connection_and_it_is_made_again(tmp_path):
    path = tmp_path / "dummy-ups-u"
    fake = ScriptedNutDriver(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        bridge = NutDriverBridge(settings(path))
        async with bridged(nursery, bridge) as (_store, entry):
            await fake.push(b'SETINFO ups.mfr "' + b"x" * 5000 + b'"\n')
            await _wait(lambda: fake.received.count(b"DUMPALL") == 2)  # reconnected
            await _wait(lambda: entry.snapshot().dumped)
            assert entry.snapshot().value("ups.mfr") == 'Quote " and # hash'
            nursery.cancel_scope.cancel()
