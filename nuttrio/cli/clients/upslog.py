"""``nuttrio upslog``: NUT 2.8.0's upslog, with 2.8.1's ``-m`` and ``--json`` (JSON Lines).

The format is compiled once into a list of parts (literal text or an escape with its
argument), as upslog does, and run on each pass for each UPS. Every ``-i`` seconds (a
whole number, as upslog counts) each UPS gets one line in its log; SIGHUP reopens the log
files (for rotation), SIGUSR1 logs at once, SIGINT/SIGQUIT/SIGTERM log one last line and
exit 0. A UPS that cannot be reached logs ``NA`` values and is reconnected on the next pass.
"""

from __future__ import annotations

import io as io_module
import os
import pwd
import signal
import socket
import syslog
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import BinaryIO

import attrs
import trio

from ... import jsonshapes as js
from ...client import NutClient
from ...nutconf.common import atoi
from ._base import (
    NUT_VERSION,
    TLS_LONG,
    TLS_USAGE,
    Exit,
    GetOpt,
    Stdio,
    TlsOptions,
    UpscliError,
    connect,
    disconnect,
    nut_call,
    splitname,
)

__all__ = ["DEFAULT_LOGFORMAT", "compile_format", "main"]

PROG = "upslog"
#: Where NUT 2.8.0 (Debian) writes PID files named without a ``/``.
PIDPATH = "/run/nut"
#: The user upslog switches to when started as root (``-u``).
RUN_AS_USER = "nut"

DEFAULT_LOGFORMAT = (
    "%TIME @Y@m@d @H@M@S% %VAR battery.charge% "
    "%VAR input.voltage% %VAR ups.load% [%VAR ups.status%] "
    "%VAR ups.temperature% %VAR input.frequency%"
)

HELP = f"""\
UPS status logger.

usage: {PROG} [OPTIONS]

  -f <format>\t- Log format.  See below for details.
\t\t- Use -f "<format>" so your shell doesn't break it up.
  -i <interval>\t- Time between updates, in seconds
  -l <logfile>\t- Log file name, or - for stdout (foreground by default)
  -F\t\t- stay foregrounded even if logging into a file
  -B\t\t- stay backgrounded even if logging to stdout
  -p <pidbase>  - Base name for PID file (defaults to "{PROG}")
  -s <ups>\t- Monitor UPS <ups> - <upsname>@<host>[:<port>]
        \t- Example: -s myups@server
  -u <user>\t- Switch to <user> if started as root

Some valid format string escapes:
\t%% insert a single %
\t%TIME format% insert the time with strftime formatting
\t%HOST% insert the local hostname
\t%UPSHOST% insert the host of the ups being monitored
\t%PID% insert the pid of upslog
\t%VAR varname% insert the value of ups variable varname

format string defaults to:
{DEFAULT_LOGFORMAT}

See the upslog(8) man page for more information.

nuttrio additions:
  -m <ups,logfile>\t- Monitor UPS <ups> into <logfile> (repeatable, as NUT 2.8.1)
  --json\t- log one JSON object per line (see docs/json.md)
\t%ETIME% insert the time in seconds since the epoch (NUT takes it too, unlisted)
{TLS_USAGE}"""

_TUPLE_ERROR = "Argument '-m upsspec,logfile' requires exactly 2 components in the tuple"
_BAD_UPS = "Error: invalid UPS definition.  Required format: upsname[@hostname[:port]]\n"
_EXIT_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


@attrs.define
class Monitored:
    """One ``-s``/``-m`` UPS: where it is, where its log goes, its connection."""

    spec: str
    logfn: str
    ups: str = ""
    host: str = ""
    port: int = 0
    client: NutClient | None = None
    logfile: BinaryIO | None = None


@attrs.define
class _Pass:
    """What the escapes of one line see."""

    target: Monitored
    tod: float
    values: dict[str, str | None] = attrs.Factory(dict)


async def _var(now: _Pass, arg: str | None) -> str:
    if not arg or "." not in arg:
        return "INVALID"
    client = now.target.client
    value: str | None = None
    if client is not None and not client.closed:
        try:
            value = await nut_call(client.get_var(now.target.ups, arg))
        except UpscliError:
            value = None
    now.values[arg] = value
    return "NA" if value is None else value


async def _time(now: _Pass, arg: str | None) -> str:
    try:
        return time.strftime((arg or "").replace("@", "%"), time.localtime(now.tod))
    except ValueError:
        return ""


def _sync(
    func: Callable[[_Pass, str | None], str],
) -> Callable[[_Pass, str | None], Awaitable[str]]:
    async def escape(now: _Pass, arg: str | None) -> str:
        return func(now, arg)

    return escape


#: upslog's escapes, in its order: a name matches when the escape starts with it.
ESCAPES: tuple[tuple[str, Callable[[_Pass, str | None], Awaitable[str]]], ...] = (
    ("HOST", _sync(lambda now, arg: socket.gethostname())),
    ("UPSHOST", _sync(lambda now, arg: now.target.spec)),
    ("PID", _sync(lambda now, arg: str(os.getpid()))),
    ("TIME", _time),
    ("VAR", _var),
    ("ETIME", _sync(lambda now, arg: str(int(now.tod)))),
)

#: One compiled part: literal text (``None`` escape) or an escape and its argument.
Part = tuple[Callable[[_Pass, str | None], Awaitable[str]] | None, str | None]


def compile_format(fmt: str) -> list[Part]:
    """Compile the format as upslog does: ``%%``, ``%NAME[ arg]%``, ``INVALID`` for the rest."""
    parts: list[Part] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            parts.append((None, fmt[i]))
        elif fmt[i + 1 : i + 2] == "%":
            parts.append((None, "%"))
            i += 1
        elif (end := fmt.find("%", i + 1)) < 0:
            parts.append((None, "INVALID"))
        else:
            body = fmt[i + 1 : end]
            name, space, arg = body.partition(" ")
            handler = next((f for n, f in ESCAPES if name.upper().startswith(n)), None)
            parts.append((handler, arg if space else None) if handler else (None, "INVALID"))
            i = end
        i += 1
    return parts


async def _line(parts: list[Part], now: _Pass) -> str:
    out: list[str] = []
    for handler, arg in parts:
        out.append(arg or "" if handler is None else await handler(now, arg))
    return "".join(out)


@attrs.define
class Options:
    """upslog's command line, read."""

    targets: list[Monitored] = attrs.Factory(list)
    spec: str | None = None
    logfn: str | None = None
    interval: int = 30
    logformat: str = DEFAULT_LOGFORMAT
    user: str = RUN_AS_USER
    pidbase: str = PROG
    foreground: int = -1
    json: bool = False
    run_as: pwd.struct_passwd | None = None


def _add_tuple(io: Stdio, options: Options, value: str) -> None:
    """``-m ups,logfile``."""
    spec, comma, logfn = value.partition(",")
    if not comma or "," in logfn:
        io.fatal(_TUPLE_ERROR)
    if splitname(io, spec) is None:
        io.fatal(_BAD_UPS)
    options.targets.append(Monitored(spec, logfn))


def _parse(io: Stdio, argv: list[str]) -> Options:
    options = Options()
    setters: dict[str, Callable[[str], None]] = {
        "s": lambda v: setattr(options, "spec", v),
        "l": lambda v: setattr(options, "logfn", v),
        "i": lambda v: setattr(options, "interval", atoi(v)),
        "f": lambda v: setattr(options, "logformat", v),
        "u": lambda v: setattr(options, "user", v),
        "p": lambda v: setattr(options, "pidbase", v),
        "m": lambda v: _add_tuple(io, options, v),
    }
    tls = TlsOptions()
    opts = GetOpt(io, PROG, argv, "+hs:l:i:f:u:Vp:FBm:", {"json": False, **TLS_LONG})
    for letter, value in opts:
        if tls.take(letter, value):
            continue
        if letter in setters:
            setters[letter](value or "")
        elif letter in ("F", "B"):
            options.foreground = 1 if letter == "F" else 0
        elif letter == "json":
            options.json = True
        elif letter == "h":
            io.write(HELP)
            raise Exit(0)
        elif letter == "V":
            raise Exit(0)
    rest = opts.rest
    if len(rest) in (1, 2):
        io.write(HELP)
        raise Exit(0)
    if len(rest) >= 3:
        options.spec, options.logfn, options.interval = rest[0], rest[1], atoi(rest[2])
    if len(rest) >= 4:
        options.logformat = "".join(f"{word} " for word in rest[3:])
    if not options.targets:
        if options.spec is None:
            io.fatal("No UPS defined for monitoring - use -s <system>")
        if options.logfn is None:
            io.fatal("No filename defined for logging - use -l <file>")
        options.targets.append(Monitored(options.spec, options.logfn))
    tls.require(io)
    return options


def main(io: Stdio, argv: list[str]) -> int:
    """Run upslog with the arguments after its name; returns the exit status.

    What upslog prints on standard output before it logs is held back, as C's stdio
    buffer holds it: it is written when upslog fails or starts logging in the
    foreground, and lost when upslog goes to the background (unless on a terminal).
    """
    held = Stdio(io_module.BytesIO(), io.err, io.inp, io.tty)
    try:
        options = _prepare(held, argv)
    except Exit:
        _release(held, io)
        raise
    log: Callable[[str], None] = io.ewrite
    if options.foreground:
        _release(held, io)
    else:
        if io.out.isatty():
            _release(held, io)
        _background()
        log = _syslog
    _writepid(log, options.pidbase)
    _become_user(io, options.run_as)
    return trio.run(_loop, io, options, log)


def _release(held: Stdio, io: Stdio) -> None:
    assert isinstance(held.out, io_module.BytesIO)
    io.out.write(held.out.getvalue())
    io.flush()
    held.out = io.out


def _prepare(io: Stdio, argv: list[str]) -> Options:
    """Everything before logging starts: options, connections, log files, the user."""
    io.write(f"Network UPS Tools {PROG} {NUT_VERSION}\n")
    options = _parse(io, argv)
    trio.run(_open_all, io, options)
    try:
        options.run_as = pwd.getpwnam(options.user)
    except KeyError:
        io.fatal(f"user {options.user} not found")
    if options.foreground < 0:
        options.foreground = 1 if options.targets[0].logfn == "-" else 0
    return options


async def _open_all(io: Stdio, options: Options) -> None:
    """Print where each UPS is logged, connect to it, open its log file (exit on failure)."""
    for target in options.targets:
        io.write(
            f"logging status of {target.spec} to {target.logfn} ({options.interval}s intervals)\n"
        )
        name = splitname(io, target.spec)
        if name is None:
            io.fatal(_BAD_UPS)
        target.ups, target.host, target.port = name
        try:
            target.client = await connect(io, target.host, target.port, tryssl=True)
        except UpscliError as exc:
            io.ewrite(f"Warning: initial connect failed: {exc.message}\n")
        target.logfile = _open_log(io, target.logfn, "could not open logfile")


def _open_log(io: Stdio, logfn: str, failure: str) -> BinaryIO:
    if logfn == "-":
        return io.out
    try:
        return open(logfn, "ab")
    except OSError as exc:
        io.fatal_errno(f"{failure} {logfn}", exc.errno or 0)


def _syslog(message: str) -> None:
    syslog.openlog(PROG, syslog.LOG_PID)
    syslog.syslog(syslog.LOG_INFO, message.rstrip("\n"))


def _background() -> None:
    """NUT's ``background``: fork, the parent exits 0, the child keeps /dev/null as stdio."""
    pid = os.fork()
    if pid:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.setsid()
    _syslog("Startup successful")


def _writepid(log: Callable[[str], None], pidbase: str) -> None:
    path = pidbase if pidbase.startswith("/") else f"{PIDPATH}/{pidbase}.pid"
    old = os.umask(0o022)
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
    except OSError as exc:
        log(f"writepid: fopen {path}: {os.strerror(exc.errno or 0)}\n")
    finally:
        os.umask(old)


def _become_user(io: Stdio, user: pwd.struct_passwd | None) -> None:
    """Switch to ``-u`` user when running as root (NUT's ``become_user``)."""
    if user is None or (os.geteuid() != 0 and os.getuid() != 0):
        return
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("initgroups", lambda: os.initgroups(user.pw_name, user.pw_gid)),
        ("setgid", lambda: os.setgid(user.pw_gid)),
        ("setuid", lambda: os.setuid(user.pw_uid)),
    )
    for name, step in steps:
        try:
            step()
        except OSError as exc:
            io.fatal_errno(name, exc.errno or 0)


@attrs.define
class _Loop:
    """The logging loop's state: the flags the signals set and the sleep they cut short."""

    io: Stdio
    options: Options
    log: Callable[[str], None]
    parts: list[Part]
    exit_signal: int = 0
    reopen_signal: int = 0
    sleep: trio.CancelScope | None = None

    async def watch_signals(self, signals: AsyncIterator[int]) -> None:
        """Set the flags; any handled signal ends the current sleep."""
        async for signum in signals:
            if signum in _EXIT_SIGNALS:
                self.exit_signal = signum
            elif signum == signal.SIGHUP:
                self.reopen_signal = signum
            if self.sleep is not None:
                self.sleep.cancel()

    def reopen(self) -> None:
        for target in self.options.targets:
            if target.logfn == "-":
                self.log("logging to stdout\n")
                continue
            assert target.logfile is not None
            target.logfile.close()
            target.logfile = _open_log(self.io, target.logfn, "could not reopen logfile")

    async def one_pass(self) -> None:
        for target in self.options.targets:
            if target.client is None or target.client.closed:
                try:
                    target.client = await connect(self.io, target.host, target.port, tryssl=False)
                except UpscliError:
                    target.client = None
            now = _Pass(target, time.time())
            line = await _line(self.parts, now)
            if self.options.json:
                record = js.LogRecord(_iso(now.tod), int(now.tod), target.spec, now.values)
                line = js.dumps(record, lines=True)[:-1]
            assert target.logfile is not None
            target.logfile.write(f"{line}\n".encode("utf-8", "surrogateescape"))
            target.logfile.flush()
            if self.options.interval > 30:
                await disconnect(target.client)

    async def run(self) -> None:
        nextpoll = 0
        while not self.exit_signal:
            now = int(time.time())
            if nextpoll > now:
                with trio.move_on_after(nextpoll - now) as self.sleep:
                    await trio.sleep_forever()
                self.sleep = None
                nextpoll += self.options.interval
            else:
                nextpoll = now + self.options.interval
                await trio.lowlevel.checkpoint()
            if self.reopen_signal:
                self.log(f"Signal {self.reopen_signal}: reopening log file\n")
                self.reopen()
                self.reopen_signal = 0
            await self.one_pass()
        self.log(f"Signal {self.exit_signal}: exiting\n")


def _iso(tod: float) -> str:
    """Local time, ISO 8601 with its UTC offset, to the second."""
    local = time.localtime(int(tod))
    offset = time.strftime("%z", local)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f"{offset[:3]}:{offset[3:]}"


async def _loop(io: Stdio, options: Options, log: Callable[[str], None]) -> int:
    """Log until a stopping signal; returns 0."""
    handled = (signal.SIGHUP, *_EXIT_SIGNALS, signal.SIGUSR1)
    loop = _Loop(io, options, log, compile_format(options.logformat))
    for target in options.targets:
        if target.logfn == "-":
            target.logfile = io.out  # not the held-back buffer of the start
    with trio.open_signal_receiver(*handled) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop.watch_signals, signals)
            try:
                await loop.run()
            finally:
                nursery.cancel_scope.cancel()
    for target in options.targets:
        if target.logfile is not None and target.logfn != "-":
            target.logfile.close()
        await disconnect(target.client)
    return 0
