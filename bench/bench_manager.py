"""Benchmark nuttrio's manager against Debian's upsmon 2.8.0, side by side, in one run.

Two questions, each answered for nuttrio and for upsmon with the same configuration, the
same ``.dev`` file edits and the same upsmon.conf timings:

1. **driver status change -> manager event** (OL <-> OB, i.e. ONBATT / ONLINE):

   a. nuttrio in-process: a :class:`~nuttrio.state.StateStore` with one UPS, whose status
      is changed through a :class:`~nuttrio.state.DriverLink` update, followed by
      :func:`nuttrio.mgmt.runner.run_manager` (a primary on ``ups@localhost``, so the UPS
      is followed through the store, not polled). Measured with Trio's real clock from the
      end of the update to the manager's ``send`` of the notification to a recording
      notifier (``--samples`` samples, 200 by default). A second row does the same with
      nuttrio's real :class:`~nuttrio.mgmt.notify.Notifier`, up to the moment the
      NOTIFYCMD script writes its timestamp (the cost of starting a process).
   b. ``python -m nuttrio --primary`` as a process (its own dummy-ups driver on a ``.dev``
      file, ``MONITOR ups@localhost:<its port> ... primary``), NOTIFYCMD writing a timestamp;
   c. Debian's ``upsmon`` (primary) against the real ``upsd`` + ``dummy-ups`` on the same
      kind of ``.dev`` file, NOTIFYCMD writing a timestamp.

   For (b) and (c) the ``.dev`` file is replaced (atomically, mtime moved on by a whole
   second); both drivers run with ``pollinterval = 1``, so the driver alone adds 0-1 s
   plus its 1 s update delay. A 5 ms ``GET VAR`` probe on the server splits the total
   into "edit -> server shows it" (the driver) and "server shows it -> NOTIFYCMD" (the
   manager). Each variant runs with upsmon's DEFAULT timings (no POLLFREQ lines:
   POLLFREQ 5, POLLFREQALERT 5) and with POLLFREQ 1 / POLLFREQALERT 1. Before each edit
   the bench waits a random 0..POLLFREQ s so the edits fall at random points of the
   poll cycle, and upsmon is started afresh for each sample: dummy-ups' 1 s update grid
   and upsmon's POLLFREQ grid would otherwise keep one fixed phase for the whole run.

2. **FSD at the server -> SHUTDOWNCMD on a secondary**: a fresh ``nuttrio --attach``
   server per repetition (FSD is latched), a ``nuttrio --secondary`` and an ``upsmon``
   secondary both logged in to it, then ``USERNAME``/``PASSWORD``/``FSD`` sent on a raw
   connection; timed until each secondary's SHUTDOWNCMD writes its timestamp (and until
   its FSD notification, i.e. the detection). Both read the same upsmon.conf timings:
   the defaults (POLLFREQ 5, FINALDELAY 5) and POLLFREQ 1 / FINALDELAY 0.

Everything runs on 127.0.0.1 (ports from ``tests.realnut.free_port``), in a temporary
directory. upsmon runs in the foreground with ``-p``; as root it gets a private tmpfs on
``/run/nut`` (``unshare --mount``) for its PID file, as in tests/test_e2e_shutdown.py.
Every wait is bounded, a SIGALRM watchdog bounds the whole run, and every process started
here is stopped on exit, on errors, on Ctrl-C and on SIGTERM.

Run from the repository root: ``python bench/bench_manager.py`` (``--quick`` for a smoke
run). Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import math
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from _common import SIGNALS_SEEN, Stop, watchdog

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import trio  # noqa: E402

from nuttrio import __version__ as NUTTRIO_VERSION  # noqa: E402
from nuttrio.mgmt.notify import Notifier  # noqa: E402
from nuttrio.mgmt.runner import run_manager  # noqa: E402
from nuttrio.nutconf import load_upsmon_conf  # noqa: E402
from nuttrio.state import StateStore  # noqa: E402
from tests.nuttrio_proc import NuttrioProcess  # noqa: E402
from tests.realnut import (  # noqa: E402
    ADMIN_PASSWORD,
    ADMIN_USER,
    HOST,
    MONITOR_PASSWORD,
    MONITOR_USER,
    NutConnection,
    RealNut,
    RealNutError,
    free_port,
    missing_nut_binaries,
    run_real_upsmon,
    upsmon_binary,
    write_nut_config,
)

UPS = "ups"
#: Seconds between two probes of the server's ups.status (the "server shows it" instant).
PROBE_INTERVAL = 0.005
#: upsmon's default timings (what an upsmon.conf without these lines means).
DEFAULT_POLLFREQ = 5
DEFAULT_FINALDELAY = 5
#: The notify types upsmon 2.8.0 knows; all go to syslog only (no wall), and the ones
#: measured also to NOTIFYCMD.
NOTIFY_TYPES = (
    "ONLINE",
    "ONBATT",
    "LOWBATT",
    "FSD",
    "COMMOK",
    "COMMBAD",
    "SHUTDOWN",
    "REPLBATT",
    "NOCOMM",
    "NOPARENT",
)
EXEC_TYPES = ("ONLINE", "ONBATT", "FSD")


class BenchError(RuntimeError):
    """A program misbehaved or a measurement could not be taken."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Timings and configuration files


@dataclass(frozen=True)
class Timing:
    """upsmon.conf timing lines shared by nuttrio and upsmon in one variant."""

    name: str
    pollfreq: int
    finaldelay: int
    lines: tuple[str, ...]

    @property
    def describe(self) -> str:
        if not self.lines:
            return (
                f"upsmon defaults (no lines: POLLFREQ {self.pollfreq}, POLLFREQALERT "
                f"{self.pollfreq}, FINALDELAY {self.finaldelay})"
            )
        return ", ".join(self.lines)


DEFAULTS = Timing("defaults", DEFAULT_POLLFREQ, DEFAULT_FINALDELAY, ())
FAST_POLL = Timing("POLLFREQ 1", 1, DEFAULT_FINALDELAY, ("POLLFREQ 1", "POLLFREQALERT 1"))
FAST_FSD = Timing(
    "POLLFREQ 1, FINALDELAY 0", 1, 0, ("POLLFREQ 1", "POLLFREQALERT 1", "FINALDELAY 0")
)


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="ascii")
    path.chmod(0o755)
    return path


def notify_script(directory: Path) -> tuple[Path, Path]:
    """A NOTIFYCMD appending ``<NOTIFYTYPE> <epoch seconds>`` to a log; (script, log)."""
    stamps = directory / "notify.log"
    script = write_script(directory / "notify.sh", f'echo "$NOTIFYTYPE $(date +%s.%N)" >> {stamps}')
    return script, stamps


def write_upsmon_conf(
    directory: Path, monitor: str, timing: Timing, notifycmd: Path, shutdown_log: Path
) -> Path:
    """upsmon.conf read alike by upsmon 2.8.0 and nuttrio (written with mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f"MONITOR {monitor}",
        f'SHUTDOWNCMD "echo shutdown $(date +%s.%N) >> {shutdown_log}"',
        f"NOTIFYCMD {notifycmd}",
        # upsmon runs with -p (everything as root): nuttrio's NOTIFYCMD runs as root too.
        "RUN_AS_USER root",
        *timing.lines,
        *(f"NOTIFYFLAG {t} {'SYSLOG+EXEC' if t in EXEC_TYPES else 'SYSLOG'}" for t in NOTIFY_TYPES),
    ]
    conf = directory / "upsmon.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="ascii")
    conf.chmod(0o600)
    return conf


def write_dev(path: Path, status: str) -> None:
    """Replace a dummy-ups ``.dev`` atomically; its mtime moves on by a whole second.

    Both dummy-ups and nuttrio's dummy driver re-read the file when ``st_mtime`` (whole
    seconds) differs from the last one seen; the rename means a driver never reads half
    a file.
    """
    old = path.stat().st_mtime if path.exists() else time.time() - 10
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"ups.status: {status}\nbattery.charge: 100\n", encoding="ascii")
    stamp = math.floor(old) + 1
    os.utime(tmp, (stamp, stamp))
    os.replace(tmp, path)


def nut_dir(directory: Path, port: int) -> tuple[Path, Path]:
    """A NUT config dir (upsd.conf, ups.conf with dummy-ups pollinterval 1, users); (dir, .dev)."""
    directory.mkdir(parents=True, exist_ok=True)
    dev = directory / "ups.dev"
    write_dev(dev, "OL")
    confdir = write_nut_config(
        directory, port=port, ups={UPS: {"port": str(dev), "pollinterval": 1}}
    )
    return confdir, dev


def read_stamps(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        words = line.split()
        if len(words) == 2:
            with contextlib.suppress(ValueError):
                out.append((words[0], float(words[1])))
    return out


# --------------------------------------------------------------------------
# Processes


@contextlib.contextmanager
def upsmon_process(confdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Debian's upsmon as tests/test_e2e_shutdown.py runs it (realnut.run_real_upsmon)."""
    try:
        with run_real_upsmon(confdir) as proc:
            yield proc
    except RealNutError as exc:
        raise BenchError(str(exc)) from exc


def nuttrio_process(role: str, confdir: Path, *extra: str) -> NuttrioProcess:
    return NuttrioProcess([f"--{role}", "--nut-config", str(confdir), *extra], timeout=30.0)


def ask(port: int, line: str) -> str:
    with NutConnection(port, timeout=5.0) as conn:
        return conn.request(line).decode("ascii", "replace").strip()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, RealNutError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def wait_logins(port: int, count: int, timeout: float = 20.0) -> None:
    want = f"NUMLOGINS {UPS} {count}"
    wait_until(lambda: ask(port, f"GET NUMLOGINS {UPS}") == want, timeout, want)


def wait_served(port: int, timeout: float = 20.0) -> None:
    def ok() -> bool:
        reply = ask(port, f"GET VAR {UPS} ups.status")
        return reply.startswith("VAR ") and '"WAIT"' not in reply

    wait_until(ok, timeout, f"{UPS} served on port {port}")


def check_alive(procs: dict[str, Callable[[], int | None]]) -> None:
    for name, poll in procs.items():
        code = poll()
        if code is not None:
            raise BenchError(f"{name} exited with status {code}")


# --------------------------------------------------------------------------
# Statistics


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (p99 of 10 samples is the maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def fmt(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if abs(seconds) < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# 1a. In-process: DriverLink update -> manager event


class RecordingNotifier:
    """A NotifySink that records when the manager sends each notification (Trio clock)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, float]] = []
        self._want: str | None = None
        self._hit: float | None = None
        self._event = trio.Event()

    def expect(self, notify_type: str) -> None:
        self._want, self._hit, self._event = notify_type, None, trio.Event()

    def send(self, type: str, system: str | None, detail: str = "") -> None:
        now = trio.current_time()
        self.sent.append((type, system, now))
        if type == self._want and self._hit is None:
            self._hit = now
            self._event.set()

    async def wall(self, message: str) -> None:
        await trio.lowlevel.checkpoint()

    async def wait(self) -> float:
        await self._event.wait()
        assert self._hit is not None
        return self._hit


#: The listener the in-process store stands behind: ``ups@localhost`` is local only there.
OWN_LISTENERS = [("127.0.0.1", 3493)]


@dataclass
class InProcessResult:
    to_event: list[float] = field(default_factory=list)
    to_notifycmd: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    error: str | None = None


async def _in_process(
    conf: Path, stamps: Path, samples: int, cmd_samples: int, rng: random.Random
) -> InProcessResult:
    res = InProcessResult()
    config = load_upsmon_conf(conf)
    store = StateStore()
    entry = store.add(UPS)
    recorder = RecordingNotifier()
    with entry.connect() as link:
        with link.update() as u:
            u.set("ups.status", "OL")
            u.set("battery.charge", "100")
            u.dumped = True
        status = "OL"
        async with trio.open_nursery() as nursery:
            manager = await nursery.start(
                partial(run_manager, config, recorder, store=store, listeners=OWN_LISTENERS)
            )
            await trio.sleep(0.05)  # the first reading (OL: no notification) is taken
            with trio.fail_after(30 + 0.1 * samples):
                for _ in range(samples):
                    status = "OB" if status == "OL" else "OL"
                    recorder.expect("ONBATT" if status == "OB" else "ONLINE")
                    await trio.sleep(rng.uniform(0.002, 0.01))
                    start = trio.current_time()
                    with link.update() as u:
                        u.set("ups.status", status)
                    with trio.fail_after(5):
                        res.to_event.append(await recorder.wait() - start)
            if manager.shutdown_started is not None:
                res.unexpected.append("the manager started a shutdown")
            nursery.cancel_scope.cancel()
        res.unexpected += [t for t, _, _ in recorder.sent if t not in ("ONBATT", "ONLINE")]

        # The same with nuttrio's own Notifier, up to the NOTIFYCMD script's timestamp. A
        # new manager starts from OL, whose first reading is not notified (as upsmon).
        with link.update() as u:
            u.set("ups.status", "OL")
        status = "OL"
        notifier = Notifier(config)
        async with trio.open_nursery() as nursery:
            await nursery.start(notifier.run)
            await nursery.start(
                partial(run_manager, config, notifier, store=store, listeners=OWN_LISTENERS)
            )
            await trio.sleep(0.2)
            seen = len(read_stamps(stamps))
            if seen:
                raise BenchError(f"unexpected NOTIFYCMD runs at start: {read_stamps(stamps)}")
            with trio.fail_after(120):
                for _ in range(cmd_samples):
                    status = "OB" if status == "OL" else "OL"
                    want = "ONBATT" if status == "OB" else "ONLINE"
                    await trio.sleep(rng.uniform(0.02, 0.05))
                    start = time.time()
                    with link.update() as u:
                        u.set("ups.status", status)
                    with trio.fail_after(10):
                        while True:
                            lines = read_stamps(stamps)
                            if len(lines) > seen:
                                break
                            await trio.sleep(0.002)
                    seen = len(lines)
                    kind, stamp = lines[-1]
                    if kind != want:
                        raise BenchError(f"NOTIFYCMD got {kind}, expected {want}")
                    res.to_notifycmd.append(stamp - start)
            nursery.cancel_scope.cancel()
    return res


def run_trio(fn: Callable[..., Awaitable[InProcessResult]], *args: object) -> InProcessResult:
    """``trio.run(fn, *args)`` with the run's signals handled the Trio way.

    A KeyboardInterrupt raised by our own handler at an arbitrary point can leave Trio's
    run loop waiting forever, so while Trio runs SIGINT gets Python's default handler
    (which Trio replaces with its own), and SIGTERM/SIGALRM cancel the run and raise
    :class:`Stop` once it has unwound.
    """

    async def guarded() -> InProcessResult:
        caught: list[int] = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGALRM) as signals:
                    async for signum in signals:
                        caught.append(signum)
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch)
            result = await fn(*args)
            nursery.cancel_scope.cancel()
        if caught:
            name = signal.Signals(caught[0]).name
            SIGNALS_SEEN.append(name)
            raise Stop(f"stopped by {name}")
        return result

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            return trio.run(guarded)
        except BaseExceptionGroup as group:  # Trio's nurseries wrap everything in groups
            leaves = list(_leaves(group))
            for kind in (KeyboardInterrupt, Stop):
                for leaf in leaves:
                    if isinstance(leaf, kind):
                        raise leaf from group
            if len(leaves) == 1:
                raise leaves[0] from group
            raise
    except KeyboardInterrupt:
        SIGNALS_SEEN.append("SIGINT")
        raise
    finally:
        signal.signal(signal.SIGINT, old)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def run_in_process(workdir: Path, samples: int, cmd_samples: int, seed: int) -> InProcessResult:
    workdir.mkdir(parents=True, exist_ok=True)
    script, stamps = notify_script(workdir)
    conf = write_upsmon_conf(
        workdir,
        f"{UPS}@localhost 1 {ADMIN_USER} {ADMIN_PASSWORD} primary",
        DEFAULTS,
        script,
        workdir / "shutdown.log",
    )
    # The notifications' SYSLOG lines would go to stderr through logging's last resort.
    logging.getLogger("nuttrio").setLevel(logging.ERROR)
    log(f"1a: in-process, {samples} DriverLink updates (+{cmd_samples} with NOTIFYCMD)")
    try:
        return run_trio(_in_process, conf, stamps, samples, cmd_samples, random.Random(seed))
    except (BenchError, trio.TooSlowError) as exc:
        return InProcessResult(error=f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------
# 1b/1c. Processes: .dev edit -> NOTIFYCMD


@dataclass
class NotifyRun:
    label: str
    timing: Timing
    edit_to_visible: list[float] = field(default_factory=list)
    visible_to_notify: list[float] = field(default_factory=list)
    edit_to_notify: list[float] = field(default_factory=list)
    error: str | None = None


#: Per-sample session: a context manager yielding more processes to watch (name -> poll).
Session = Callable[[], contextlib.AbstractContextManager[dict[str, Callable[[], int | None]]]]


@contextlib.contextmanager
def no_session() -> Iterator[dict[str, Callable[[], int | None]]]:
    yield {}


def probe_until(
    probe: NutConnection, status: str, deadline: float, stamps: Path, seen: int
) -> float:
    """Probe ``ups.status`` every PROBE_INTERVAL; return when the server first showed it.

    The instant is the midpoint between the replies of the last probe that missed and the
    first one that hit (so it is known to about +-PROBE_INTERVAL/2).
    """
    want = f'VAR {UPS} ups.status "{status}"'
    last_miss = time.time()
    while True:
        reply = probe.request(f"GET VAR {UPS} ups.status").decode("ascii", "replace").strip()
        now = time.time()
        if reply == want:
            return (last_miss + now) / 2
        last_miss = now
        if time.monotonic() > deadline:
            got = read_stamps(stamps)[seen:]
            raise BenchError(f"{status} never reached the server (last {reply!r}; NOTIFYCMD {got})")
        time.sleep(PROBE_INTERVAL)


def measure_notify(
    run: NotifyRun,
    port: int,
    dev: Path,
    stamps: Path,
    samples: int,
    rng: random.Random,
    alive: dict[str, Callable[[], int | None]],
    session: Session = no_session,
) -> None:
    """Edit the .dev OL <-> OB ``samples`` times; time the server and the NOTIFYCMD.

    ``session`` is entered around each sample (upsmon is started afresh for each one, see
    :func:`upsmon_primary_run`); the random wait before the edit starts once it is in.
    """
    pollfreq = run.timing.pollfreq
    status = "OL"
    with NutConnection(port, timeout=5.0) as probe:
        for index in range(samples):
            status = "OB" if status == "OL" else "OL"
            want = "ONBATT" if status == "OB" else "ONLINE"
            with session() as more:
                watch = {**alive, **more}
                time.sleep(rng.uniform(0.0, pollfreq))  # a random point of the poll cycle
                check_alive(watch)
                seen = len(read_stamps(stamps))
                edit = time.time()
                write_dev(dev, status)
                deadline = time.monotonic() + 2 * pollfreq + 8
                visible = probe_until(probe, status, deadline, stamps, seen)
                while len(lines := read_stamps(stamps)) <= seen:
                    if time.monotonic() > deadline:
                        check_alive(watch)
                        raise BenchError(f"sample {index + 1}: no {want} NOTIFYCMD")
                    time.sleep(PROBE_INTERVAL)
                time.sleep(0.05)  # a second, unexpected notification would show by now
                lines = read_stamps(stamps)
                if lines[seen][0] != want or len(lines) > seen + 1:
                    got = lines[seen:]
                    raise BenchError(f"sample {index + 1}: NOTIFYCMD got {got}, wanted {want}")
                stamp = lines[seen][1]
            run.edit_to_visible.append(visible - edit)
            run.visible_to_notify.append(stamp - visible)
            run.edit_to_notify.append(stamp - edit)
    log(f"   median .dev edit -> NOTIFYCMD {fmt(median(run.edit_to_notify))}")


def nuttrio_primary_run(workdir: Path, timing: Timing, samples: int, seed: int) -> NotifyRun:
    """1b: one ``nuttrio --primary`` for all samples (its local path has no poll phase)."""
    run = NotifyRun("(b) nuttrio --primary process", timing)
    log(f"1b: nuttrio --primary, {timing.name}, {samples} .dev edits")
    try:
        port = free_port()
        confdir, dev = nut_dir(workdir, port)
        script, stamps = notify_script(workdir)
        write_upsmon_conf(
            confdir,
            f"{UPS}@localhost:{port} 1 {ADMIN_USER} {ADMIN_PASSWORD} primary",
            timing,
            script,
            workdir / "shutdown.log",
        )
        with nuttrio_process("primary", confdir, "--listen", f"{HOST}:{port}") as proc:
            assert proc.proc is not None
            wait_served(port)
            wait_logins(port, 1)
            time.sleep(1.0)
            alive = {"nuttrio --primary": proc.proc.poll}
            measure_notify(run, port, dev, stamps, samples, random.Random(seed), alive)
    except (BenchError, RealNutError, RuntimeError, OSError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        log(f"   failed: {run.error}")
    return run


def upsmon_primary_run(workdir: Path, timing: Timing, samples: int, seed: int) -> NotifyRun:
    """1c: real upsd + dummy-ups for all samples, a fresh upsmon for each sample.

    dummy-ups publishes on a ~1 s grid and upsmon polls on a POLLFREQ grid; both are
    whole-second timers, so within one upsmon run their phase hardly moves and every
    sample would see the same "server -> next poll" offset (always ~0.12 s, say, with
    POLLFREQ 1). Starting upsmon afresh for each sample draws a new phase each time, as
    across many installations.
    """
    run = NotifyRun("(c) upsmon primary + upsd", timing)
    log(f"1c: upsmon primary + real upsd/dummy-ups, {timing.name}, {samples} .dev edits")
    try:
        port = free_port()
        confdir, dev = nut_dir(workdir / "nut", port)
        script, stamps = notify_script(workdir)
        mon = write_upsmon_conf(
            workdir / "upsmon",
            f"{UPS}@{HOST}:{port} 1 {ADMIN_USER} {ADMIN_PASSWORD} primary",
            timing,
            script,
            workdir / "shutdown.log",
        ).parent

        @contextlib.contextmanager
        def fresh_upsmon() -> Iterator[dict[str, Callable[[], int | None]]]:
            wait_logins(port, 0)
            with upsmon_process(mon) as upsmon:
                wait_logins(port, 1)
                time.sleep(0.5)  # its first poll (and any start-up notification) is done
                yield {"upsmon": upsmon.poll}

        with RealNut(confdir) as nut:
            assert nut.upsd is not None
            alive = {"upsd": nut.upsd.poll, "dummy-ups": nut.driver_procs[UPS].poll}
            rng = random.Random(seed)
            measure_notify(run, port, dev, stamps, samples, rng, alive, fresh_upsmon)
    except (BenchError, RealNutError, RuntimeError, OSError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        log(f"   failed: {run.error}")
    return run


# --------------------------------------------------------------------------
# 2. FSD at the server -> SHUTDOWNCMD on a secondary


@dataclass
class FsdRun:
    timing: Timing
    #: "nuttrio"/"upsmon" -> seconds from FSD to the FSD NOTIFYCMD stamp (the detection)
    detect: dict[str, list[float]] = field(default_factory=lambda: {"nuttrio": [], "upsmon": []})
    #: "nuttrio"/"upsmon" -> seconds from FSD to the SHUTDOWNCMD stamp
    shutdown: dict[str, list[float]] = field(default_factory=lambda: {"nuttrio": [], "upsmon": []})
    exit_codes: dict[str, list[int | None]] = field(
        default_factory=lambda: {"nuttrio": [], "upsmon": []}
    )
    errors: list[str] = field(default_factory=list)


def set_fsd(port: int) -> float:
    """USERNAME/PASSWORD/FSD on a raw connection; return the time the request was sent."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(f"USERNAME {ADMIN_USER}\nPASSWORD {ADMIN_PASSWORD}\n".encode("ascii"))
        data = b""
        while data.count(b"\n") < 2:
            chunk = sock.recv(100)
            if not chunk:
                break
            data += chunk
        if data != b"OK\nOK\n":
            raise BenchError(f"login for FSD refused: {data!r}")
        sent = time.time()
        sock.sendall(f"FSD {UPS}\n".encode("ascii"))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(100)
            if not chunk:
                break
            data += chunk
        if data != b"OK FSD-SET\n":
            raise BenchError(f"FSD refused: {data!r}")
        sock.sendall(b"LOGOUT\n")
        return sent


def fsd_repetition(workdir: Path, timing: Timing, rng: random.Random, run: FsdRun) -> None:
    port = free_port()
    server_dir, _ = nut_dir(workdir / "server", port)
    managers = {}
    monitor = f"{UPS}@{HOST}:{port} 1 {MONITOR_USER} {MONITOR_PASSWORD} secondary"
    for name in ("nuttrio", "upsmon"):
        d = workdir / name
        d.mkdir(parents=True)
        script, stamps = notify_script(d)
        write_upsmon_conf(d, monitor, timing, script, d / "shutdown.log")
        managers[name] = (d, stamps, d / "shutdown.log")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(nuttrio_process("attach", server_dir))
        wait_served(port)
        secondary = stack.enter_context(nuttrio_process("secondary", managers["nuttrio"][0]))
        upsmon = stack.enter_context(upsmon_process(managers["upsmon"][0]))
        assert server.proc is not None
        assert secondary.proc is not None
        procs = {"nuttrio": secondary.proc.poll, "upsmon": upsmon.poll}
        wait_logins(port, 2)
        time.sleep(1.0 + rng.uniform(0.0, timing.pollfreq))  # a random point of the cycle
        check_alive({"nuttrio --attach": server.proc.poll, **procs})
        fsd = set_fsd(port)
        limit = timing.pollfreq + timing.finaldelay + 10

        def both_done() -> bool:
            return all(read_stamps(shut) for _, _, shut in managers.values())

        try:
            wait_until(both_done, limit, "both SHUTDOWNCMDs")
        except BenchError as exc:
            run.errors.append(str(exc))
        for name, (_, stamps, shut) in managers.items():
            done = read_stamps(shut)
            fsd_notes = [s for t, s in read_stamps(stamps) if t == "FSD"]
            if done:
                run.shutdown[name].append(done[0][1] - fsd)
            if fsd_notes:
                run.detect[name].append(fsd_notes[0] - fsd)
        # Both exit after SHUTDOWNCMD (SHUTDOWNEXIT yes); give them a moment to do so.
        with contextlib.suppress(BenchError):
            wait_until(lambda: all(p() is not None for p in procs.values()), 5, "exits")
        for name, poll in procs.items():
            run.exit_codes[name].append(poll())


def run_fsd(workdir: Path, timing: Timing, repeats: int, seed: int) -> FsdRun:
    run = FsdRun(timing)
    rng = random.Random(seed)
    for rep in range(repeats):
        log(f"2: FSD -> SHUTDOWNCMD, {timing.name}, repetition {rep + 1}/{repeats}")
        try:
            fsd_repetition(workdir / f"rep{rep}", timing, rng, run)
        except (BenchError, RealNutError, RuntimeError, OSError) as exc:
            run.errors.append(f"repetition {rep + 1}: {type(exc).__name__}: {exc}")
            log(f"   failed: {run.errors[-1]}")
            continue
        last = {n: fmt(v[-1]) if v else "-" for n, v in run.shutdown.items()}
        log(f"   SHUTDOWNCMD after FSD: nuttrio {last['nuttrio']}, upsmon {last['upsmon']}")
    return run


# --------------------------------------------------------------------------
# Report


def stats_row(label: str, values: Sequence[float], extra: str = "") -> list[str]:
    if not values:
        return [label, "0", "-", "-", "-", "-", "-", extra]
    return [
        label,
        str(len(values)),
        fmt(min(values)),
        fmt(statistics.median(values)),
        fmt(statistics.fmean(values)),
        fmt(quantile(values, 0.99)),
        fmt(max(values)),
        extra,
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *rest, cells[-1]]).rstrip()

    return [line(header), "  ".join("-" * w for w in widths).rstrip(), *(line(r) for r in rows)]


def ratio(upsmon: float | None, nuttrio: float | None) -> str:
    if upsmon is None or nuttrio is None or nuttrio <= 0:
        return "-"
    value = upsmon / nuttrio
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"


NOTES_1 = """\
(a) is timed inside one process with Trio's clock; (b) and (c) with the wall clock against
the NOTIFYCMD script's `date +%s.%N`. The .dev edits include the driver: dummy-ups and
nuttrio's dummy driver both run with pollinterval 1 and work on the file 1 s into each
update, so 'edit -> server shows it' is ~0-1 s (more for an edit landing in an update).
'server shows it' = midpoint of the last missing and the first hitting GET VAR probe
({probe:.0f} ms apart), known to a few ms. nuttrio's manager reads the same store as its
server, so its 'server shows it -> NOTIFYCMD' is the NOTIFYCMD start-up cost +- that.
upsmon is started afresh for each (c) sample (a random poll phase each time); the
'store/upsd change' rows of the summary use (c)'s 'server shows it -> NOTIFYCMD'."""

NOTES_2 = """\
The secondaries poll the server, so for both FSD -> SHUTDOWNCMD = wait for the next poll
(0..POLLFREQ) + FINALDELAY; 'FSD notify' (the FSD NOTIFYCMD's stamp) is the detection. Both
are started back to back (nuttrio, then upsmon a few ms later) and log in at once, so they
poll nearly in phase: equal numbers mean equal behaviour, not luck. With FINALDELAY 0 a
nuttrio secondary exits (SHUTDOWNEXIT yes) right after SHUTDOWNCMD and kills a NOTIFYCMD
still running, so its FSD stamp can be missing; upsmon's forked NOTIFYCMD outlives it."""

STATS_HEADER = ("variant", "n", "min", "median", "mean", "p99", "max", "")


@dataclass
class Report:
    in_process: InProcessResult | None = None
    notify: list[NotifyRun] = field(default_factory=list)
    fsd: list[FsdRun] = field(default_factory=list)


def render(rep: Report) -> str:
    out: list[str] = []
    summary: list[list[str]] = []
    if rep.in_process is not None or rep.notify:
        out.append("1. driver status change -> manager event (OL <-> OB: ONBATT / ONLINE)")
        out.append("")
        rows: list[list[str]] = []
        ip = rep.in_process
        if ip is not None:
            if ip.error:
                rows.append(["(a) nuttrio in-process", "", "", "", "", "", "", ip.error])
            else:
                rows.append(
                    stats_row(
                        "(a) nuttrio in-process: DriverLink update -> manager Notify",
                        ip.to_event,
                        "trio.current_time()",
                    )
                )
                rows.append(
                    stats_row(
                        "(a) nuttrio in-process: DriverLink update -> NOTIFYCMD stamp",
                        ip.to_notifycmd,
                        "real Notifier, /bin/sh script",
                    )
                )
        for run in rep.notify:
            tag = f"{run.label} [{run.timing.name}]"
            if run.error:
                rows.append([tag, "", "", "", "", "", "", run.error])
                continue
            rows.append(stats_row(f"{tag}: .dev edit -> NOTIFYCMD", run.edit_to_notify))
            rows.append(stats_row(f"{tag}:   .dev edit -> server shows it", run.edit_to_visible))
            rows.append(stats_row(f"{tag}:   server shows it -> NOTIFYCMD", run.visible_to_notify))
        out += table(STATS_HEADER, rows)
        out.append("")
        out += [f"   {line}" for line in NOTES_1.format(probe=PROBE_INTERVAL * 1e3).splitlines()]
        if ip is not None and ip.unexpected:
            out.append(f"   in-process: unexpected notifications: {sorted(set(ip.unexpected))}")
        out.append("")
        by_key = {(r.label[:3], r.timing.name): r for r in rep.notify if not r.error}
        for timing in (DEFAULTS, FAST_POLL):
            nut = by_key.get(("(b)", timing.name))
            mon = by_key.get(("(c)", timing.name))
            if nut is None or mon is None:
                continue
            for what, attr in (
                (".dev edit -> NOTIFYCMD", "edit_to_notify"),
                ("server shows change -> NOTIFYCMD", "visible_to_notify"),
            ):
                n, m = median(getattr(nut, attr)), median(getattr(mon, attr))
                summary.append(
                    [f"{what} [{timing.name}]", "--primary", fmt(n), fmt(m), ratio(m, n)]
                )
            if ip is not None and not ip.error:
                m = median(mon.visible_to_notify)
                for what, values in (
                    ("store/upsd change -> NOTIFYCMD", ip.to_notifycmd),
                    ("store change -> Notify call (upsmon: NOTIFYCMD)", ip.to_event),
                ):
                    n = median(values)
                    summary.append(
                        [f"{what} [{timing.name}]", "in-process", fmt(n), fmt(m), ratio(m, n)]
                    )
    if rep.fsd:
        out.append("2. FSD set at a nuttrio --attach server -> SHUTDOWNCMD on a secondary")
        out.append("")
        rows = []
        for run in rep.fsd:
            for name in ("nuttrio", "upsmon"):
                who = "nuttrio --secondary" if name == "nuttrio" else "upsmon secondary"
                tag = f"{who} [{run.timing.name}]"
                rows.append(stats_row(f"{tag}: FSD -> SHUTDOWNCMD", run.shutdown[name]))
                rows.append(stats_row(f"{tag}:   FSD -> FSD notify", run.detect[name]))
        out += table(STATS_HEADER, rows)
        for run in rep.fsd:
            for err in run.errors:
                out.append(f"   [{run.timing.name}] error: {err}")
            codes = {n: c for n, c in run.exit_codes.items() if any(x != 0 for x in c)}
            if codes:
                out.append(f"   [{run.timing.name}] exit statuses after SHUTDOWNCMD: {codes}")
            n = median(run.shutdown["nuttrio"])
            m = median(run.shutdown["upsmon"])
            summary.append(
                [
                    f"FSD -> SHUTDOWNCMD [{run.timing.name}]",
                    "--secondary",
                    fmt(n),
                    fmt(m),
                    ratio(m, n),
                ]
            )
        out.append("")
        for run in rep.fsd:
            for name, found in run.detect.items():
                missing = len(run.shutdown[name]) - len(found)
                if missing > 0:
                    out.append(
                        f"   [{run.timing.name}] {name}: no FSD NOTIFYCMD stamp in {missing} of "
                        f"{len(run.shutdown[name])} repetitions (see NOTES_2)"
                    )
        out += [f"   {line}" for line in NOTES_2.splitlines()]
        out.append("")
    if summary:
        out.append(
            "Summary: medians, nuttrio vs upsmon (ratio = upsmon / nuttrio; >1: nuttrio faster)"
        )
        out.append("")
        out += table(
            ("measure", "nuttrio as", "nuttrio", "upsmon", "ratio", ""),
            [[*row, ""] for row in summary],
        )
    out.append("")
    out.append(
        "Timings: "
        + "; ".join(f"[{t.name}] = {t.describe}" for t in (DEFAULTS, FAST_POLL, FAST_FSD))
    )
    return "\n".join(out)


def machine_description(args: argparse.Namespace) -> list[str]:
    upsmon = upsmon_binary()
    version = "?"
    if upsmon is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            head = subprocess.run(
                [str(upsmon), "-h"], capture_output=True, text=True, timeout=5, check=False
            ).stdout.splitlines()
            version = head[0] if head else "?"
    load1, _, _ = os.getloadavg()
    return [
        f"bench_manager.py  {dt.datetime.now().isoformat(timespec='seconds')}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"load average {load1:.2f} at start",
        f"nuttrio {NUTTRIO_VERSION} on Python {platform.python_version()}; "
        f"{version} ({upsmon}); upsd/dummy-ups from /lib/nut",
        f"samples: in-process {args.samples} (+{args.cmd_samples} with NOTIFYCMD), "
        f".dev edits {args.process_samples} per variant, FSD repetitions {args.repeats}, "
        f"seed {args.seed}",
    ]


# --------------------------------------------------------------------------
# Main


def budget_for(args: argparse.Namespace) -> float:
    total = 60.0 + 0.1 * args.samples + 1.0 * args.cmd_samples
    if "1" in args.parts:
        for t in (DEFAULTS, FAST_POLL):
            # start-up, then per sample: random wait + driver + worst detection + margin
            total += 2 * (30 + args.process_samples * (2 * t.pollfreq + 10))
    if "2" in args.parts:
        for t in (DEFAULTS, FAST_FSD):
            total += args.repeats * (40 + 2 * t.pollfreq + t.finaldelay + 15)
    return total


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark nuttrio's manager against Debian's upsmon 2.8.0 on 127.0.0.1: "
        "status change -> notification, and FSD -> SHUTDOWNCMD on a secondary."
    )
    parser.add_argument("--samples", type=int, default=200, help="in-process samples (default 200)")
    parser.add_argument(
        "--cmd-samples",
        type=int,
        default=None,
        help="in-process samples through the real Notifier + NOTIFYCMD (default: samples/4)",
    )
    parser.add_argument(
        "--process-samples",
        type=int,
        default=10,
        help=".dev edits per process variant (default 10)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="FSD repetitions per timing (default 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 50 in-process samples, 3 .dev edits per variant, 1 FSD repetition",
    )
    parser.add_argument("--parts", default="12", help="which parts to run: 1, 2 or 12 (default 12)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random waits")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = min(args.samples, 50)
        args.process_samples = min(args.process_samples, 3)
        args.repeats = min(args.repeats, 1)
    if args.cmd_samples is None:
        args.cmd_samples = max(1, args.samples // 4)
    if not 1 <= args.samples <= 100_000:
        parser.error("--samples must be between 1 and 100000")
    if not 1 <= args.cmd_samples <= 1000:
        parser.error("--cmd-samples must be between 1 and 1000")
    if not 1 <= args.process_samples <= 200:
        parser.error("--process-samples must be between 1 and 200")
    if not 1 <= args.repeats <= 50:
        parser.error("--repeats must be between 1 and 50")
    if not args.parts or set(args.parts) - {"1", "2"}:
        parser.error("--parts must be 1, 2 or 12")
    return args


def run_all(args: argparse.Namespace, workdir: Path) -> Report:
    rep = Report()
    if "1" in args.parts:
        rep.in_process = run_in_process(
            workdir / "inproc", args.samples, args.cmd_samples, args.seed
        )
        for timing in (DEFAULTS, FAST_POLL):
            slug = timing.name.replace(" ", "").replace(",", "_")
            rep.notify.append(
                nuttrio_primary_run(workdir / f"b-{slug}", timing, args.process_samples, args.seed)
            )
            rep.notify.append(
                upsmon_primary_run(workdir / f"c-{slug}", timing, args.process_samples, args.seed)
            )
    if "2" in args.parts:
        for index, timing in enumerate((DEFAULTS, FAST_FSD)):
            rep.fsd.append(run_fsd(workdir / f"fsd{index}", timing, args.repeats, args.seed))
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_nut_binaries()
    if upsmon_binary() is None:
        missing.append("upsmon (/lib/nut/upsmon)")
    if missing:
        print(f"bench: real NUT not available: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    header = machine_description(args)
    budget = budget_for(args)
    log(f"watchdog: {budget:.0f} s for the whole run")
    started = time.monotonic()
    try:
        with (
            watchdog(budget),
            tempfile.TemporaryDirectory(prefix="nbm") as tmp,
        ):
            rep = run_all(args, Path(tmp))
    except (Stop, KeyboardInterrupt) as exc:
        seen = ", ".join(SIGNALS_SEEN) or "Ctrl-C"
        print(f"bench: interrupted by {seen} ({exc}); all processes stopped", file=sys.stderr)
        return 130
    header.append(f"run time {time.monotonic() - started:.0f} s")
    print("\n".join(header))
    print()
    print(render(rep))
    failed = (
        (rep.in_process is not None and rep.in_process.error)
        or any(r.error for r in rep.notify)
        or any(r.errors for r in rep.fsd)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
