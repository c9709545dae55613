"""Shared test helpers: a scripted driver, simple users, a sans-IO request runner, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import pytest
import trio

from nuttrio.protocol import ServerConnection, Signal
from nuttrio.server import ServerCore, Session
from nuttrio.state import CommandKind, CommandStatus, DriverCommand, DriverLink, Variable

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
