"""upssched inside the manager: upssched.conf's AT rules on Trio timers.

General theory of operation
---------------------------
NUT's upssched is a NOTIFYCMD that upsmon runs once per EXEC notification; it reads
upssched.conf, acts on every matching ``AT`` line and talks to a timer daemon over a unix
socket. nuttrio does the same work in-process: :class:`Upssched` keeps the timers, the
:class:`~nuttrio.mgmt.notify.Notifier` calls :meth:`Upssched.handle` (sync, never blocks)
for every notification whose NOTIFYFLAG has EXEC, and :meth:`Upssched.run` (startable,
owns a nursery) runs two tasks:

* the *timer task* sleeps until the earliest deadline (or until :meth:`~Upssched.handle`
  changes the timers), then moves every expired timer to the command queue. It never
  polls: with no timer it sleeps until woken (upssched 2.8.0's daemon spun at 83 % CPU);
* the *command worker* runs ``CMDSCRIPT <word>`` for each queued command, one at a time
  and in order, each under ``command_timeout``. A slow CMDSCRIPT therefore delays the
  commands queued after it, but never a timer's expiry: timers keep expiring on time
  while a command runs, and their commands run as soon as the worker is free (each
  waits at most ``command_timeout`` per command ahead of it). One worker rather than a
  task per command keeps CMDSCRIPT runs serial, as upssched's daemon runs them, so a
  script never races with itself.

Semantics (what each ``AT`` action does for a notification of type *T* about UPS *U*,
in file order, for every rule :meth:`~nuttrio.nutconf.SchedRule.matches`):

``START-TIMER name secs``
    Starts a timer for *U* that expires ``secs`` seconds later. If a timer of that name
    started for *U* is already running it is kept as it is (deadline and environment):
    no second timer. upssched 2.8.0-2.8.5 add an independent duplicate, and 2.8.0's
    CANCEL-TIMER then removed only the first, so the duplicate still fired. Timers of
    the same name for different UPSes are separate (as in upssched), each with its own
    UPSNAME.
``START-TIMER-SHARED name secs``
    One timer for every UPS that asks: the first request starts it, later ones (from
    any UPS) join it without moving the deadline; each UPS that asked is remembered.
``CANCEL-TIMER name [cmd]``
    Cancels every timer of that name, shared or not, for any UPS. If none was running
    and ``cmd`` is given, runs ``CMDSCRIPT cmd`` now ("power came back after the timer
    already fired").
``CANCEL-TIMER-MATCHED name [cmd]``
    Shared timers of that name forget *U* and are cancelled once no UPS is left;
    non-shared timers of that name are cancelled only if started for *U*. If *U* had no
    part in any timer of that name and ``cmd`` is given, runs ``CMDSCRIPT cmd`` now.
    (upssched 2.8.5 documents this action but its client answers "Invalid command".)
``EXECUTE cmd``
    Runs ``CMDSCRIPT cmd`` now (queued behind commands already waiting).

When a timer expires, ``CMDSCRIPT <timername>`` runs.

Commands and environment
------------------------
CMDSCRIPT runs as the ``run_as`` user (RUN_AS_USER), through
:func:`~nuttrio.mgmt.process.run_command`, and without a shell, as NUT 2.8.6 runs it:
its words (shell-style split, or the whole text if it names an existing file) followed
by the timer name or command as *one* argument. upssched 2.8.0-2.8.5 use
``system("CMDSCRIPT cmd")``, so a command with spaces (``EXECUTE "replace battery"``)
reached the script as two words and shell characters were interpreted; here it is one
word, literally.

The environment is the manager's, with (as upssched 2.8.5 sets them when a timer fires):

* ``UPSNAME``: the UPSes whose notifications started the timer, comma-joined and
  without repeats, in the order they asked (one name for a non-shared timer);
* ``NOTIFYTYPE``: their notify types, likewise;
* ``NOTIFYMSG``: their messages, joined with a full stop and a tab (2.8.5's separator).

For EXECUTE and a CANCEL command they are those of the notification that triggered the
rule. All three are always set, possibly empty (upssched 2.8.5 leaves an empty value
unset, and runs CANCEL commands with none of them).

Timers count from the notification on the Trio clock (``trio.current_time()``) with the
exact number of seconds; upssched counts whole seconds of wall time, so it fires up to a
second early or late. Timers are not kept across restarts, as in upssched.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence

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
from nuttrio.nutconf import SchedAction, SchedRule, UpsschedConfig

__all__ = [
    "NOTIFY_ENV",
    "TimerInfo",
    "Upssched",
    "UpsschedStatistics",
]

log = logging.getLogger("nuttrio.upssched")

#: The variables upssched sets for CMDSCRIPT (any inherited value is replaced).
NOTIFY_ENV: tuple[str, ...] = ("UPSNAME", "NOTIFYTYPE", "NOTIFYMSG")

#: upssched 2.8.5 joins the messages of a shared timer with this (``collect_string``).
_MESSAGE_SEPARATOR = ".\t"


def _environment(values: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOTIFY_ENV}
    env.update(values)
    return env


# ---------------------------------------------------------------------------------------
# Timers


@attrs.frozen
class TimerInfo:
    """A running timer, as :meth:`Upssched.timers` lists it (``upssched -l``).

    Attributes:
        name: The timer name (the word handed to CMDSCRIPT when it expires).
        deadline: When it expires, on the Trio clock (``trio.current_time()``).
        remaining: Seconds until then (0 if overdue and about to run).
        shared: Started by START-TIMER-SHARED.
        upsnames: The UPSes that started or joined it (``UPSNAME`` when it fires).
        notifytypes: Their notify types (``NOTIFYTYPE``).
        messages: Their messages (``NOTIFYMSG``).
    """

    name: str
    deadline: float
    remaining: float
    shared: bool
    upsnames: tuple[str, ...]
    notifytypes: tuple[str, ...]
    messages: tuple[str, ...]


@attrs.frozen
class UpsschedStatistics:
    """Counters of an :class:`Upssched` (see :meth:`Upssched.statistics`).

    Attributes:
        timers: Timers running now.
        queued: Commands waiting for the worker now.
        succeeded: CMDSCRIPT runs that exited with status 0.
        failed: CMDSCRIPT runs that failed, timed out or could not start.
        dropped: Commands dropped because the queue was full.
    """

    timers: int
    queued: int
    succeeded: int
    failed: int
    dropped: int


@attrs.frozen
class _Request:
    """One notification that started or joined a timer."""

    ups: str
    notify_type: str
    message: str


@attrs.define(eq=False)
class _Timer:
    name: str
    deadline: float
    shared: bool
    seq: int
    requests: list[_Request]

    @property
    def owner(self) -> str:
        """The UPS a non-shared timer was started for."""
        return self.requests[0].ups

    def has(self, ups: str) -> bool:
        return any(r.ups == ups for r in self.requests)


@attrs.frozen
class _Command:
    """A CMDSCRIPT run waiting for the worker."""

    word: str
    env: Mapping[str, str]
    why: str


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _timer_env(requests: Sequence[_Request]) -> dict[str, str]:
    return {
        "UPSNAME": ",".join(_unique(r.ups for r in requests)),
        "NOTIFYTYPE": ",".join(_unique(r.notify_type for r in requests)),
        "NOTIFYMSG": _MESSAGE_SEPARATOR.join(_unique(r.message for r in requests)),
    }


class Upssched:
    """upssched's timers and commands, in-process on the Trio clock.

    :meth:`handle` may be called before :meth:`run` starts (from within Trio): timers
    count from the call and expire, and queued commands run, once :meth:`run` is going.

    Args:
        config: upssched.conf (:func:`~nuttrio.nutconf.load_upssched_conf`).
        command_timeout: Seconds each CMDSCRIPT run may take before it is killed.
        queue_size: Most commands waiting at once; beyond it the oldest waiting command
            is dropped, with an error log.
        runner: How commands are run (default
            :func:`~nuttrio.mgmt.process.run_command` as ``run_as``); for tests.
        run_as: The user CMDSCRIPT runs as (see
            :func:`~nuttrio.mgmt.process.command_user`); ``None`` for this process's.

    Raises:
        ValueError: If ``command_timeout`` is not positive or ``queue_size`` is below 1.
    """

    def __init__(
        self,
        config: UpsschedConfig,
        *,
        command_timeout: float = 30.0,
        queue_size: int = 1000,
        runner: CommandRunner | None = None,
        run_as: RunAs | None = None,
    ) -> None:
        if not command_timeout > 0:
            raise ValueError(f"command_timeout must be positive, not {command_timeout!r}")
        self.config = config
        self.command_timeout = command_timeout
        self._queue_size = queue_size
        self._runner: CommandRunner = runner if runner is not None else runner_as(run_as)
        self._script = command_words(config.cmdscript) if config.cmdscript else []
        self._timers: list[_Timer] = []
        self._seq = 0
        self._commands: WorkQueue[_Command] = WorkQueue(queue_size, self._drop)
        self._succeeded = 0
        self._failed = 0
        self._dropped = 0
        self._running = False
        self._timers_changed: trio.Event | None = None

    # -- the entry point from the notifier -------------------------------------------------

    def handle(self, notify_type: str, system: str, message: str = "") -> None:
        """Act on one notification as upssched would, at once; never blocks.

        Every AT rule matching ``notify_type`` (in any case) and ``system`` (exactly, or
        ``*``) is applied in file order; see the module documentation for each action.
        Must be called from within Trio (deadlines come from ``trio.current_time()``).

        Args:
            notify_type: The notify type (upsmon's ``NOTIFYTYPE``).
            system: The UPS as written in MONITOR (``UPSNAME``); ``""`` for a
                notification about no UPS, which only ``*`` rules match.
            message: The formatted message (``NOTIFYMSG``).
        """
        now = trio.current_time()
        request = _Request(system, notify_type, message)
        for rule in self.config.matching(notify_type, system):
            self._apply(rule, request, now)
        if self._timers_changed is not None:
            self._timers_changed.set()

    def _apply(self, rule: SchedRule, req: _Request, now: float) -> None:
        action = rule.action
        where = f"{self.config.path}:{rule.lineno}"
        if action is SchedAction.EXECUTE:
            assert rule.command is not None
            self._queue(rule.command, req, f"EXECUTE ({where})")
            return
        name = rule.timer
        assert name is not None
        if action is SchedAction.START_TIMER:
            for timer in self._timers:
                if timer.name == name and not timer.shared and timer.owner == req.ups:
                    log.debug(
                        "upssched: timer %s for %r already running (%s); kept", name, req.ups, where
                    )
                    return
            self._start(name, rule, req, now, shared=False)
        elif action is SchedAction.START_TIMER_SHARED:
            for timer in self._timers:
                if timer.name == name and timer.shared:
                    if req not in timer.requests:
                        timer.requests.append(req)
                    log.debug("upssched: %r joins shared timer %s (%s)", req.ups, name, where)
                    return
            self._start(name, rule, req, now, shared=True)
        elif action is SchedAction.CANCEL_TIMER:
            kept = [t for t in self._timers if t.name != name]
            cancelled = len(self._timers) - len(kept)
            self._timers = kept
            if cancelled:
                log.info("upssched: timer %s cancelled by %s %s", name, req.notify_type, req.ups)
            elif rule.command is not None:
                self._queue(rule.command, req, f"CANCEL-TIMER {name}: no such timer ({where})")
        else:  # CANCEL-TIMER-MATCHED
            touched = False
            keep: list[_Timer] = []
            for timer in self._timers:
                if timer.name != name or not timer.has(req.ups):
                    keep.append(timer)
                    continue
                touched = True
                if timer.shared:
                    timer.requests = [r for r in timer.requests if r.ups != req.ups]
                    if timer.requests:
                        keep.append(timer)
                        log.debug("upssched: %r leaves shared timer %s", req.ups, name)
                        continue
                log.info("upssched: timer %s cancelled by %s %s", name, req.notify_type, req.ups)
            self._timers = keep
            if not touched and rule.command is not None:
                self._queue(
                    rule.command,
                    req,
                    f"CANCEL-TIMER-MATCHED {name}: no such timer for {req.ups!r} ({where})",
                )

    def _start(
        self, name: str, rule: SchedRule, req: _Request, now: float, *, shared: bool
    ) -> None:
        seconds = rule.seconds
        assert seconds is not None
        self._seq += 1
        self._timers.append(_Timer(name, now + seconds, shared, self._seq, [req]))
        log.info(
            "upssched: timer %s started for %s %s: expires in %d s",
            name,
            req.notify_type,
            req.ups or "(no UPS)",
            seconds,
        )

    def _queue(self, word: str, req: _Request, why: str) -> None:
        env = {"UPSNAME": req.ups, "NOTIFYTYPE": req.notify_type, "NOTIFYMSG": req.message}
        self._enqueue(_Command(word, env, why))

    def _enqueue(self, command: _Command) -> None:
        if not self._script:
            log.error(
                "upssched: no CMDSCRIPT in %s: cannot run %r (%s)",
                self.config.path,
                command.word,
                command.why,
            )
            return
        self._commands.put(command)

    def _drop(self, old: _Command) -> None:
        self._dropped += 1
        log.error(
            "upssched: command queue full (%d): dropped CMDSCRIPT %s (%s)",
            self._queue_size,
            old.word,
            old.why,
        )

    # -- queries ---------------------------------------------------------------------------

    def timers(self) -> list[TimerInfo]:
        """The running timers, soonest first (``upssched -l``).

        Must be called from within Trio.

        Returns:
            One record per timer.
        """
        now = trio.current_time()
        return [
            TimerInfo(
                name=t.name,
                deadline=t.deadline,
                remaining=max(0.0, t.deadline - now),
                shared=t.shared,
                upsnames=_unique(r.ups for r in t.requests),
                notifytypes=_unique(r.notify_type for r in t.requests),
                messages=_unique(r.message for r in t.requests),
            )
            for t in sorted(self._timers, key=lambda t: (t.deadline, t.seq))
        ]

    def statistics(self) -> UpsschedStatistics:
        """Return the current counters (a frozen record)."""
        return UpsschedStatistics(
            timers=len(self._timers),
            queued=len(self._commands),
            succeeded=self._succeeded,
            failed=self._failed,
            dropped=self._dropped,
        )

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the timers and the command worker until cancelled.

        Startable: ``await nursery.start(upssched.run)`` returns once both tasks are
        set up. A failing, hanging or missing CMDSCRIPT is logged and counted, and never
        stops the runner.

        Cancellation kills a running CMDSCRIPT (its whole process group) and returns;
        timers still running and commands still queued are kept in this object but do
        not fire until :meth:`run` is started again.

        Args:
            task_status: For :meth:`trio.Nursery.start`.

        Raises:
            RuntimeError: If this upssched is already running.
        """
        if self._running:
            raise RuntimeError("Upssched.run is already running")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._worker)
                task_status.started()
        finally:
            self._running = False
            self._timers_changed = None

    async def _timer_loop(self) -> None:
        while True:
            self._expire(trio.current_time())
            deadline = min((t.deadline for t in self._timers), default=math.inf)
            self._timers_changed = trio.Event()
            with trio.move_on_at(deadline):
                await self._timers_changed.wait()

    def _expire(self, now: float) -> None:
        due = sorted(
            (t for t in self._timers if t.deadline <= now), key=lambda t: (t.deadline, t.seq)
        )
        for timer in due:
            self._timers.remove(timer)
            log.info("upssched: timer %s expired: running CMDSCRIPT %s", timer.name, timer.name)
            self._enqueue(
                _Command(timer.name, _timer_env(timer.requests), f"timer {timer.name} expired")
            )

    async def _worker(self) -> None:
        while True:
            command = await self._commands.get()
            try:
                result = await self._execute(command.word, command.env)
            except Exception:  # a bug, not a failing command: keep serving
                log.exception("upssched: running CMDSCRIPT %s failed", command.word)
                self._failed += 1
            else:
                if result.ok:
                    self._succeeded += 1
                    log.debug("upssched: CMDSCRIPT %s (%s): ok", command.word, command.why)
                else:
                    self._failed += 1
                    log.error(
                        "upssched: CMDSCRIPT %s (%s): %s",
                        shlex.join(result.argv),
                        command.why,
                        result.describe(),
                    )
            self._commands.task_done()

    async def _execute(self, word: str, values: Mapping[str, str]) -> CommandResult:
        return await self._runner(
            [*self._script, word],
            env=_environment(values),
            stdin=b"",
            time_limit=self.command_timeout,
        )

    async def run_cmdscript(
        self, word: str, notify_type: str = "", system: str = "", message: str = ""
    ) -> CommandResult | None:
        """Run ``CMDSCRIPT word`` now, outside the queue, and wait for it.

        For ``nuttrio notify-test``; works whether or not :meth:`run` is running.

        Args:
            word: The argument after CMDSCRIPT's own words.
            notify_type: ``NOTIFYTYPE`` for the command.
            system: ``UPSNAME`` for the command.
            message: ``NOTIFYMSG`` for the command.

        Returns:
            How it ended, or ``None`` if upssched.conf has no CMDSCRIPT.

        Raises:
            trio.Cancelled: If cancelled; the command is killed first.
        """
        if not self._script:
            await trio.lowlevel.checkpoint()
            return None
        env = {"UPSNAME": system, "NOTIFYTYPE": notify_type, "NOTIFYMSG": message}
        return await self._execute(word, env)

    async def drain(self) -> None:
        """Wait until every command queued so far has run or been dropped.

        Timers still running are not waited for. Needs :meth:`run` to be running.
        Cancelling the wait changes nothing in the queue.
        """
        await self._commands.join()
