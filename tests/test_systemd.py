"""systemd notify: READY, RELOADING, STOPPING and WATCHDOG datagrams on a socket the test owns."""

from __future__ import annotations

import os
import signal
import socket
import time

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
