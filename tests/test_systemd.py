"""systemd notify: READY, RELOADING, STOPPING and WATCHDOG datagrams on a socket the test owns."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import trio

from nuttrio.systemd import SystemdNotifier

from .nuttrio_proc import NuttrioProcess


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield str(path), sock
    sock.close()


def receive_until(sock: socket.socket, wanted: str, seen: list[str]) -> str:
    """Read datagrams (into ``seen``) until one has the line ``wanted``; return it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message.split("\n"):
            return message
    raise AssertionError(f"no {wanted} in {seen}")


def test_daemon_says_ready_reloading_stopping_and_pings_the_watchdog(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    seen: list[str] = []
    with NuttrioProcess(["--listen", "127.0.0.1:0"], env=env) as proc:
        ready = receive_until(sock, "READY=1", seen)
        assert "STATUS=serving sim on 127.0.0.1:" in ready
        # WATCHDOG_USEC 0.2 s: a ping every 0.1 s.
        began = time.monotonic()
        for _ in range(3):
            receive_until(sock, "WATCHDOG=1", seen)
        assert time.monotonic() - began < 2
        proc.send_signal(signal.SIGHUP)
        reloading = receive_until(sock, "RELOADING=1", seen)
        assert "MONOTONIC_USEC=" in reloading
        receive_until(sock, "READY=1", seen)
        assert proc.stop() == 0
        receive_until(sock, "STOPPING=1", seen)


def test_watchdog_for_another_process_is_not_ours(notify_socket):
    path, _ = notify_socket
    other = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    assert other.watchdog_usec is None
    ours = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert ours.watchdog_usec == 1000


async def test_without_systemd_nothing_is_sent_and_a_dead_socket_is_no_error(tmp_path, caplog):
    assert await SystemdNotifier.from_environment({}).notify("READY=1") is False
    gone = SystemdNotifier(str(tmp_path / "nobody-listens"))
    assert await gone.notify("READY=1") is False
    assert await gone.notify("READY=1") is False
    warnings = [r for r in caplog.records if "systemd notify socket" in r.getMessage()]
    assert len(warnings) == 1


async def test_abstract_socket_names(notify_socket):
    name = f"@nuttrio-test-{os.getpid()}"
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        await sock.bind(b"\0" + name[1:].encode())
        assert await SystemdNotifier(name).notify("READY=1", "STATUS=x") is True
        assert await sock.recv(100) == b"READY=1\nSTATUS=x"


async def test_a_stuck_event_loop_sends_no_watchdog_ping(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier(path, watchdog_usec=100_000)  # a ping every 0.05 s
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run_watchdog)
        await trio.to_thread.run_sync(sock.recv, 4096)  # it pings
        await trio.sleep(0.06)  # the next ping is sent
        sock.setblocking(False)
        while True:  # drain what was sent so far
            try:
                sock.recv(4096)
            except BlockingIOError:
                break
        time.sleep(0.3)  # noqa: ASYNC251  (the loop stuck on purpose: six periods pass)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)  # ... and not one ping went out, so systemd would notice
        sock.setblocking(True)
        await trio.to_thread.run_sync(sock.recv, 4096)  # free again: pings resume
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "unit", sorted(p.name for p in (Path(__file__).parent.parent / "examples/systemd").iterdir())
)
def test_the_example_units_pass_systemd_analyze_verify(tmp_path, unit):
    analyze, nuttrio = shutil.which("systemd-analyze"), shutil.which("nuttrio")
    if analyze is None or nuttrio is None:
        pytest.skip(f"needs systemd-analyze and an installed nuttrio ({analyze}, {nuttrio})")
    text = (Path(__file__).parent.parent / "examples/systemd" / unit).read_text()
    # The units name /usr/bin/nuttrio (a distribution's path); here it is elsewhere.
    (tmp_path / unit).write_text(text.replace("/usr/bin/nuttrio", nuttrio))
    done = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
