"""Shared test helpers: a scripted driver, simple users, a sans-IO request runner, waiting."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from nuttrio.mgmt.process import CommandResult
from nuttrio.mgmt.upssched import NOTIFY_ENV
from nuttrio.nutconf import UpsSection
from nuttrio.protocol import ServerConnection, Signal
from nuttrio.server import ServerCore, Session
from nuttrio.state import (
    CommandKind,
    CommandStatus,
    DriverCommand,
    DriverLink,
    UpsEntry,
    UpsSnapshot,
    Variable,
)

#: ../shared next to the repository: data fetched from public repositories, read at test time.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@attrs.define
class ScriptedDriver:
    """A driver publishing fixed variables; it records commands and answers them."""

    variables: list[Variable]
    commands: list[str] = attrs.Factory(list)
    answer: CommandStatus = CommandStatus.SUCCESS
    stale: bool = False
    received: list[DriverCommand] = attrs.Factory(list)

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with link.update() as u:
            for var in self.variables:
                u.set(var.name, var.value)
                u.set_flags(var.name, rw=var.rw, string=var.string, number=var.number)
                u.set_aux(var.name, var.aux)
                u.set_enums(var.name, var.enums)
                u.set_ranges(var.name, var.ranges)
            for cmd in self.commands:
                u.add_command(cmd)
            u.stale = self.stale
            u.dumped = True
        task_status.started()
        async for command in link.commands:
            self.received.append(command)
            if command.kind is CommandKind.SET and command.value is not None:
                with link.update() as u:
                    u.set(command.name, command.value)
            command.result.resolve(self.answer)


@attrs.frozen
class SimpleUser:
    """An upsd.users entry for tests."""

    password: str
    actions: frozenset[str] = frozenset()
    instcmds: frozenset[str] = frozenset()

    def password_ok(self, password: str | None) -> bool:
        return password == self.password

    def allows(self, action: str, password: str | None) -> bool:
        return password == self.password and action.lower() in self.actions

    def allows_instcmd(self, command: str, password: str | None) -> bool:
        return password == self.password and (
            "all" in self.instcmds or command.lower() in self.instcmds
        )


class NoDescriptions:
    def var(self, name: str) -> str | None:
        return {"ups.status": "UPS status"}.get(name.lower())

    def cmd(self, name: str) -> str | None:
        return {"load.off": "Turn off the load immediately"}.get(name.lower())


def run_example(name: str, timeout: float = 60.0) -> str:
    """Run ``examples/NAME`` with this checkout's nuttrio; assert it exits 0; its stdout."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "NUT_CONFPATH"}
    result = subprocess.run(
        [sys.executable, str(root / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def exchange(core: ServerCore, session: Session, data: bytes) -> bytes:
    """Feed ``data`` to a session and return every reply, as the TCP server would."""
    conn = session.conn
    conn.receive_data(data)
    out = bytearray()
    while not isinstance(event := conn.next_event(), Signal):
        out += conn.send(core.handle(session, event))
    return bytes(out)


def new_session(address: str = "127.0.0.1") -> Session:
    return Session(ServerConnection(), address)


def lines(*items: str) -> bytes:
    return "".join(f"{item}\n" for item in items).encode()


def variables(pairs: Iterable[tuple[str, str]]) -> list[Variable]:
    return [Variable(name=n, value=v) for n, v in pairs]


def ipv6_loopback_missing() -> str | None:
    """Why ``::1`` cannot be bound here (a reason to print when skipping), or ``None``."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind ::1 here: {exc}"
    return None


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, *, every: float = 0.05
) -> None:
    """Wait, on the real clock, until ``predicate()`` is true; fail after ``timeout`` s.

    For state held by another process (a real upsd, upsmon or nuttrio), which has no
    event to wait on. In-process code waits on events or the mock clock instead.

    Args:
        predicate: Checked at once, then every ``every`` seconds.
        timeout: Seconds before the test fails.
        what: What is waited for, for the failure message.
        every: Seconds between checks.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@attrs.frozen
class Call:
    """One command run by :class:`FakeRunner`: when, what, the notify variables it saw."""

    start: float
    end: float
    argv: tuple[str, ...]
    env: dict[str, str | None]
    stdin: bytes
    time_limit: float


class FakeRunner:
    """Stands for run_command on the mock clock (the notifier's and upssched's ``runner``).

    Each command "runs" ``durations.get(argv[-1], 0)`` seconds, is cut off at its time
    limit (reported as timed out), and exits 1 if ``argv[-1]`` is in ``fail``, else 0.
    """

    def __init__(
        self, durations: Mapping[str, float] | None = None, fail: Collection[str] = ()
    ) -> None:
        self.durations = dict(durations or {})
        self.fail = set(fail)
        self.calls: list[Call] = []

    async def __call__(
        self, argv: Sequence[str], *, env: Mapping[str, str], stdin: bytes, time_limit: float
    ) -> CommandResult:
        start = trio.current_time()
        args = tuple(argv)
        code = 1 if args[-1] in self.fail else 0
        result = CommandResult(args, returncode=code, time_limit=time_limit)
        with trio.move_on_after(time_limit) as scope:
            await trio.sleep(self.durations.get(args[-1], 0))
        if scope.cancelled_caught:
            result = CommandResult(args, timed_out=True, time_limit=time_limit)
        seen = {k: env.get(k) for k in NOTIFY_ENV}
        self.calls.append(Call(start, trio.current_time(), args, seen, stdin, time_limit))
        return result

    def words(self) -> list[str]:
        """The last argument of every call (CMDSCRIPT's timer or command word)."""
        return [c.argv[-1] for c in self.calls]


def recorder(tmp_path: Path, name: str = "record.py", before: str = "") -> tuple[Path, Path]:
    """A script appending argv, the notify variables and stdin to a JSON-lines file.

    ``before`` is Python run first (to sleep or fail on some notify types). Returns the
    script and the file; :func:`records` reads what it wrote.
    """
    out = tmp_path / f"{name}.jsonl"
    script = tmp_path / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"{before}"
        "keys = ('UPSNAME', 'NOTIFYTYPE', 'NOTIFYMSG', 'INHERITED')\n"
        "rec = {'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in keys},\n"
        "       'stdin': sys.stdin.read()}\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps(rec) + '\\n')\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script, out


def records(out: Path) -> list[dict[str, Any]]:
    """What a :func:`recorder` script wrote, one record per run (none if it never ran)."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


# -- drivers in-process: a ups.conf section, a snapshot to wait for, a command to run -------


def ups_section(
    name: str, driver: str, port: str = "auto", *, lineno: int = 1, **options: str
) -> UpsSection:
    """A ups.conf section as the loader makes it (file /etc/nut/ups.conf, line ``lineno``)."""
    return UpsSection(
        name=name,
        driver=driver,
        port=port,
        options={"driver": driver, "port": port, **options},
        path=Path("/etc/nut/ups.conf"),
        lineno=lineno,
    )


async def until(predicate: object, limit: float = 15.0, every: float = 0.05) -> None:
    """Wait, on the real clock, until ``await predicate()`` is true; fail after ``limit`` s.

    For state behind real sockets or processes (a NUT driver, a server polled over TCP).
    """
    with trio.fail_after(limit):
        while not await predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(every)


async def snapshot_where(
    entry: UpsEntry, check: Callable[[UpsSnapshot], object], limit: float = 60.0
) -> UpsSnapshot:
    """The first snapshot of ``entry`` (the current one included) for which ``check`` holds.

    Waits on the store's watch, at most ``limit`` seconds of Trio time (the mock clock's
    in most tests).
    """
    with trio.fail_after(limit):
        async for snap in entry.watch():
            if check(snap):
                return snap
    raise AssertionError("unreachable: a watch never ends")


async def run_command(
    entry: UpsEntry, kind: CommandKind, name: str, value: str | None = None
) -> CommandStatus:
    """Submit a SET or INSTCMD to the UPS's driver and wait for its result."""
    command = DriverCommand(kind, name, value)
    assert entry.submit(command)
    return await command.result.wait()
