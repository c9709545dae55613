"""Notifications as upsmon sends them: syslog, wall, and NOTIFYCMD or upssched.

General theory of operation
---------------------------
The manager's decision loop turns each :class:`~nuttrio.mgmt.machine.Notify` action into
:meth:`Notifier.send`, which is sync and never blocks. It formats the message from
NOTIFYMSG, looks up the type's NOTIFYFLAG and then:

* ``IGNORE`` (or no flag at all): does nothing;
* ``SYSLOG``: logs the message at once, to Python logging (logger ``nuttrio.notify``,
  level WARNING, so it shows with the CLI's default verbosity) and to the system log
  (facility daemon, priority notice, as upsmon);
* ``WALL``: queues a run of the wall command with the message on its standard input;
* ``EXEC``: hands the notification at once to the in-process upssched when
  there is one (NOTIFYCMD names upssched, or an upssched.conf was given), else queues a
  run of NOTIFYCMD.

:meth:`Notifier.run` (startable) works through the queue strictly in order, one command
at a time (a notification's WALL before its EXEC, as in upsmon's notify child), each
under ``command_timeout``; a command that fails, hangs (it is killed) or cannot start is
logged and counted, and the next one runs. upsmon 2.8.0 forks a child per notification,
so its NOTIFYCMD runs for one poll can overlap and arrive out of order; here they never
do. The queue is bounded: when it is full the oldest waiting item is dropped with an
error log, so :meth:`~Notifier.send` never waits. The shutdown itself is not done here,
so a full queue can delay or drop a message but never the shutdown.

The upssched hand-over is not queued: upssched only starts and cancels timers and queues
CMDSCRIPT runs in its own worker, so its timers count from the notification, not from
when the walls queued before it finished.

The wall command, NOTIFYCMD and the upssched's CMDSCRIPT run as the notifier's
``run_as`` user (upsmon.conf's ``RUN_AS_USER``, default ``nut`` when running as root; see
:func:`~nuttrio.mgmt.process.command_user`), as upsmon's unprivileged child runs them;
SHUTDOWNCMD is not run here and keeps the manager's own rights.

NOTIFYCMD contract (as upsmon's): environment = the manager's plus ``UPSNAME`` (the UPS
as written in MONITOR, ``""`` for a notification about no UPS such as SHUTDOWN) and
``NOTIFYTYPE``; arguments = NOTIFYCMD's words (shell-style split), then the words after
it in upsmon.conf, then the message as one last argument. There is no shell, as in NUT
2.8.6 (upsmon 2.8.0-2.8.5 build a shell command line, so quotes and ``$`` in a message
were interpreted).

A notify type missing from :data:`~nuttrio.nutconf.NOTIFY_TYPES` (so without NOTIFYMSG
and NOTIFYFLAG entries) gets the message ``UPS <system>: <type>`` and the flags SYSLOG.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Sequence
from typing import Literal

import attrs
import trio

from nuttrio.mgmt.process import (
    CommandResult,
    CommandRunner,
    RunAs,
    WorkQueue,
    command_words,
    runner_as,
)
from nuttrio.mgmt.upssched import Upssched
from nuttrio.nutconf import UpsmonConfig, UpsschedConfig

__all__ = [
    "TEST_COMMAND",
    "TEST_MESSAGE",
    "TEST_TYPE",
    "UNKNOWN_TYPE_FLAGS",
    "Notifier",
    "NotifierStatistics",
    "format_message",
]

log = logging.getLogger("nuttrio.notify")

#: The notify type of ``nuttrio notify-test``'s notification.
TEST_TYPE = "NOTIFYTEST"
#: The message of ``nuttrio notify-test``'s notification.
TEST_MESSAGE = "nuttrio notify-test: this is a test notification"
#: The word handed to upssched's CMDSCRIPT by ``nuttrio notify-test``.
TEST_COMMAND = "notify-test"
#: The flags of a notify type that upsmon.conf's table does not know.
UNKNOWN_TYPE_FLAGS: frozenset[str] = frozenset({"SYSLOG"})

_FORMAT = re.compile(r"%(.|$)", re.DOTALL)


def format_message(template: str, system: str | None, detail: str = "") -> str:
    """Format a NOTIFYMSG as upsmon does.

    The first ``%s`` becomes the UPS, the second the detail (ALARM's ``ups.alarm``, the
    unclassified status tokens of OTHER); ``%%`` becomes ``%``. Any other ``%``
    sequence is kept as written (upsmon.conf's reader refuses them).

    Args:
        template: The message with its ``%s``.
        system: The UPS as written in MONITOR, or ``None`` (read as ``""``).
        detail: The extra text for a second ``%s``.

    Returns:
        The message.
    """
    values = iter((system or "", detail))

    def substitute(match: re.Match[str]) -> str:
        spec = match.group(1)
        if spec == "%":
            return "%"
        if spec == "s":
            return next(values, "")
        return match.group(0)

    return _FORMAT.sub(substitute, template)


def _system_log(message: str) -> str | None:
    """Write to the system log; return why not, or ``None`` when done."""
    try:
        import syslog
    except ImportError:  # pragma: no cover - not on Unix
        return "no system log on this platform"
    try:
        syslog.syslog(syslog.LOG_DAEMON | syslog.LOG_NOTICE, message)
    except (OSError, ValueError) as exc:  # pragma: no cover - e.g. a NUL byte
        return str(exc)
    return None


@attrs.frozen
class NotifierStatistics:
    """Counters of a :class:`Notifier` (see :meth:`Notifier.statistics`).

    Attributes:
        queued: WALL and NOTIFYCMD runs waiting now.
        sent: WALL and NOTIFYCMD runs that exited with status 0, plus notifications
            handed to the in-process upssched.
        failed: Runs that failed, timed out or could not start.
        dropped: Runs dropped because the queue was full.
    """

    queued: int
    sent: int
    failed: int
    dropped: int


@attrs.define(eq=False)
class _Work:
    kind: Literal["wall", "exec"]
    message: str
    notify_type: str = ""
    system: str | None = None
    done: trio.Event | None = None
    result: CommandResult | None = None


class Notifier:
    """upsmon's notifications: SYSLOG at once; WALL and EXEC in order, off the caller's path.

    Args:
        config: upsmon.conf: NOTIFYCMD (and its extra words), NOTIFYMSG, NOTIFYFLAG.
        upssched: upssched.conf. When given, EXEC goes to an in-process
            :class:`~nuttrio.mgmt.upssched.Upssched` (see :attr:`upssched`) instead of
            NOTIFYCMD, whatever NOTIFYCMD says.
        command_timeout: Seconds each wall, NOTIFYCMD or CMDSCRIPT run may take before
            it is killed (with its process group).
        wall_command: The command that broadcasts a message read from its standard
            input; empty for no WALL at all.
        queue_size: Most WALL/EXEC runs waiting at once (the same bound applies to
            upssched's command queue); beyond it the oldest is dropped.
        use_syslog: Also write SYSLOG notifications to the system log (``syslog``
            module), not only to Python logging.
        runner: How commands are run (default
            :func:`~nuttrio.mgmt.process.run_command` as ``run_as``); for tests.
        run_as: The user the wall command, NOTIFYCMD and upssched's CMDSCRIPT run as
            (``RUN_AS_USER``, see :func:`~nuttrio.mgmt.process.command_user`); ``None``
            runs them as this process's user. Fixed for the notifier's lifetime, as
            upsmon switches user once at start.

    Raises:
        ValueError: If NOTIFYCMD names upssched but no ``upssched`` config is given (the
            notifications it should handle would be lost), or ``command_timeout`` is not
            positive, or ``queue_size`` is below 1.
    """

    def __init__(
        self,
        config: UpsmonConfig,
        *,
        upssched: UpsschedConfig | None = None,
        command_timeout: float = 30.0,
        wall_command: Sequence[str] = ("wall",),
        queue_size: int = 1000,
        use_syslog: bool = True,
        runner: CommandRunner | None = None,
        run_as: RunAs | None = None,
    ) -> None:
        if not command_timeout > 0:
            raise ValueError(f"command_timeout must be positive, not {command_timeout!r}")
        if upssched is None and config.uses_upssched:
            raise ValueError(
                f"NOTIFYCMD {config.notifycmd!r} is upssched, which nuttrio runs in-process: "
                "load upssched.conf and pass it as upssched="
            )
        self.config = config
        self.command_timeout = command_timeout
        self.wall_command: tuple[str, ...] = tuple(wall_command)
        self._queue_size = queue_size
        self._use_syslog = use_syslog
        self.run_as = run_as
        self._runner: CommandRunner = runner if runner is not None else runner_as(run_as)
        self._upssched = (
            Upssched(
                upssched,
                command_timeout=command_timeout,
                queue_size=queue_size,
                runner=runner,
                run_as=run_as,
            )
            if upssched is not None
            else None
        )
        self._notifycmd: list[str] = []
        if config.notifycmd is not None and self._upssched is None:
            self._notifycmd = [*command_words(config.notifycmd), *config.notifycmd_args]
        self._queue: WorkQueue[_Work] = WorkQueue(queue_size, self._drop)
        self._sent = 0
        self._failed = 0
        self._dropped = 0
        self._running = False

    def reconfigure(self, config: UpsmonConfig) -> None:
        """Take a re-read upsmon.conf: NOTIFYMSG, NOTIFYFLAG and NOTIFYCMD.

        RUN_AS_USER is not taken (upsmon switches user once, at start): a change is logged.

        Raises:
            ValueError: If NOTIFYCMD switches to or from upssched (restart for that); the
                running settings stay in force.
        """
        if config.uses_upssched != (self._upssched is not None):
            raise ValueError("NOTIFYCMD switched to or from upssched: restart to apply it")
        if config.run_as_user != self.config.run_as_user:
            log.warning(
                "RUN_AS_USER changed to %s: commands keep running as %s until restart",
                config.run_as_user,
                self.run_as.name if self.run_as is not None else "this process's user",
            )
        self.config = config
        self._notifycmd = []
        if config.notifycmd is not None and self._upssched is None:
            self._notifycmd = [*command_words(config.notifycmd), *config.notifycmd_args]

    @property
    def upssched(self) -> Upssched | None:
        """The in-process upssched that EXEC notifications go to, if any."""
        return self._upssched

    # -- what a notification is ------------------------------------------------------------

    def message_for(self, notify_type: str, system: str | None, detail: str = "") -> str:
        """Format the message of a notification (NOTIFYMSG or the stock message).

        Args:
            notify_type: The notify type (ONBATT, ...).
            system: The UPS as written in MONITOR, or ``None``.
            detail: The extra text for a second ``%s``.

        Returns:
            The message; ``UPS <system>: <type>`` for a type upsmon.conf does not know.
        """
        template = self.config.notifymsg.get(notify_type)
        if template is None:
            template = "UPS %s: " + notify_type.replace("%", "%%")
        return format_message(template, system, detail)

    def flags_for(self, notify_type: str) -> frozenset[str]:
        """The NOTIFYFLAG of a notify type; :data:`UNKNOWN_TYPE_FLAGS` for an unknown type."""
        return self.config.notifyflag.get(notify_type, UNKNOWN_TYPE_FLAGS)

    # -- the entry point from the manager --------------------------------------------------

    def send(self, type: str, system: str | None, detail: str = "") -> None:
        """Send one notification as its NOTIFYFLAG says; never blocks.

        SYSLOG is written before this returns, the upssched hand-over (EXEC with an
        upssched) is done before this returns, WALL and NOTIFYCMD are queued for
        :meth:`run`. Must be called from within Trio.

        Args:
            type: The notify type (ONBATT, ...; the machine's ``Notify.type``).
            system: The UPS as written in MONITOR, or ``None`` for a notification about
                no UPS (SHUTDOWN, SHUTDOWN_HOSTSYNC, ...).
            detail: The extra text for a second ``%s`` (ALARM, OTHER).
        """
        flags = self.flags_for(type)
        if not flags or "IGNORE" in flags:
            log.debug("notification %s for %s ignored (NOTIFYFLAG)", type, system)
            return
        message = self.message_for(type, system, detail)
        if "SYSLOG" in flags:
            self._syslog(message)
        if "WALL" in flags and self.wall_command:
            self._enqueue(_Work("wall", message, type, system))
        if "EXEC" in flags:
            if self._upssched is not None:
                try:
                    self._upssched.handle(type, system or "", message)
                except Exception:  # a bug: the other sinks still work
                    log.exception("upssched failed on %s for %s", type, system)
                    self._failed += 1
                else:
                    self._sent += 1
            elif self._notifycmd:
                self._enqueue(_Work("exec", message, type, system))
            else:
                log.debug("%s for %s: EXEC but no NOTIFYCMD", type, system)

    def _syslog(self, message: str) -> str | None:
        log.warning("%s", message)
        if not self._use_syslog:
            return "disabled"
        return _system_log(message)

    def _enqueue(self, work: _Work) -> None:
        self._queue.put(work)

    def _drop(self, old: _Work) -> None:
        self._dropped += 1
        log.error(
            "notification queue full (%d): dropped %s of %r",
            self._queue_size,
            "the wall" if old.kind == "wall" else "NOTIFYCMD",
            old.message,
        )
        if old.done is not None:
            old.done.set()

    async def wall(self, message: str) -> CommandResult | None:
        """Broadcast ``message`` with the wall command whatever the flags, in queue order.

        For upsmon's "Executing automatic power-fail shutdown". Waits until the wall has
        run, which needs :meth:`run` to be running and lasts at most ``command_timeout``
        per item queued before it: wrap the call in :func:`trio.move_on_after` if that
        is too long. Cancelling the wait leaves the wall queued.

        Args:
            message: The text (a newline is added).

        Returns:
            How the wall command ended, or ``None`` if there is no wall command or the
            wall was dropped from a full queue.
        """
        if not self.wall_command:
            log.warning("no wall command: not broadcast: %s", message)
            await trio.lowlevel.checkpoint()
            return None
        work = _Work("wall", message, done=trio.Event())
        self._enqueue(work)
        assert work.done is not None
        await work.done.wait()
        return work.result

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Work through the queue until cancelled (and run the upssched, if any).

        Startable: ``await nursery.start(notifier.run)`` returns once the worker (and
        the upssched's timers) are running. Items queued before the start are done
        first. A failing, hanging or missing command is logged and counted, and never
        stops the runner.

        Cancellation kills the command running at the time (its process group) and
        returns; items still queued stay queued until :meth:`run` is started again.

        Args:
            task_status: For :meth:`trio.Nursery.start`.

        Raises:
            RuntimeError: If this notifier is already running.
        """
        if self._running:
            raise RuntimeError("Notifier.run is already running")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                if self._upssched is not None:
                    await nursery.start(self._upssched.run)
                nursery.start_soon(self._worker)
                task_status.started()
        finally:
            self._running = False

    async def _worker(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                if work.kind == "wall":
                    result = await self._run_wall(work.message)
                else:
                    result = await self._run_notifycmd(work.notify_type, work.system, work.message)
            except Exception:  # a bug, not a failing command: keep serving
                log.exception("notification %s failed", work.kind)
                self._failed += 1
            else:
                work.result = result
                what = "wall" if work.kind == "wall" else "NOTIFYCMD"
                if result.ok:
                    self._sent += 1
                    log.debug("%s for %s %s: ok", what, work.notify_type, work.system)
                else:
                    self._failed += 1
                    log.error(
                        "%s for %s: %s (%s)",
                        what,
                        work.notify_type or repr(work.message),
                        result.describe(),
                        shlex.join(result.argv),
                    )
            if work.done is not None:
                work.done.set()
            self._queue.task_done()

    async def _run_wall(self, message: str) -> CommandResult:
        return await self._runner(
            self.wall_command,
            env=dict(os.environ),
            stdin=(message + "\n").encode("utf-8", "replace"),
            time_limit=self.command_timeout,
        )

    async def _run_notifycmd(
        self, notify_type: str, system: str | None, message: str
    ) -> CommandResult:
        env = dict(os.environ)
        env["UPSNAME"] = system or ""
        env["NOTIFYTYPE"] = notify_type
        return await self._runner(
            [*self._notifycmd, message], env=env, stdin=b"", time_limit=self.command_timeout
        )

    async def drain(self) -> None:
        """Wait until every WALL/NOTIFYCMD run queued so far has run or been dropped.

        Commands queued in the upssched are not waited for (see
        :meth:`Upssched.drain`). Needs :meth:`run` to be running. Cancelling the wait
        changes nothing in the queue.
        """
        await self._queue.join()

    async def test(self) -> list[str]:
        """Send a test notification through every configured sink, whatever the flags.

        For ``nuttrio notify-test``: type :data:`TEST_TYPE`, no UPS, message
        :data:`TEST_MESSAGE`. It goes to syslog, then the wall command, then NOTIFYCMD
        or, with an upssched, ``CMDSCRIPT`` :data:`TEST_COMMAND` (with ``NOTIFYTYPE``,
        ``UPSNAME`` and ``NOTIFYMSG`` set). The commands run directly, outside the queue
        (:meth:`run` need not be running), one after the other, each under
        ``command_timeout``. Nothing is counted in :meth:`statistics`.

        Returns:
            One line per sink, ``"<sink>: <what happened>"``: ``ok``, ``exit status N``,
            ``timed out after N s, killed``, ``could not run: ...`` or ``not
            configured``.

        Raises:
            trio.Cancelled: If cancelled; a running command is killed first.
        """
        message = TEST_MESSAGE
        lines: list[str] = []
        problem = self._syslog(message)
        if problem is None:
            lines.append("syslog: ok")
        else:
            lines.append(f"syslog: ok (Python logging only; system log: {problem})")
        if self.wall_command:
            result = await self._run_wall(message)
            lines.append(f"wall ({shlex.join(self.wall_command)}): {result.describe()}")
        else:
            lines.append("wall: not configured")
        if self._upssched is not None:
            sched = await self._upssched.run_cmdscript(TEST_COMMAND, TEST_TYPE, "", message)
            if sched is None:
                lines.append("upssched CMDSCRIPT: not configured")
            else:
                script = shlex.join(sched.argv[:-1])
                lines.append(f"upssched CMDSCRIPT ({script}): {sched.describe()}")
        elif self._notifycmd:
            result = await self._run_notifycmd(TEST_TYPE, None, message)
            lines.append(f"NOTIFYCMD ({shlex.join(self._notifycmd)}): {result.describe()}")
        else:
            lines.append("NOTIFYCMD: not configured")
        return lines

    def statistics(self) -> NotifierStatistics:
        """Return the current counters (a frozen record)."""
        return NotifierStatistics(
            queued=len(self._queue),
            sent=self._sent,
            failed=self._failed,
            dropped=self._dropped,
        )
