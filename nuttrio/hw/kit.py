"""The driver kit: the loop every polling driver repeats, written once.

General theory of operation
---------------------------
A polling driver is two parts:

* a sans-IO *core* (like :class:`nuttrio.hw.dummy.DummyCore`) that keeps the UPS's
  variables and instant commands and is told what the device said; the loop reads it
  through :class:`PolledState`;
* a small async *poll* function that talks to the device at a planned time and feeds the
  core, and an async *execute* function for SET VAR and INSTCMD.

:func:`run_polling_driver` does the rest, the same way for every driver: it sleeps until
each planned poll time (never measuring and re-planning, so a late wake-up does not shift
later polls: no drift), serves commands from the link's channel while it waits, publishes
only the difference from what the store already has (nothing when nothing changed), says
the driver is alive after each answered poll, and declares the data stale (DATASTALE) when
the device stays silent, fresh again when it answers.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Protocol

import trio

from ..state import CommandStatus, DriverCommand, DriverLink, Variable

__all__ = ["DeviceSilent", "PolledState", "every", "publish_difference", "run_polling_driver"]

log = logging.getLogger(__name__)


class DeviceSilent(Exception):
    """Raised by a poll function when the device did not answer (or answered nonsense).

    The loop counts these; after enough in a row the data is declared stale. Any other
    exception ends the driver run (the daemon restarts it).
    """


class PolledState(Protocol):
    """What the loop publishes from a driver's core."""

    def variables(self) -> Iterable[Variable]:
        """The variables as the driver has them now."""
        ...

    @property
    def commands(self) -> Sequence[str]:
        """The instant commands offered now."""
        ...


def every(interval: float, start: float) -> Iterator[float]:
    """Planned poll times ``start``, ``start + interval``, ... (computed, never measured)."""
    return (start + k * interval for k in itertools.count())


def publish_difference(link: DriverLink, core: PolledState, *, stale: bool = False) -> bool:
    """Publish ``core``'s state through ``link`` if it differs from the last published one.

    Variables that vanished are deleted, new or changed ones replaced whole (value and
    flags), commands withdrawn or added; the snapshot is then complete (``dumped``).

    Returns:
        Whether anything was published.
    """
    snap = link.snapshot()
    wanted = {var.name.lower(): var for var in core.variables()}
    commands = tuple(core.commands)
    if (
        snap.dumped
        and snap.stale == stale
        and dict(snap.variables) == wanted
        and snap.commands == commands
    ):
        return False
    with link.update() as update:
        for key, var in snap.variables.items():
            if key not in wanted:
                update.delete(var.name)
        for key, var in wanted.items():
            if snap.variables.get(key) != var:
                update.delete(var.name)
                update.set(var.name, var.value)
                update.set_flags(var.name, rw=var.rw, string=var.string, number=var.number)
                update.set_aux(var.name, var.aux)
                update.set_enums(var.name, var.enums)
                update.set_ranges(var.name, var.ranges)
        for command in snap.commands:
            if command not in commands:
                update.delete_command(command)
        for command in commands:
            update.add_command(command)
        update.stale = stale
        update.dumped = True
    return True


async def _serve_commands_until(
    when: float,
    link: DriverLink,
    core: PolledState,
    execute: Callable[[DriverCommand], Awaitable[CommandStatus]],
    stale: bool,
) -> None:
    """Serve commands from ``link`` until ``when``; a command begun is finished first."""
    while True:
        command: DriverCommand | None = None
        with trio.move_on_at(when):
            command = await link.commands.receive()
        if command is None:
            return
        status = await execute(command)
        publish_difference(link, core, stale=stale)
        command.result.resolve(status)


async def run_polling_driver(
    core: PolledState,
    link: DriverLink,
    poll: Callable[[float], Awaitable[None]],
    execute: Callable[[DriverCommand], Awaitable[CommandStatus]],
    schedule: Iterable[float],
    *,
    stale_after: int = 1,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Poll the device on ``schedule`` and serve ``link.commands`` until cancelled.

    Args:
        core: The driver's state, published after each poll and each command.
        link: The driver's handle on its UPS.
        poll: Talks to the device once; gets the *planned* time of the poll (Trio clock).
            Raises :class:`DeviceSilent` when the device did not answer.
        execute: Carries out one SET VAR or INSTCMD and returns its status.
        schedule: The planned poll times (absolute, Trio clock), e.g. :func:`every`. A
            poll whose time has passed (after a long command) runs at once, still with its
            planned time. Commands are served from the first poll on.
        stale_after: Silent polls in a row before the data is declared stale.
        task_status: Started after the first poll, answered or not, so that the daemon
            never waits on a silent device (its UPS reads DATA-STALE until it answers).

    Cancellation stops the loop at once, between or inside a poll or command (a command
    cut short stays unresolved; the store answers FAILED when the driver detaches).

    Raises:
        Exception: Whatever ``poll`` or ``execute`` raise other than :class:`DeviceSilent`.
    """
    silent = 0
    stale = False
    started = False
    for planned in schedule:
        if started:
            await _serve_commands_until(planned, link, core, execute, stale)
        else:
            await trio.sleep_until(planned)
        try:
            await poll(planned)
        except DeviceSilent as exc:
            silent += 1
            if silent >= stale_after or not started:  # nothing good to show yet: stale
                if not stale:
                    log.warning("UPS %s: the device does not answer: %s", link.name, exc)
                stale = True
        else:
            if stale:
                log.info("UPS %s: the device answers again", link.name)
            silent, stale = 0, False
            link.heartbeat()
        publish_difference(link, core, stale=stale)  # nothing if nothing changed
        if not started:
            started = True
            task_status.started()
