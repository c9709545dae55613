"""Running the manager's commands: without a shell, one at a time, each with a time limit.

The notifier (WALL, NOTIFYCMD) and the in-process upssched (CMDSCRIPT) both run their
commands through :func:`run_command`, in order through a :class:`WorkQueue` each, and as
the unprivileged user of upsmon.conf's ``RUN_AS_USER`` (:func:`command_user`), as upsmon's
unprivileged child runs them. SHUTDOWNCMD is not run here: the manager runs it as the
user nuttrio runs as (root), as upsmon's privileged parent does.
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

import attrs
import trio

__all__ = [
    "DEFAULT_RUN_AS_USER",
    "CommandResult",
    "CommandRunner",
    "RunAs",
    "WorkQueue",
    "command_user",
    "command_words",
    "run_command",
    "runner_as",
]

T = TypeVar("T")

#: The user upsmon runs its notifications as when RUN_AS_USER is not set (Debian's build).
DEFAULT_RUN_AS_USER = "nut"


@attrs.frozen
class CommandResult:
    """How one command run ended.

    Attributes:
        argv: The command and its arguments.
        returncode: The exit status (negative: killed by that signal), or ``None`` if
            the command did not finish (timeout) or did not start (error).
        timed_out: The command ran longer than its time limit and was killed.
        time_limit: The time limit, in seconds.
        error: Why the command could not be started (not found, not executable, ...).
    """

    argv: tuple[str, ...]
    returncode: int | None = None
    timed_out: bool = False
    time_limit: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the command ran and exited with status 0."""
        return self.returncode == 0

    def describe(self) -> str:
        """Say how the command ended, for logs and ``nuttrio notify-test``.

        Returns:
            ``"ok"``, ``"exit status N"``, ``"killed by signal N (NAME)"``,
            ``"timed out after N s, killed"`` or ``"could not run: <reason>"``.
        """
        if self.error is not None:
            return f"could not run: {self.error}"
        if self.timed_out:
            limit = f" after {self.time_limit:g} s" if self.time_limit is not None else ""
            return f"timed out{limit}, killed"
        if self.returncode is None:  # pragma: no cover - not built that way
            return "did not finish"
        if self.returncode == 0:
            return "ok"
        if self.returncode < 0:
            try:
                name = f" ({signal.Signals(-self.returncode).name})"
            except ValueError:
                name = ""
            return f"killed by signal {-self.returncode}{name}"
        return f"exit status {self.returncode}"


@attrs.frozen
class RunAs:
    """A user to run commands as (``RUN_AS_USER``), resolved from the password database.

    Attributes:
        name: The user name.
        uid: Its user id.
        gid: Its primary group id.
        groups: Every group it belongs to (supplementary groups included).
    """

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> RunAs:
        """Resolve ``name`` (or a numeric uid) in the password database.

        Raises:
            KeyError: If there is no such user.
        """
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if not name.isdigit():
                raise
            entry = pwd.getpwuid(int(name))
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def command_user(configured: str | None) -> RunAs | None:
    """The user NOTIFYCMD, WALL and CMDSCRIPT run as, as upsmon decides it.

    Running as root, upsmon drops to ``RUN_AS_USER`` (default :data:`DEFAULT_RUN_AS_USER`)
    for everything but SHUTDOWNCMD; running as any other user it cannot switch and runs
    everything as itself.

    Args:
        configured: upsmon.conf's ``RUN_AS_USER``, or ``None`` when not set.

    Returns:
        The user to switch to, or ``None`` for no switch (not root, or the target is the
        current user).

    Raises:
        KeyError: If the user does not exist: RUN_AS_USER is checked even when not root,
            so that a bad file fails on every machine alike; the default user only when
            root (it is needed only then).
    """
    root = os.geteuid() == 0
    if configured is None and not root:
        return None
    user = RunAs.lookup(configured if configured is not None else DEFAULT_RUN_AS_USER)
    if not root or user.uid == os.geteuid():
        return None
    return user


class CommandRunner(Protocol):
    """How the upssched and the notifier run a command (:func:`run_command`).

    Tests substitute a fake that records the calls on the mock clock.
    """

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        stdin: bytes,
        time_limit: float,
    ) -> Awaitable[CommandResult]:
        """Run ``argv`` with ``env``, feed it ``stdin``, give up after ``time_limit``."""
        ...


async def _kill_group(proc: trio.Process) -> None:
    """Kill the command and everything it started (its own process group)."""
    if sys.platform == "win32":  # pragma: no cover
        proc.kill()
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # pragma: no cover - already gone
        pass
    except OSError:  # pragma: no cover - not a group leader after all
        proc.kill()


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes = b"",
    time_limit: float,
    run_as: RunAs | None = None,
) -> CommandResult:
    """Run a command without a shell and wait for it, at most ``time_limit`` seconds.

    The command starts in a new session (its own process group) with the manager's
    standard output and error. When the time limit passes, or when the caller is
    cancelled, the whole process group gets SIGKILL, so a script's children die with it.

    Args:
        argv: The program (looked up in ``PATH`` if it has no ``/``) and its arguments.
        env: The complete environment of the command.
        stdin: Bytes written to its standard input, which is then closed.
        time_limit: Seconds the command may run (``math.inf`` for no limit).
        run_as: Run it as this user, its primary group and its other groups (needs
            root); ``None`` runs it as the manager's own user.

    Returns:
        How it ended. A command that cannot start (missing, not executable, a NUL byte
        in an argument, a user switch refused) is reported in
        :attr:`CommandResult.error`, not raised.

    Raises:
        trio.Cancelled: If the caller is cancelled; the command is killed first.
    """
    args = tuple(argv)
    completed = None
    try:
        with trio.move_on_after(time_limit):
            completed = await trio.run_process(
                list(args),
                stdin=stdin,
                env=dict(env),
                check=False,
                start_new_session=True,
                deliver_cancel=_kill_group,
                user=run_as.uid if run_as is not None else None,
                group=run_as.gid if run_as is not None else None,
                extra_groups=run_as.groups if run_as is not None else None,
            )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return CommandResult(args, error=f"{reason}: {args[0] if args else '(empty)'}")
    if completed is None:
        return CommandResult(args, timed_out=True, time_limit=time_limit)
    return CommandResult(args, returncode=completed.returncode, time_limit=time_limit)


def command_words(command: str) -> list[str]:
    """Split a configured command (NOTIFYCMD, CMDSCRIPT) into program and arguments.

    The text is split as a shell would split words (quotes, backslashes), without any
    other shell processing. A text that names an existing file is taken whole, so an
    unquoted path with spaces still works; an unbalanced quote falls back to splitting
    on whitespace.

    Args:
        command: The configured command text.

    Returns:
        The words; empty for an empty text.
    """
    if os.path.isfile(command):
        return [command]
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


class WorkQueue(Generic[T]):
    """A bounded first-in-first-out queue for one worker task; putting never blocks.

    The notifier and upssched run their commands in order through one of these.

    Args:
        size: Most items waiting at once; putting one more drops the oldest.
        on_drop: Called with each dropped item (to log and count it).

    Raises:
        ValueError: If ``size`` is below 1.
    """

    def __init__(self, size: int, on_drop: Callable[[T], None]) -> None:
        if size < 1:
            raise ValueError(f"queue_size must be 1 or more, not {size!r}")
        self._items: deque[T] = deque()
        self._size = size
        self._on_drop = on_drop
        self._ready: trio.Event | None = None
        self._put = 0
        self._done = 0  # taken and finished, or dropped
        self._progress: trio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Append ``item`` (dropping the oldest if full) and wake the worker. Never blocks."""
        if len(self._items) >= self._size:
            self._on_drop(self._items.popleft())
            self.task_done()
        self._items.append(item)
        self._put += 1
        if self._ready is not None:
            self._ready.set()

    def task_done(self) -> None:
        """The worker finished an item it took (for :meth:`join`)."""
        self._done += 1
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    async def join(self) -> None:
        """Wait until every item put so far has been finished or dropped. A checkpoint.

        Cancelling the wait changes nothing in the queue.
        """
        target = self._put
        await trio.lowlevel.checkpoint()
        while self._done < target:
            if self._progress is None:
                self._progress = trio.Event()
            await self._progress.wait()

    async def get(self) -> T:
        """Wait for the oldest item and take it. Always a checkpoint."""
        await trio.lowlevel.checkpoint()
        while not self._items:
            self._ready = trio.Event()
            await self._ready.wait()
        return self._items.popleft()


def runner_as(run_as: RunAs | None) -> CommandRunner:
    """The :func:`run_command` that runs every command as ``run_as`` (``None``: no switch)."""

    async def run(
        argv: Sequence[str], *, env: Mapping[str, str], stdin: bytes, time_limit: float
    ) -> CommandResult:
        return await run_command(argv, env=env, stdin=stdin, time_limit=time_limit, run_as=run_as)

    return run
