"""The manager's Trio runner: local UPSes through the store, remote ones over TCP, on MockClock."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from nuttrio.mgmt.runner import POWERDOWN_MAGIC, check_powerdown_flag, run_manager
from nuttrio.nutconf import load_upsmon_conf
from nuttrio.server import ServerCore, handle_stream, open_listeners, serve_nut
from nuttrio.state import LoginRecord, StateStore

from .helpers import NoDescriptions, SimpleUser

#: The listeners of the attachment daemon the local store belongs to.
OWN = [("127.0.0.1", 3493)]


@attrs.define
class FakeNotifier:
    sent: list[tuple[float, str, str | None]] = attrs.Factory(list)
    walls: list[str] = attrs.Factory(list)
    changed: trio.Event = attrs.Factory(trio.Event)

    def send(self, type, system, detail=""):
        self.sent.append((trio.current_time(), type, system))
        self.changed.set()
        self.changed = trio.Event()

    async def wait_type(self, notify_type):
        while notify_type not in self.types():
            await self.changed.wait()

    async def wall(self, message):
        self.walls.append(message)

    def types(self):
        return [t for _, t, _ in self.sent]


def write_upsmon(tmp_path: Path, monitors: str, extra: str = "", *, command: bool = True) -> Path:
    """Write upsmon.conf; ``command=False`` leaves SHUTDOWNCMD out.

    No subprocess is wanted on the autojump clock, where a real process outlives its time
    limits in virtual time.
    """
    conf = tmp_path / "upsmon.conf"
    shutdowncmd = f'SHUTDOWNCMD "echo done >> {tmp_path}/shutdown"\n' if command else ""
    conf.write_text(
        f"{monitors}\n{shutdowncmd}"
        f"POWERDOWNFLAG {tmp_path}/killpower\n"
        "POLLFREQ 5\nPOLLFREQALERT 5\nHOSTSYNC 15\nDEADTIME 15\nFINALDELAY 5\n" + extra
    )
    conf.chmod(0o600)
    return conf


class Ups:
    """A UPS in a local store whose status the test sets."""

    def __init__(self, store: StateStore, name: str):
        self.entry = store.add(name)
        self._ctx = self.entry.connect()
        self.link = self._ctx.__enter__()

    def set(self, status: str, **extra: str) -> None:
        with self.link.update() as u:
            u.set("ups.status", status)
            for k, v in extra.items():
                u.set(k.replace("_", "."), v)
            u.dumped = True


async def start_local_primary(tmp_path, nursery, status):
    """A primary manager of UPS ``u`` (now ``status``) in a local store; MAXAGE 15 s.

    Returns:
        ``(ups, notifier, manager, config)``.
    """
    store = StateStore()
    ups = Ups(store, "u")
    ups.set(status)
    config = load_upsmon_conf(
        write_upsmon(tmp_path, "MONITOR u@localhost 1 admin pw primary", command=False)
    )
    notifier = FakeNotifier()
    manager = await nursery.start(
        lambda task_status: run_manager(
            config, notifier, store=store, maxage=15, listeners=OWN, task_status=task_status
        )
    )
    return ups, notifier, manager, config


async def test_local_primary_acts_at_once_and_waits_for_secondaries(
    tmp_path, nursery, autojump_clock
):
    ups, notifier, manager, config = await start_local_primary(tmp_path, nursery, "OL")
    assert [r.address for r in ups.entry.logins] == ["127.0.0.1"]  # the primary counts itself
    ups.entry.add_login("secondary", LoginRecord("10.0.0.2"))
    await trio.testing.wait_all_tasks_blocked()
    t0 = trio.current_time()
    ups.set("OB")
    await trio.testing.wait_all_tasks_blocked()
    assert notifier.sent[-1] == (t0, "ONBATT", "u@localhost")  # no polling delay at all
    ups.set("OB LB")
    await trio.testing.wait_all_tasks_blocked()
    assert ups.entry.snapshot().fsd  # FSD set on the local UPS in the same instant
    assert "SHUTDOWN_HOSTSYNC" in notifier.types()
    await trio.sleep(3)
    assert "SHUTDOWN" not in notifier.types()  # the secondary is still logged in
    ups.entry.remove_login("secondary")
    await notifier.wait_type("SHUTDOWN")
    shutdown_at = next(t for t, ty, _ in notifier.sent if ty == "SHUTDOWN")
    assert shutdown_at - t0 == pytest.approx(3, abs=0.3)  # within one NUMLOGINS interval
    # No virtual-time limit: the real shutdown subprocess lets the autojump clock run ahead.
    await manager.done.wait()
    assert manager.shutdown_started - shutdown_at == pytest.approx(5)  # FINALDELAY
    # POWERDOWNFLAG is written before SHUTDOWNCMD (checked by the real-clock tests).
    assert (tmp_path / "killpower").read_text() == POWERDOWN_MAGIC
    assert check_powerdown_flag(config)
    assert notifier.walls == ["Executing automatic power-fail shutdown"]


async def test_primary_stops_waiting_after_hostsync(tmp_path, nursery, autojump_clock):
    ups, _, manager, _ = await start_local_primary(tmp_path, nursery, "OL")
    ups.entry.add_login("stuck secondary", LoginRecord("10.0.0.3"))
    t0 = trio.current_time()
    ups.set("OB LB")
    # No virtual-time limit: the real shutdown subprocess lets the autojump clock run ahead.
    await manager.done.wait()
    assert manager.shutdown_started - t0 == pytest.approx(15 + 5, abs=0.3)


async def test_stale_local_driver_counts_as_lost_communications(tmp_path, nursery, autojump_clock):
    _, notifier, manager, _ = await start_local_primary(tmp_path, nursery, "OB")
    t0 = trio.current_time()
    # The driver hangs: nothing more is published. Stale after MAXAGE, dead after DEADTIME.
    await notifier.wait_type("COMMBAD")
    # No virtual-time limit: the real shutdown subprocess lets the autojump clock run ahead.
    await manager.done.wait()
    # Stale after MAXAGE (15 s, noticed at the next 5 s re-read), dead DEADTIME (15 s)
    # after the last good reading, then FINALDELAY (5 s).
    assert 15 + 5 <= manager.shutdown_started - t0 <= 15 + 5 + 15 + 5


async def test_leftover_powerdown_flag_is_removed_at_start(tmp_path, nursery, autojump_clock):
    config = load_upsmon_conf(write_upsmon(tmp_path, "MONITOR u@localhost 1 admin pw primary"))
    (tmp_path / "killpower").write_text(POWERDOWN_MAGIC)
    store = StateStore()
    Ups(store, "u").set("OL")
    await nursery.start(
        lambda task_status: run_manager(
            config, FakeNotifier(), store=store, listeners=OWN, task_status=task_status
        )
    )
    assert not (tmp_path / "killpower").exists()
    assert not check_powerdown_flag(config)


@pytest.fixture
async def server(nursery):
    """nuttrio's own server on 127.0.0.1 for remote MONITOR lines."""
    return await _server_on(nursery)


class WatchedCore(ServerCore):
    """The server's request handling, waking waiters after each request or closed connection."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._changed = trio.Event()

    def _wake(self):
        self._changed.set()
        self._changed = trio.Event()

    def handle(self, session, request):
        try:
            return super().handle(session, request)
        finally:
            self._wake()

    def closed(self, session):
        super().closed(session)
        self._wake()

    async def wait_until(self, predicate):
        """Wait until ``predicate()`` holds, re-checking after each thing the server did."""
        while not predicate():
            await self._changed.wait()


@attrs.frozen
class Remote:
    ups: Ups
    port: int
    core: WatchedCore


async def _server_on(nursery) -> Remote:
    store = StateStore()
    ups = Ups(store, "r")
    ups.set("OL")
    users = {
        "mon": SimpleUser("pw", frozenset({"login"})),
        "admin": SimpleUser("pw", frozenset({"login", "master", "fsd"})),
    }
    core = WatchedCore(store, users, NoDescriptions())
    listeners = await open_listeners([("127.0.0.1", 0)])
    await nursery.start(serve_nut, core, listeners)
    return Remote(ups, listeners[0].socket.getsockname()[1], core)


async def start_remote_manager(tmp_path, nursery, server, monitor_tail):
    """A manager whose MONITOR is the ``server`` fixture's UPS; returns once it logged in."""
    ups, port = server.ups, server.port
    config = load_upsmon_conf(
        write_upsmon(
            tmp_path,
            f"MONITOR r@127.0.0.1:{port} 1 {monitor_tail}",
            "POLLFREQ 1\nPOLLFREQALERT 1\nFINALDELAY 0\n",
        )
    )
    notifier = FakeNotifier()
    manager = await nursery.start(
        lambda task_status: run_manager(config, notifier, task_status=task_status)
    )
    with trio.fail_after(5):
        await server.core.wait_until(lambda: len(ups.entry.logins) == 1)
    return manager, notifier


async def test_remote_secondary_shuts_down_on_fsd_and_logs_out(tmp_path, nursery, server):
    ups = server.ups
    manager, notifier = await start_remote_manager(tmp_path, nursery, server, "mon pw secondary")
    ups.entry.set_fsd()
    with trio.fail_after(5):
        await manager.done.wait()
    assert notifier.types()[-2:] == ["FSD", "SHUTDOWN"]
    with trio.fail_after(5):
        await server.core.wait_until(lambda: not ups.entry.logins)  # LOGOUT after the command
    assert (tmp_path / "shutdown").exists()


async def test_remote_primary_sets_fsd_over_the_protocol(tmp_path, nursery, server):
    ups = server.ups
    manager, notifier = await start_remote_manager(tmp_path, nursery, server, "admin pw primary")
    ups.set("OB LB")
    with trio.fail_after(10):
        await manager.done.wait()
    assert ups.entry.snapshot().fsd
    assert "SHUTDOWN_HOSTSYNC" in notifier.types()


async def test_unreachable_server_gives_commbad_and_no_shutdown(tmp_path, nursery, autojump_clock):
    config = load_upsmon_conf(write_upsmon(tmp_path, "MONITOR r@127.0.0.1:9 1 mon pw secondary"))
    notifier = FakeNotifier()
    manager = await nursery.start(
        lambda task_status: run_manager(config, notifier, task_status=task_status)
    )
    await trio.sleep(400)
    assert notifier.types()[:1] == ["COMMBAD"]
    assert "NOCOMM" in notifier.types()
    assert not manager.done.is_set()


def test_failure_logging_backs_off():
    from nuttrio.mgmt.runner import FAILURE_LOG_MAX_GAP, _log_failure

    logged = [n for n in range(300) if _log_failure(n)]
    assert FAILURE_LOG_MAX_GAP == 64
    assert logged == [1, 2, 4, 8, 16, 32, 64, 128, 192, 256]


async def test_unreachable_server_is_retried_at_every_poll(
    tmp_path, nursery, autojump_clock, caplog
):
    attempts: list[float] = []

    async def refuse(stream):
        attempts.append(trio.current_time())
        await stream.aclose()

    listeners = await open_listeners([("127.0.0.1", 0)])
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, refuse, listeners)
    config = load_upsmon_conf(write_upsmon(tmp_path, f"MONITOR r@127.0.0.1:{port} 1 m p secondary"))
    with caplog.at_level(logging.WARNING, logger="nuttrio.mgmt"):
        await nursery.start(
            lambda task_status: run_manager(config, FakeNotifier(), task_status=task_status)
        )
        start = trio.current_time()
        await trio.sleep(118)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(attempts)]
    assert attempts[0] == pytest.approx(start, abs=1e-6)
    assert gaps == [5.0] * 23  # POLLFREQALERT 5, never longer
    failures = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert [f.split("(")[1].split(" ")[0] for f in failures] == ["1", "2", "4", "8", "16"]


async def test_secondary_logs_in_at_its_next_poll_after_an_outage(
    tmp_path, nursery, autojump_clock
):
    """A 20 s outage: the secondary is logged in again within one POLLFREQ of the return."""
    store = StateStore()
    ups = Ups(store, "r")
    ups.set("OL")
    core = WatchedCore(store, {"mon": SimpleUser("pw", frozenset({"login"}))}, NoDescriptions())
    down = False
    sessions: list[trio.CancelScope] = []

    async def serve(stream):
        if down:
            await stream.aclose()
            return
        with trio.CancelScope() as scope:
            sessions.append(scope)
            await handle_stream(core, stream)

    listeners = await open_listeners([("127.0.0.1", 0)])
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, serve, listeners)
    config = load_upsmon_conf(
        write_upsmon(
            tmp_path,
            f"MONITOR r@127.0.0.1:{port} 1 mon pw secondary",
            "POLLFREQ 5\nPOLLFREQALERT 5\n",
            command=False,
        )
    )
    await nursery.start(
        lambda task_status: run_manager(config, FakeNotifier(), task_status=task_status)
    )
    await core.wait_until(lambda: len(ups.entry.logins) == 1)
    # The outage: every connection is dropped, the manager's too.
    down = True
    for scope in sessions:
        scope.cancel()
    await trio.sleep(20)
    assert not ups.entry.logins
    down = False
    back = trio.current_time()
    await core.wait_until(lambda: len(ups.entry.logins) == 1)
    assert trio.current_time() - back <= 5.0 + 0.05  # at the next poll, not after a back-off


async def test_a_hanging_notify_command_never_delays_the_shutdown(tmp_path, nursery):
    from nuttrio.mgmt.notify import Notifier

    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 1000\n")
    hang.chmod(0o755)
    store = StateStore()
    ups = Ups(store, "u")
    ups.set("OL")
    config = load_upsmon_conf(
        write_upsmon(
            tmp_path,
            "MONITOR u@localhost 1 admin pw primary",
            f"NOTIFYCMD {hang}\nNOTIFYFLAG ONBATT EXEC\nNOTIFYFLAG LOWBATT EXEC\n"
            "NOTIFYFLAG SHUTDOWN EXEC\nFINALDELAY 0\n",
        )
    )
    notifier = Notifier(config, wall_command=(), use_syslog=False)
    await nursery.start(notifier.run)
    manager = await nursery.start(
        lambda task_status: run_manager(
            config, notifier, store=store, listeners=OWN, task_status=task_status
        )
    )
    start = trio.current_time()
    ups.set("OB LB")
    with trio.fail_after(5):  # the notify command hangs for 1000 s (killed after 30 s)
        await manager.done.wait()
    assert trio.current_time() - start < 5
    assert (tmp_path / "shutdown").read_text() == "done\n"


async def test_reload_takes_new_timings_but_not_new_monitors(tmp_path, nursery, autojump_clock):
    store = StateStore()
    ups = Ups(store, "u")
    ups.set("OL")
    monitor = "MONITOR u@localhost 1 admin pw primary"
    config = load_upsmon_conf(write_upsmon(tmp_path, monitor, command=False))
    manager = await nursery.start(
        lambda task_status: run_manager(
            config, FakeNotifier(), store=store, listeners=OWN, task_status=task_status
        )
    )
    manager.reload(
        load_upsmon_conf(write_upsmon(tmp_path, monitor, "FINALDELAY 1\n", command=False))
    )
    with pytest.raises(ValueError, match="MONITOR"):
        manager.reload(
            load_upsmon_conf(write_upsmon(tmp_path, "MONITOR u@localhost 2 admin pw primary"))
        )
    assert manager.config.finaldelay == 1
    t0 = trio.current_time()
    ups.set("OB LB")
    await manager.done.wait()
    assert manager.shutdown_started - t0 == pytest.approx(1, abs=0.3)  # the new FINALDELAY


@pytest.mark.parametrize(
    ("host", "port", "listeners", "expected"),
    [
        ("localhost", 3493, [("127.0.0.1", 3493)], "127.0.0.1"),
        ("LocalHost", 3493, [("127.0.0.1", 3493)], "127.0.0.1"),
        ("127.0.0.1", 3493, [("127.0.0.1", 3493)], "127.0.0.1"),
        ("127.0.0.1", 3999, [("127.0.0.1", 3493)], None),  # another port: another upsd
        ("localhost", 3999, [("127.0.0.1", 3493), ("::1", 3493)], None),
        ("::1", 3493, [("::1", 3493)], "::1"),
        ("::1", 3493, [("127.0.0.1", 3493)], None),
        ("127.0.0.2", 3493, [("127.0.0.1", 3493)], None),  # not that listener's address
        ("127.0.0.2", 3493, [("0.0.0.0", 3493)], "127.0.0.2"),  # the wildcard covers it
        ("::1", 3493, [("::", 3493)], "::1"),
        ("127.0.0.1", 3493, [("::", 3493)], None),  # Trio's IPv6 listeners are IPv6-only
        ("192.0.2.1", 3493, [("0.0.0.0", 3493)], None),  # not an address of this machine
        ("ups.example.invalid", 3493, [("0.0.0.0", 3493)], None),  # names go over TCP
        ("127.0.0.1", 40000, [("127.0.0.1", 40000), ("127.0.0.1", 3493)], "127.0.0.1"),
    ],
)
def test_a_monitor_is_local_only_at_one_of_our_own_listeners(host, port, listeners, expected):
    from nuttrio.mgmt.runner import local_address

    assert local_address(host, port, listeners) == expected


async def test_a_monitor_on_another_port_is_polled_even_if_the_name_is_ours(tmp_path, nursery):
    """MONITOR u@127.0.0.1:<other> names another upsd, though a UPS u is attached here."""
    ours = StateStore()
    mine = Ups(ours, "r")
    mine.set("OB LB")  # would shut down at once if it were taken as the local UPS
    remote = await _server_on(nursery)
    theirs, port = remote.ups, remote.port
    config = load_upsmon_conf(
        write_upsmon(tmp_path, f"MONITOR r@127.0.0.1:{port} 1 mon pw secondary", command=False)
    )
    notifier = FakeNotifier()
    manager = await nursery.start(
        lambda task_status: run_manager(
            config, notifier, store=ours, listeners=OWN, task_status=task_status
        )
    )
    with trio.fail_after(5):
        await remote.core.wait_until(lambda: len(theirs.entry.logins) == 1)  # over TCP
    assert not mine.entry.logins
    assert not manager.done.is_set()
    assert "LOWBATT" not in notifier.types()
