"""Benchmark nuttrio against the real NUT upsd 2.8.0 + dummy-ups, side by side.

One run writes a NUT configuration directory (one ``dummy-ups`` UPS named ``ups`` reading a
20-variable ``.dev`` file) into a temporary directory, starts the real ``upsd`` with its
``dummy-ups`` (through ``tests/realnut.py``) and nuttrio (through ``tests/nuttrio_proc.py``,
``python -m nuttrio --attach --nut-config DIR --listen 127.0.0.1:PORT``) on that same
directory, measures both servers the same way, one after the other, and prints a table
with both numbers and the ratio nuttrio/upsd.

Measurements (see bench/README.md for what each number means):

1. ``GET VAR`` request/response rate on one connection, closed loop;
2. ``GET VAR`` throughput over 10 and 100 concurrent connections (closed loop per
   connection, one request in flight per connection);
3. ``LIST VAR`` latency (median, p99) on one connection, closed loop;
4. wall time of ``upsc ups@127.0.0.1:PORT`` and ``upsc ups@... ups.status`` (median);
5. resident memory (VmRSS) of upsd + dummy-ups vs nuttrio, after the load;
6. server CPU time (utime + stime) per 10,000 ``GET VAR`` requests.

The load generator is a single-threaded epoll client running in its own forked process
(``--client-procs`` spreads the connections over several); it measures its own CPU time
so the output states the client's ceiling. All traffic goes to 127.0.0.1. Every loop is
bounded in time and in count, a watchdog alarm ends the whole run if it overruns, and all
processes are stopped on exit, on exceptions, on Ctrl-C and on SIGTERM.

Run from the repository root: ``python bench/bench_server.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import multiprocessing as mp
import os
import platform
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import SIGNALS_SEEN, Stop, watchdog

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.nuttrio_proc import NuttrioProcess  # noqa: E402
from tests.realnut import (  # noqa: E402
    HOST,
    RealNut,
    RealNutError,
    free_port,
    missing_nut_binaries,
    upsc_binary,
    upsd_binary,
    write_dev_file,
    write_nut_config,
)

UPS = "ups"
GET_REQUEST = f"GET VAR {UPS} ups.status\n".encode("ascii")
LIST_REQUEST = f"LIST VAR {UPS}\n".encode("ascii")
LIST_END = f"END LIST VAR {UPS}\n".encode("ascii")

#: The 20 variables of the ``.dev`` file. dummy-ups adds 11 more (``driver.*``,
#: ``device.type`` and ``device.mfr``/``device.model``/``device.serial`` copied from
#: ``ups.*``), so ``LIST VAR`` returns 31 lines (the count is printed in the details).
DEV_VALUES: dict[str, str] = {
    "battery.charge": "100",
    "battery.charge.low": "10",
    "battery.runtime": "2400",
    "battery.voltage": "27.2",
    "battery.voltage.nominal": "24",
    "battery.type": "PbAc",
    "input.voltage": "230.4",
    "input.voltage.nominal": "230",
    "input.frequency": "50.0",
    "output.voltage": "230.0",
    "output.frequency": "50.0",
    "ups.realpower.nominal": "900",
    "ups.test.result": "No test initiated",
    "ups.load": "23",
    "ups.mfr": "Bench",
    "ups.model": "Bench UPS 1500",
    "ups.serial": "BENCH0001",
    "ups.firmware": "1.2.3",
    "ups.beeper.status": "enabled",
    "ups.status": "OL",
}

#: Hard caps that keep every loop bounded whatever the options.
MAX_GET_REQUESTS = 5_000_000
MAX_LIST_REQUESTS = 100_000
STALL_SECONDS = 5.0
SOCKET_TIMEOUT = 5.0
SERVERS = ("upsd", "nuttrio")


class BenchError(RuntimeError):
    """A server misbehaved or a measurement could not be taken."""


# --------------------------------------------------------------------------
# /proc readers


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` line (``VmRSS``, ``VmHWM``...) of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise BenchError(f"no {key} in /proc/{pid}/status")


def total_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def machine_busy() -> float:
    """CPU seconds all CPUs together spent busy (user..softirq plus steal), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float, threshold: float = 15.0) -> float:
    """Wait up to ``limit`` seconds for 3 quiet 1-s windows in a row; return the last load %."""
    deadline = time.monotonic() + limit
    quiet = 0
    while True:
        load = other_load()
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 3 or time.monotonic() >= deadline:
            return load
        if quiet == 0:
            log(f"machine busy ({load:.0f}% of a CPU); waiting for it to be quiet")


def other_load(window: float = 1.0) -> float:
    """Share of one CPU (in %) that the whole machine is busy over ``window`` seconds."""
    busy0, t0 = machine_busy(), time.monotonic()
    time.sleep(window)
    return (machine_busy() - busy0) / (time.monotonic() - t0) * 100


# --------------------------------------------------------------------------
# Load generator (runs in forked worker processes)


@dataclass
class LoadResult:
    requests: int
    elapsed: float
    client_cpu: float


def _rusage_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def closed_loop(
    socks: Sequence[socket.socket],
    seconds: float,
    max_requests: int,
    request: bytes = GET_REQUEST,
) -> LoadResult:
    """Closed loop on every socket: send one request, wait for its one-line reply, repeat.

    Stops sending after ``seconds`` or ``max_requests`` replies, then collects the replies
    still in flight. Raises :class:`BenchError` on an error reply, a closed connection or
    ``STALL_SECONDS`` without any reply.
    """
    ep = select.epoll()
    by_fd: dict[int, socket.socket] = {}
    partial: dict[int, bytes] = {}
    for sock in socks:
        sock.setblocking(False)
        ep.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = sock
        partial[sock.fileno()] = b""
    try:
        cpu0 = _rusage_cpu()
        t0 = time.perf_counter()
        deadline = t0 + seconds
        for sock in socks:
            sock.send(request)
        in_flight = len(socks)
        sent = len(socks)
        done = 0
        last_progress = t0
        while in_flight:
            events = ep.poll(0.5)
            now = time.perf_counter()
            if not events:
                if now - last_progress > STALL_SECONDS:
                    raise BenchError(f"no reply for {STALL_SECONDS} s ({in_flight} in flight)")
                continue
            last_progress = now
            sending = now < deadline and sent < max_requests
            for fd, _mask in events:
                sock = by_fd[fd]
                data = sock.recv(65536)
                if not data:
                    raise BenchError("server closed the connection")
                if partial[fd]:
                    data = partial[fd] + data
                    partial[fd] = b""
                if not data.endswith(b"\n"):
                    partial[fd] = data
                    continue
                if not data.startswith(b"VAR "):
                    raise BenchError(f"unexpected reply {data[:200]!r}")
                done += 1
                in_flight -= 1
                if sending:
                    sock.send(request)
                    in_flight += 1
                    sent += 1
        elapsed = time.perf_counter() - t0
        return LoadResult(done, elapsed, _rusage_cpu() - cpu0)
    finally:
        ep.close()


def _open_connections(port: int, count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _load_worker(
    port: int,
    conns: int,
    seconds: float,
    max_requests: int,
    go: mp.synchronize.Event,
    results: mp.Queue,
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        socks = _open_connections(port, conns)
        try:
            results.put(("ready", None))
            if not go.wait(30.0):
                raise BenchError("start signal never came")
            res = closed_loop(socks, seconds, max_requests)
        finally:
            for sock in socks:
                sock.close()
        results.put(("done", (res.requests, res.elapsed, res.client_cpu)))
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        results.put(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class GetRun:
    requests: int
    elapsed: float
    client_cpu: float
    server_cpu: float
    client_procs: int
    machine_cpu: float  # CPU seconds the whole machine was busy during the run

    @property
    def other_cpu(self) -> float:
        """CPU seconds used by neither the server nor the load client (others, kernel)."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed

    @property
    def server_cpu_per_10k(self) -> float:
        return self.server_cpu / self.requests * 10_000

    @property
    def client_us_per_request(self) -> float:
        return self.client_cpu / self.requests * 1e6


def get_var_load(
    port: int,
    conns: int,
    seconds: float,
    server_pids: Sequence[int],
    procs: int,
) -> GetRun:
    """Run the closed-loop GET VAR load with ``conns`` connections over ``procs`` processes.

    The server's CPU time is sampled once every worker has connected (just before the start
    signal) and again when every worker has reported its result.
    """
    procs = max(1, min(procs, conns))
    ctx = mp.get_context("fork")
    go = ctx.Event()
    results: mp.Queue = ctx.Queue()
    per_proc = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    cap = MAX_GET_REQUESTS // procs
    workers = [
        ctx.Process(
            target=_load_worker,
            args=(port, n, seconds, cap, go, results),
            daemon=True,
        )
        for n in per_proc
    ]
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            kind, payload = results.get(timeout=30.0)
            if kind != "ready":
                raise BenchError(f"load worker failed: {payload}")
        cpu0 = total_cpu(server_pids)
        busy0 = machine_busy()
        go.set()
        outcomes: list[tuple[int, float, float]] = []
        for _ in workers:
            kind, payload = results.get(timeout=seconds + STALL_SECONDS + 30.0)
            if kind != "done":
                raise BenchError(f"load worker failed: {payload}")
            outcomes.append(payload)
        cpu1 = total_cpu(server_pids)
        busy1 = machine_busy()
    finally:
        for worker in workers:
            worker.join(timeout=5.0)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5.0)
        results.close()
    requests = sum(o[0] for o in outcomes)
    if requests == 0:
        raise BenchError("no request completed")
    return GetRun(
        requests=requests,
        elapsed=max(o[1] for o in outcomes),
        client_cpu=sum(o[2] for o in outcomes),
        server_cpu=cpu1 - cpu0,
        client_procs=procs,
        machine_cpu=busy1 - busy0,
    )


# --------------------------------------------------------------------------
# LIST VAR and upsc


@dataclass
class ListRun:
    latencies: list[float]
    lines: int

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def list_var(sock: socket.socket) -> bytes:
    """Send one ``LIST VAR ups`` and read its whole reply."""
    sock.sendall(LIST_REQUEST)
    buf = b""
    while not buf.endswith(LIST_END):
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("server closed the connection during LIST VAR")
        buf += chunk
    return buf


def list_var_latency(port: int, seconds: float, max_requests: int = MAX_LIST_REQUESTS) -> ListRun:
    """Closed loop of ``LIST VAR ups`` on one connection; latency of each full reply.

    Like upsc, the client socket keeps the defaults (Nagle on, delayed ACK on).
    """
    latencies: list[float] = []
    lines = 0
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as sock:
        deadline = time.perf_counter() + seconds
        while len(latencies) < max_requests and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            buf = list_var(sock)
            latencies.append(time.perf_counter() - t0)
            if not buf.startswith(b"BEGIN LIST VAR "):
                raise BenchError(f"unexpected LIST VAR reply {buf[:200]!r}")
            lines = buf.count(b"\nVAR ")
    if not latencies:
        raise BenchError("no LIST VAR completed")
    return ListRun(latencies, lines)


def upsc_times(port: int, extra: Sequence[str], runs: int) -> tuple[list[float], str]:
    """Wall time of ``upsc ups@127.0.0.1:PORT [extra]`` over ``runs`` runs; also its output."""
    upsc = upsc_binary()
    if upsc is None:
        raise BenchError("upsc is not installed")
    argv = [str(upsc), f"{UPS}@{HOST}:{port}", *extra]
    times: list[float] = []
    output = ""
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr!r}")
        output = done.stdout.decode("latin-1")
    return times, output


# --------------------------------------------------------------------------
# Orchestration


@dataclass
class Server:
    name: str
    port: int
    pids: dict[str, int]  # label -> pid; upsd's dict also holds its dummy-ups

    @property
    def all_pids(self) -> list[int]:
        return list(self.pids.values())


@dataclass
class Results:
    get: dict[tuple[str, int], GetRun] = field(default_factory=dict)
    lists: dict[str, ListRun] = field(default_factory=dict)
    upsc_all: dict[str, list[float]] = field(default_factory=dict)
    upsc_status: dict[str, list[float]] = field(default_factory=dict)
    upsc_output: dict[str, str] = field(default_factory=dict)
    rss: dict[str, dict[str, int]] = field(default_factory=dict)
    hwm: dict[str, dict[str, int]] = field(default_factory=dict)
    anon: dict[str, dict[str, int]] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def start_servers(stack: contextlib.ExitStack, workdir: Path) -> tuple[Server, Server]:
    dev = write_dev_file(workdir / "bench.dev", DEV_VALUES)
    upsd_port = free_port()
    confdir = write_nut_config(workdir / "nut", port=upsd_port, ups={UPS: {"port": str(dev)}})
    log(f"config in {confdir}; starting upsd + dummy-ups on port {upsd_port}")
    nut = RealNut(confdir)
    stack.enter_context(nut)
    assert nut.upsd is not None
    upsd = Server(
        "upsd",
        upsd_port,
        {"upsd": nut.upsd.pid, "dummy-ups": nut.driver_procs[UPS].pid},
    )
    nuttrio_port = free_port()
    log(f"starting nuttrio on port {nuttrio_port}")
    proc = NuttrioProcess(
        ["--nut-config", str(confdir), "--listen", f"{HOST}:{nuttrio_port}"], timeout=30.0
    )
    stack.enter_context(proc)
    assert proc.proc is not None
    nuttrio = Server("nuttrio", nuttrio_port, {"nuttrio": proc.proc.pid})
    wait_served(nuttrio.port)
    return upsd, nuttrio


def wait_served(port: int, timeout: float = 15.0) -> None:
    """Wait until the UPS has its full variable set (dummy-ups publishes after ~1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as sock:
                sock.sendall(GET_REQUEST)
                reply = sock.recv(4096)
            if reply.startswith(b"VAR ") and b'"WAIT"' not in reply:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"UPS not served on port {port} after {timeout} s")
        time.sleep(0.1)


def run_benchmarks(
    servers: Sequence[Server],
    seconds: float,
    conn_counts: Sequence[int],
    upsc_runs: int,
    client_procs: int,
) -> Results:
    res = Results()
    warm = min(0.3, seconds)
    for srv in servers:
        log(f"{srv.name}: warm-up {warm:.1f} s")
        get_var_load(srv.port, 1, warm, srv.all_pids, 1)
        list_var_latency(srv.port, warm, max_requests=5)
    for conns in conn_counts:
        for srv in servers:
            log(f"{srv.name}: GET VAR, {conns} connection(s), {seconds:g} s")
            res.get[(srv.name, conns)] = get_var_load(
                srv.port, conns, seconds, srv.all_pids, client_procs
            )
    for srv in servers:
        log(f"{srv.name}: LIST VAR latency, 1 connection, {seconds:g} s")
        res.lists[srv.name] = list_var_latency(srv.port, seconds)
    for srv in servers:
        log(f"{srv.name}: upsc x {upsc_runs} (whole dump, then ups.status)")
        res.upsc_all[srv.name], res.upsc_output[srv.name] = upsc_times(srv.port, [], upsc_runs)
        res.upsc_status[srv.name], _ = upsc_times(srv.port, ["ups.status"], upsc_runs)
    for srv in servers:
        res.rss[srv.name] = {label: proc_status_kib(p, "VmRSS") for label, p in srv.pids.items()}
        res.hwm[srv.name] = {label: proc_status_kib(p, "VmHWM") for label, p in srv.pids.items()}
        res.anon[srv.name] = {label: proc_status_kib(p, "RssAnon") for label, p in srv.pids.items()}
    return res


# --------------------------------------------------------------------------
# Report


def machine_description() -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cpus = len(os.sched_getaffinity(0))
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text(encoding="ascii").split()[1])
    upsd = upsd_binary()
    upsd_version = "?"
    if upsd is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            upsd_version = (
                subprocess.run(
                    [str(upsd), "-V"], capture_output=True, text=True, timeout=10, check=False
                )
                .stdout.strip()
                .splitlines()[0]
            )
    from nuttrio import __version__ as nuttrio_version

    return [
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {model}, {cpus} CPU(s) usable, {mem_kib / 1048576:.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        f"servers: {upsd_version} (/lib/nut/upsd + dummy-ups) vs nuttrio {nuttrio_version} "
        f"(python -m nuttrio --attach)",
        f"NOTE: the load client and the servers share these {cpus} CPU(s); "
        "each server is measured alone (the other one idles), all traffic on 127.0.0.1.",
    ]


def limit_note(server_pct: float, client_pct: float, other_pct: float, client_procs: int) -> str:
    """Guess what bounded a GET VAR run from the CPU use of server, client and the rest."""
    notes = []
    if server_pct >= 90:
        notes.append("server CPU-bound")
    if client_pct / client_procs >= 90:
        notes.append("client CPU-bound")
    if server_pct + client_pct + other_pct >= 180:
        notes.append("both CPUs busy" + (" (other work too)" if other_pct >= 15 else ""))
    return ", ".join(notes) if notes else "round-trip latency (neither side saturated)"


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def render(res: Results, conn_counts: Sequence[int], seconds: float, upsc_runs: int) -> str:
    rows: list[tuple[str, float, float, int, str]] = []  # label, upsd, nuttrio, digits, better
    for conns in conn_counts:
        label = "connection" if conns == 1 else "connections"
        rows.append(
            (
                f"GET VAR req/s, {conns} {label}",
                res.get[("upsd", conns)].rate,
                res.get[("nuttrio", conns)].rate,
                0,
                "higher",
            )
        )
    rows.append(
        (
            "LIST VAR latency median, ms",
            res.lists["upsd"].median * 1e3,
            res.lists["nuttrio"].median * 1e3,
            2,
            "lower",
        )
    )
    rows.append(
        (
            "LIST VAR latency p99, ms",
            res.lists["upsd"].p99 * 1e3,
            res.lists["nuttrio"].p99 * 1e3,
            2,
            "lower",
        )
    )
    rows.append(
        (
            "upsc ups (whole dump) median, ms",
            statistics.median(res.upsc_all["upsd"]) * 1e3,
            statistics.median(res.upsc_all["nuttrio"]) * 1e3,
            1,
            "lower",
        )
    )
    rows.append(
        (
            "upsc ups ups.status median, ms",
            statistics.median(res.upsc_status["upsd"]) * 1e3,
            statistics.median(res.upsc_status["nuttrio"]) * 1e3,
            1,
            "lower",
        )
    )
    rows.append(
        (
            "RSS after load, MiB",
            sum(res.rss["upsd"].values()) / 1024,
            sum(res.rss["nuttrio"].values()) / 1024,
            1,
            "lower",
        )
    )
    for conns in conn_counts:
        label = "conn" if conns == 1 else "conns"
        rows.append(
            (
                f"server CPU ms per 10k GET VAR, {conns} {label}",
                res.get[("upsd", conns)].server_cpu_per_10k * 1e3,
                res.get[("nuttrio", conns)].server_cpu_per_10k * 1e3,
                0,
                "lower",
            )
        )

    headers = ("measurement", "upsd 2.8.0", "nuttrio", "nuttrio/upsd", "better")
    table = [
        (label, _fmt(u, d), _fmt(n, d), f"{n / u:.2f}" if u else "n/a", better)
        for label, u, n, d, better in rows
    ]
    widths = [max(len(str(r[i])) for r in [headers, *table]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *rest, cells[-1].ljust(widths[-1])]).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in table)

    out.append("")
    out.append("details:")
    for name in SERVERS:
        parts = [
            f"{label} VmRSS {res.rss[name][label] / 1024:.1f} "
            f"(peak VmHWM {res.hwm[name][label] / 1024:.1f}, "
            f"private RssAnon {res.anon[name][label] / 1024:.1f})"
            for label in res.rss[name]
        ]
        out.append(f"  memory MiB, {name}: " + "; ".join(parts))
    for name in SERVERS:
        lst = res.lists[name]
        out.append(
            f"  LIST VAR {name}: {len(lst.latencies)} requests, {lst.lines} variables per reply, "
            f"min {min(lst.latencies) * 1e3:.2f} ms, max {max(lst.latencies) * 1e3:.2f} ms"
        )
    for name in SERVERS:
        a, s = res.upsc_all[name], res.upsc_status[name]
        out.append(
            f"  upsc {name}: {upsc_runs} runs each; whole dump min/max "
            f"{min(a) * 1e3:.1f}/{max(a) * 1e3:.1f} ms, ups.status min/max "
            f"{min(s) * 1e3:.1f}/{max(s) * 1e3:.1f} ms"
        )
    same = res.upsc_output["upsd"] == res.upsc_output["nuttrio"]
    out.append(f"  upsc whole-dump output identical for both servers: {'yes' if same else 'NO'}")
    out.append(
        "  GET VAR runs (client = epoll closed loop, one request in flight per connection; "
        "its ceiling = requests per second of client CPU, i.e. if it had a core to itself):"
    )
    for conns in conn_counts:
        for name in SERVERS:
            g = res.get[(name, conns)]
            busy_server = g.server_cpu / g.elapsed * 100
            busy_client = g.client_cpu / g.elapsed * 100
            busy_other = g.other_cpu / g.elapsed * 100
            out.append(
                f"    {name:7} {conns:3} conn: {g.requests:,} requests in {g.elapsed:.2f} s; "
                f"server CPU {busy_server:.0f}%, client CPU {busy_client:.0f}% "
                f"({g.client_procs} proc) = {g.client_us_per_request:.1f} us/request, "
                f"other CPU {busy_other:.0f}%, "
                f"client ceiling ~{1e6 / g.client_us_per_request:,.0f} req/s per client core; "
                f"limit: {limit_note(busy_server, busy_client, busy_other, g.client_procs)}"
            )
    out.append(
        "  CPU % are of one CPU (200% = both CPUs busy). upsd's CPU includes its dummy-ups; "
        "'other' is the rest of the machine (other processes, interrupts, steal); "
        "/proc CPU times have 10 ms resolution."
    )
    worst = max(g.other_cpu / g.elapsed * 100 for g in res.get.values())
    if worst > 15:
        out.append(
            f"  WARNING: up to {worst:.0f}% of a CPU went to other work during the GET VAR runs; "
            "the machine was not quiet, so the rates above are understated."
        )
    out.append(
        f"  each measurement ran {seconds:g} s per server; ratio = nuttrio/upsd "
        "(for 'higher' rows > 1 means nuttrio is faster, for 'lower' rows < 1 means it is)."
    )
    return "\n".join(out)


# --------------------------------------------------------------------------
# Entry point


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark nuttrio against the real NUT upsd 2.8.0 + dummy-ups "
        "on 127.0.0.1 (both started on one generated config directory)."
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="duration of each timed measurement, per server (default 3, at most 120)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short smoke run (0.5 s measurements, 5 upsc runs)"
    )
    parser.add_argument(
        "--upsc-runs", type=int, default=20, help="upsc runs per variant (default 20)"
    )
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="load-generator processes for the multi-connection GET VAR runs (default 1)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS (at most 3600) for the machine to be idle (default 0)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.wait_quiet <= 3600:
        parser.error("--wait-quiet must be between 0 and 3600")
    if not 0.05 <= args.seconds <= 120:
        parser.error("--seconds must be between 0.05 and 120")
    if not 1 <= args.upsc_runs <= 200:
        parser.error("--upsc-runs must be between 1 and 200")
    if not 1 <= args.client_procs <= 16:
        parser.error("--client-procs must be between 1 and 16")
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
        args.upsc_runs = min(args.upsc_runs, 5)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_nut_binaries()
    if missing:
        print(f"bench: real NUT not available: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    conn_counts = (1, 10, 100)
    # Generous upper bound for the whole run: start-up, 4 timed phases x 2 servers, upsc runs.
    budget = 90 + 10 * args.seconds + 2 * 2 * args.upsc_runs * 1.0
    try:
        before = wait_quiet(args.wait_quiet)
    except KeyboardInterrupt:
        print("bench: interrupted before anything was started", file=sys.stderr)
        return 130
    header = machine_description()
    header.append(f"machine busy before start: {before:.0f}% of one CPU (should be near 0)")
    if before > 15:
        log(f"WARNING: the machine is already busy ({before:.0f}% of a CPU): results will suffer")
    try:
        with (
            watchdog(budget),
            tempfile.TemporaryDirectory(prefix="nbench") as tmp,
            contextlib.ExitStack() as stack,
        ):
            servers = start_servers(stack, Path(tmp))
            res = run_benchmarks(
                servers, args.seconds, conn_counts, args.upsc_runs, args.client_procs
            )
            log("stopping servers")
    except (Stop, KeyboardInterrupt, BenchError, RealNutError, RuntimeError) as exc:
        if SIGNALS_SEEN or isinstance(exc, (Stop, KeyboardInterrupt)):
            seen = ", ".join(SIGNALS_SEEN) or "Ctrl-C"
            print(f"bench: interrupted by {seen}; all processes stopped", file=sys.stderr)
            return 130
        print(f"bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("bench: all processes stopped", file=sys.stderr)
        return 1
    print("\n".join(header))
    print()
    print(render(res, conn_counts, args.seconds, args.upsc_runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
