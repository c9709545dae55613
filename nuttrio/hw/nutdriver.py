"""The bridge to NUT's own drivers: any UPS NUT supports, served through its driver socket.

General theory of operation
---------------------------
A NUT driver (``/lib/nut/usbhid-ups`` and the others) talks to the UPS and listens on a
Unix socket ``STATEPATH/DRIVER-UPS``; upsd connects there and speaks the driver protocol
(:mod:`nuttrio.hw.sockproto`). :class:`NutDriverBridge` takes upsd's place:

* it connects to the socket if a live one is there (a driver started by the system),
  else, unless it only follows external drivers, it starts the binary as
  ``upsdrvctl -F`` would: ``DRIVER -a UPS -F [-u USER]`` from ups.conf's ``driverpath`` or
  NUT's usual directories, with ``NUT_CONFPATH`` and ``NUT_STATEPATH`` set so that the
  driver reads the same ups.conf (its section untouched) and puts its socket where the
  bridge looks; the driver's output is logged line by line;
* on the socket it sends ``DUMPALL``, keeps upsd's copy of the driver state
  (:class:`~nuttrio.hw.sockproto.DriverMirror`) and publishes it to the store after the
  dump and after each batch of changes (the difference only), sends ``PING`` when the
  driver has been quiet for :attr:`NutDriverSettings.ping_interval` and counts every
  recognised line as news, as upsd does (MAXAGE then works as for upsd);
* SET VAR and INSTCMD are sent with a TRACKING id of the bridge's own, so their outcome
  (the driver's ``TRACKING id status``) resolves the command, whether or not the client
  asked for tracking; a command the driver never answers is FAILED when the connection
  ends;
* a 2.8.3+ driver (by its ``driver.version``) is asked GETPID after its dump and told
  LOGOUT when the bridge lets go; older drivers get neither.

While the socket is not reachable the UPS reads DRIVER-NOT-CONNECTED (the link stays
attached, :meth:`nuttrio.state.DriverLink.set_connected`), as with upsd. A started
driver that exits, or a socket that closes, ends the run with :class:`DriverGone`, and
the daemon's supervisor restarts it with its back-off. With ``external`` (``nuttrio
--external-drivers``) nothing is started and nothing ends the run: the bridge looks for
the socket every :attr:`~NutDriverSettings.retry_interval` seconds and reconnects when a
driver (re)starts, as upsd does.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import math
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import trio

from ..nutconf import DEFAULT_STATEPATH, ConfigError, UpsSection
from ..protocol import LocalProtocolError
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink
from . import sockproto as sp
from .base import DriverContext, DriverFailed
from .kit import publish_difference

__all__ = [
    "DRIVER_DIRS",
    "DriverGone",
    "NutDriverBridge",
    "NutDriverSettings",
    "find_driver_binary",
    "nut_driver_factory",
]

log = logging.getLogger(__name__)

#: Where distributions install NUT's drivers, searched after ups.conf's ``driverpath``.
DRIVER_DIRS: tuple[Path, ...] = (
    Path("/lib/nut"),
    Path("/usr/lib/nut"),
    Path("/usr/libexec/nut"),
    Path("/usr/local/ups/bin"),
)

#: upsdrvctl's default ``maxstartdelay``: seconds a driver may take to open its socket.
DEFAULT_START_TIMEOUT = 75.0

#: Seconds a driver gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 5.0


class DriverGone(DriverFailed):
    """The NUT driver exited or closed its socket (the supervisor restarts it)."""


@contextlib.contextmanager
def _plain_errors() -> Iterator[None]:
    """Raise the one error of a nursery's group as itself (for a one-line log)."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, DriverGone | OSError):
            raise leaf from None
        raise


def find_driver_binary(driver: str, driverpath: str | None) -> Path | None:
    """The executable of NUT driver ``driver``: in ``driverpath`` if given, else the usual dirs."""
    if "/" in driver:
        return None
    dirs = (Path(driverpath),) if driverpath else DRIVER_DIRS
    for directory in dirs:
        candidate = directory / driver
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@attrs.frozen
class NutDriverSettings:
    """How to reach (and start) the NUT driver of one UPS.

    Attributes:
        ups: The UPS name (``-a``).
        driver: The driver name, as in ups.conf.
        socket_path: ``STATEPATH/DRIVER-UPS``.
        binary: The driver to start, or ``None`` to start nothing (external drivers).
        confdir: ``NUT_CONFPATH`` for the driver (it reads ups.conf there).
        user: ``-u`` for the driver (ups.conf's ``user``), or ``None``.
        start_timeout: Seconds a started driver may take to open its socket.
        ping_interval: Seconds of driver silence before a PING (upsd: MAXAGE/3).
        retry_interval: Seconds between looks for the socket of an external driver.
        silence_limit: Seconds without a line from the driver after which the connection
            is dropped (and, for an external driver, made again), as NUT's clone does
            after 15 s; ``None`` keeps it open, as upsd does (the UPS goes stale after
            MAXAGE, the store's timer).
    """

    ups: str
    driver: str
    socket_path: Path
    binary: Path | None = None
    confdir: Path = Path(".")
    user: str | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT
    ping_interval: float = 5.0
    retry_interval: float = 2.0
    silence_limit: float | None = None

    @property
    def external(self) -> bool:
        """Whether the driver is started by someone else (nuttrio only connects)."""
        return self.binary is None

    def argv(self, mode: str = "-F") -> list[str]:
        """The command line upsdrvctl would run: ``-F`` to start, ``-k`` to shut down."""
        assert self.binary is not None
        user = ["-u", self.user] if self.user else []
        return [str(self.binary), "-a", self.ups, mode, *user]

    def environment(self) -> dict[str, str]:
        """The driver's environment: ours, with NUT_CONFPATH and NUT_STATEPATH set."""
        return {
            **os.environ,
            "NUT_CONFPATH": str(self.confdir),
            "NUT_STATEPATH": str(self.socket_path.parent),
        }


async def _connect(path: Path) -> trio.SocketStream | None:
    """A stream to the socket at ``path``, or ``None`` if nobody listens there."""
    try:
        return await trio.open_unix_socket(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except OSError as exc:
        log.debug("cannot connect to %s: %s", path, exc)
        return None


class _Session:
    """One connection to a driver socket: upsd's side of it."""

    def __init__(
        self,
        link: DriverLink,
        stream: trio.SocketStream,
        settings: NutDriverSettings,
        dump_limit: float,
    ) -> None:
        self.link = link
        self.stream = stream
        self.ping_interval = settings.ping_interval
        self.silence_limit = settings.silence_limit
        self.dump_limit = dump_limit
        self._dumped = trio.Event()
        self.mirror = sp.DriverMirror()
        self.parser = sp.DriverParser()
        self.pending: dict[str, DriverCommand] = {}
        self.ids = (f"nuttrio-{n}" for n in itertools.count(1))
        self.quiet_since = trio.current_time()  # the last news, or the last PING
        self.last_news = self.quiet_since
        self._send_lock = trio.Lock()

    async def send(self, data: bytes) -> None:
        """Write to the driver.

        Raises:
            DriverGone: If the socket is broken (the driver died).
        """
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise DriverGone(f"writing to the driver socket failed: {exc}") from exc

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        """Serve the connection until the driver closes it.

        Started after the driver's first DUMPDONE, or after ``dump_limit`` seconds without
        it (the UPS reads DATA-STALE until the dump is complete).
        """
        with self.link.update() as update:  # a new connection: nothing known yet
            update.clear()
            update.stale = False
            update.dumped = False
        self.link.set_connected(True)
        try:
            await self.send(sp.dumpall())
            with _plain_errors():
                await self._serve(task_status)
        finally:
            self.link.set_connected(False)
            for command in self.pending.values():
                command.result.resolve(CommandStatus.FAILED)
            await self._logout()

    async def _logout(self) -> None:
        """Say LOGOUT to a 2.8.3+ driver before closing (bounded, errors ignored)."""
        if _version(self.mirror) < (2, 8, 3):
            return
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(0.5),
            contextlib.suppress(DriverGone),
        ):
            await self.send(sp.logout())

    async def _serve(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._commands)
            nursery.start_soon(self._pinger)
            nursery.start_soon(self._report_start, task_status)
            await self._reader()
            nursery.cancel_scope.cancel()

    async def _report_start(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.move_on_after(self.dump_limit):
            await self._dumped.wait()
        if not self._dumped.is_set() and self.dump_limit > 0:
            log.warning(
                "UPS %s: no complete dump from the driver after %g s; DATA-STALE until then",
                self.link.name,
                self.dump_limit,
            )
        task_status.started()

    async def _reader(self) -> None:
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError as exc:
                raise DriverGone(f"the driver socket failed: {exc}") from exc
            if not data:
                return
            self.parser.receive_data(data)
            self._handle_events()
            if self.mirror.dumped and not self._dumped.is_set():
                self._dumped.set()
                if _version(self.mirror) >= (2, 8, 3):
                    await self.send(sp.getpid())  # answered with PID n

    def _handle_events(self) -> None:
        news = False
        for event in self.parser.events():
            if isinstance(event, sp.BadLine):
                log.warning("UPS %s: driver sent a line upsd drops: %s", self.link.name, event)
                continue
            if isinstance(event, sp.UnknownLine):
                log.debug("UPS %s: unknown line from the driver: %s", self.link.name, event)
            news = self.mirror.apply(event) or news
            if isinstance(event, sp.Tracking):
                self._resolve(event)
        if self.parser.broken:
            raise DriverGone(f"the driver sent a line longer than {sp.MAX_DRIVER_LINE} bytes")
        if not news:
            return
        self.quiet_since = self.last_news = trio.current_time()
        if not self.mirror.dumped or not publish_difference(
            self.link, self.mirror, stale=self.mirror.stale
        ):
            self.link.heartbeat()

    def _resolve(self, event: sp.Tracking) -> None:
        command = self.pending.pop(event.id, None)
        if command is not None:
            command.result.resolve(sp.tracking_status(event.status))

    async def _commands(self) -> None:
        async for command in self.link.commands:
            tid = next(self.ids)
            try:
                if command.kind is CommandKind.SET:
                    line = sp.set_var(command.name, command.value or "", tid)
                else:
                    line = sp.instcmd(command.name, command.value, tid)
            except LocalProtocolError:  # NUT cannot carry it (non-ASCII, too long)
                command.result.resolve(CommandStatus.INVALID_ARGUMENT)
                continue
            self.pending[tid] = command
            await self.send(line)

    async def _pinger(self) -> None:
        """PING the driver after ``ping_interval`` without news (upsd: MAXAGE/3).

        Raises:
            DriverGone: After ``silence_limit`` seconds without news, if there is one.
        """
        limit = math.inf if self.silence_limit is None else self.silence_limit
        while True:
            await trio.sleep_until(
                min(self.quiet_since + self.ping_interval, self.last_news + limit)
            )
            now = trio.current_time()
            if now > self.last_news + limit:
                raise DriverGone(f"nothing from the driver for {limit:g} s")
            if now >= self.quiet_since + self.ping_interval:
                await self.send(sp.ping())
                self.quiet_since = trio.current_time()  # the next PING an interval later


class NutDriverBridge:
    """A UPS served by NUT's own driver binary through its socket.

    Args:
        settings: Where the socket is and how to start the driver.
    """

    def __init__(self, settings: NutDriverSettings) -> None:
        self.settings = settings
        self._pid: int | None = None
        self._session: _Session | None = None

    @property
    def pid(self) -> int | None:
        """The driver's process id (``None``: unknown, or no driver running).

        That of the driver nuttrio started, else as a 2.8.3+ driver answers GETPID.
        """
        if self._pid is not None:
            return self._pid
        return self._session.mirror.pid if self._session is not None else None

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the UPS from its NUT driver until cancelled.

        ``task_status.started()`` comes after the driver's first complete dump, at most
        ``start_timeout`` seconds after the start (the UPS reads DATA-STALE until the dump
        is complete); with external drivers as soon as the socket was tried (the UPS reads
        DRIVER-NOT-CONNECTED, then DATA-STALE, until the driver is there and has dumped).

        Cancellation closes the socket and stops a driver nuttrio started (SIGTERM, then
        SIGKILL after :data:`STOP_TIMEOUT` seconds).

        Raises:
            DriverGone: The started driver exited or its socket closed (not with external
                drivers, which are waited for instead).
            OSError: The driver binary cannot be run.
        """
        link.set_connected(False)
        if self.settings.external:
            await self._follow_external(link, task_status)
            return
        stream = await _connect(self.settings.socket_path)
        if stream is not None:
            log.info("UPS %s: using the running driver at %s", link.name, self.settings.socket_path)
            await self._serve(link, stream, task_status, self.settings.start_timeout)
            raise DriverGone(f"the driver socket {self.settings.socket_path} closed")
        await self._start_and_serve(link, task_status)

    async def shutdown(self) -> None:
        """``upsdrvctl shutdown``: run ``DRIVER -a UPS -k`` as the driver is started, wait.

        Cancellation kills the driver.

        Raises:
            DriverFailed: If the driver is external (nuttrio does not start it), cannot
                be started, or exits other than 0 (with the last line it wrote to stderr).
        """
        if self.settings.binary is None:
            raise DriverFailed(f"UPS {self.settings.ups}: the driver is external, not started")
        argv = self.settings.argv("-k")
        log.info("UPS %s: running %s", self.settings.ups, " ".join(argv))
        try:
            done = await trio.run_process(
                argv,
                env=self.settings.environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the banner
                capture_stderr=True,
                cwd=self.settings.confdir,
                check=False,
            )
        except OSError as exc:
            raise DriverFailed(f"cannot run {argv[0]}: {exc}") from exc
        output = done.stderr.decode(errors="replace").strip().splitlines()
        if done.returncode != 0:
            last = output[-1] if output else "no output"
            raise DriverFailed(f"{self.settings.driver} -k exited with {done.returncode}: {last}")

    async def _serve(
        self,
        link: DriverLink,
        stream: trio.SocketStream,
        task_status: trio.TaskStatus[None],
        dump_limit: float,
    ) -> None:
        async with stream:
            self._session = _Session(link, stream, self.settings, dump_limit)
            try:
                await self._session.run(task_status)
            finally:
                self._session = None

    async def _follow_external(self, link: DriverLink, task_status: trio.TaskStatus[None]) -> None:
        path = self.settings.socket_path
        reported = False
        while True:
            stream = await _connect(path)
            if stream is None:
                if not reported:
                    reported = True
                    log.warning("UPS %s: no driver at %s yet", link.name, path)
                    task_status.started()
                _refuse_queued(link)
                await trio.sleep(self.settings.retry_interval)
                continue
            log.info("UPS %s: connected to the driver at %s", link.name, path)
            status = task_status if not reported else trio.TASK_STATUS_IGNORED
            reported = True
            try:
                await self._serve(link, stream, status, 0)
            except DriverGone as exc:
                log.warning("UPS %s: %s", link.name, exc)
            log.warning("UPS %s: the driver at %s went away", link.name, path)

    async def _start_and_serve(self, link: DriverLink, task_status: trio.TaskStatus[None]) -> None:
        path = self.settings.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # nobody listens there (checked): a dead driver's socket
        argv = self.settings.argv()
        log.info("UPS %s: starting %s", link.name, " ".join(argv))
        process = await trio.lowlevel.open_process(
            argv,
            env=self.settings.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.settings.confdir,
        )
        self._pid = process.pid
        try:
            with _plain_errors():
                await self._supervise_process(link, process, task_status)
        finally:
            self._pid = None
            with trio.CancelScope(shield=True):
                await _stop(process)

    async def _supervise_process(
        self, link: DriverLink, process: trio.Process, task_status: trio.TaskStatus[None]
    ) -> None:
        output = _DriverOutput(link.name)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.follow, process)
            nursery.start_soon(self._connect_and_serve, link, process, task_status)
            code = await process.wait()
            with trio.move_on_after(0.5):  # what it said last, usually why it exited
                await output.closed.wait()
            said = f" (its last output: {output.last()})" if output.last() else ""
            raise DriverGone(f"driver {self.settings.driver} exited with status {code}{said}")

    async def _connect_and_serve(
        self, link: DriverLink, process: trio.Process, task_status: trio.TaskStatus[None]
    ) -> None:
        path = self.settings.socket_path
        stream = None
        with trio.move_on_after(self.settings.start_timeout):
            stream = await _wait_for_socket(path, 0.1)
        if stream is None:
            raise DriverGone(
                f"driver {self.settings.driver} did not open {path} within "
                f"{self.settings.start_timeout:g} s"
            )
        await self._serve(link, stream, task_status, self.settings.start_timeout)
        raise DriverGone(f"driver {self.settings.driver} closed its socket {path}")


async def _wait_for_socket(path: Path, every: float) -> trio.SocketStream:
    """Connect to ``path`` as soon as a driver listens there (tried every ``every`` s)."""
    while True:
        stream = await _connect(path)
        if stream is not None:
            return stream
        await trio.sleep(every)


def _version(mirror: sp.DriverMirror) -> tuple[int, ...]:
    """The NUT release of the driver (``driver.version``, ``2.8.3.123-g1`` -> (2, 8, 3, 123))."""
    found = next((v.value for v in mirror.variables() if v.name.lower() == "driver.version"), "")
    numbers = []
    for part in found.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def _refuse_queued(link: DriverLink) -> None:
    """Answer FAILED to commands queued while no driver is connected."""
    while True:
        try:
            link.commands.receive_nowait().result.resolve(CommandStatus.FAILED)
        except (trio.WouldBlock, trio.EndOfChannel):
            return


class _DriverOutput:
    """A started driver's output: logged line by line, the last lines kept for messages."""

    def __init__(self, name: str, keep: int = 6) -> None:
        self.name = name
        self.closed = trio.Event()
        self._last: collections.deque[str] = collections.deque(maxlen=keep)

    def last(self) -> str:
        """The last lines, joined with `` / ``."""
        return " / ".join(self._last)

    async def follow(self, process: trio.Process) -> None:
        """Read the output until the driver closes it."""
        assert process.stdout is not None
        buffer = b""
        try:
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").strip()
                    if line:
                        self._last.append(line)
                        log.info("UPS %s driver: %s", self.name, line)
        finally:
            self.closed.set()


async def _stop(process: trio.Process) -> None:
    """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`; reaps the process."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def _setting(section: UpsSection, ups_globals: Mapping[str, str], key: str) -> str | None:
    """A section's own value of ``key``, else ups.conf's global one."""
    return section.options.get(key, ups_globals.get(key))


def _float_setting(section: UpsSection, ups_globals: Mapping[str, str], key: str) -> float | None:
    text = _setting(section, ups_globals, key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(
            f"UPS [{section.name}]: {key} = {text!r} is not a positive number of seconds",
            section.path,
            section.lineno,
        )
    return value


def nut_driver_factory(
    section: UpsSection, context: DriverContext, *, external: bool = False
) -> NutDriverBridge:
    """Build the bridge for a section served by NUT's driver binary.

    Args:
        section: The ups.conf section (the driver reads it itself).
        context: The driver context: STATEPATH, confdir, ups.conf's globals
            (``driverpath``, ``user``, ``maxstartdelay``).
        external: Start nothing, only follow the driver's socket.

    Raises:
        ConfigError: If the driver binary is not found (naming where it was looked for),
            the socket path does not fit a Unix socket address, or ``maxstartdelay`` is
            not a positive number.
    """
    statepath = context.statepath or DEFAULT_STATEPATH
    socket_path = statepath / f"{section.driver}-{section.name}"
    if len(os.fsencode(socket_path)) > 107:
        raise ConfigError(
            f"UPS [{section.name}]: the driver socket {socket_path} is longer than a Unix "
            "socket address allows (107 bytes): use a shorter STATEPATH",
            section.path,
            section.lineno,
        )
    binary = None
    if not external:
        driverpath = context.ups_globals.get("driverpath")
        binary = find_driver_binary(section.driver, driverpath)
        if binary is None:
            where = driverpath or ", ".join(str(d) for d in DRIVER_DIRS)
            raise ConfigError(
                f"UPS [{section.name}]: driver {section.driver!r} is neither one of nuttrio's "
                f"nor a NUT driver binary in {where}",
                section.path,
                section.lineno,
            )
    timeout = _float_setting(section, context.ups_globals, "maxstartdelay")
    return NutDriverBridge(
        NutDriverSettings(
            ups=section.name,
            driver=section.driver,
            socket_path=socket_path,
            binary=binary,
            confdir=context.confdir,
            user=_setting(section, context.ups_globals, "user"),
            start_timeout=timeout or DEFAULT_START_TIMEOUT,
            ping_interval=max(context.maxage / 3, 0.5),
        )
    )
