"""How long one client's flood makes another client wait: nuttrio beside the real upsd 2.8.0.

A flooding client (in its own process, a second thread draining its replies) writes the same
payload again and again: 64 KiB of empty lines, or 4,000 pipelined ``LIST VAR``. Meanwhile
a polling client on another connection sends ``GET VAR ups ups.status`` every 2 ms and times
each round trip. The report gives the poller's median, p99 and worst round trip without a
flood and under each flood, for both servers, serving one generated configuration (the
same 20-variable ``dummy-ups`` UPS as bench_server.py).

Run from the repository root: ``python bench/bench_fairness.py`` (``--samples N``,
``--flooders 1,5,10`` for several flooding connections at once).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_server import UPS, start_servers  # noqa: E402

from tests.realnut import HOST, missing_nut_binaries  # noqa: E402

FLOODS = {
    "no flood": b"",
    "64 KiB of empty lines": b"\n" * 65536,
    "4,000 pipelined LIST VAR": f"LIST VAR {UPS}\n".encode() * 4000,
}
POLL = f"GET VAR {UPS} ups.status\n".encode()
SOCKET_TIMEOUT = 10.0


def flood(port: int, payload: bytes, stop: mp.synchronize.Event) -> None:
    """Write ``payload`` over and over on one connection until ``stop`` is set."""
    sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while sock.recv(1 << 20):
                pass

    threading.Thread(target=drain, daemon=True).start()
    with contextlib.suppress(OSError):
        while not stop.is_set():
            sock.sendall(payload)
    sock.close()


def poll(port: int, samples: int) -> list[float]:
    """Round-trip times of ``GET VAR`` on a fresh connection, one every 2 ms."""
    times = []
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(samples):
            began = time.perf_counter()
            sock.sendall(POLL)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("the server closed the polling connection")
                reply += chunk
            times.append(time.perf_counter() - began)
            time.sleep(0.002)
    return times


def measure(port: int, payload: bytes, samples: int, flooders: int = 1) -> list[float]:
    """The poller's round trips while ``flooders`` connections (if any) write ``payload``."""
    if not payload:
        return poll(port, samples)
    stop = mp.Event()
    procs = [
        mp.Process(target=flood, args=(port, payload, stop), daemon=True) for _ in range(flooders)
    ]
    for proc in procs:
        proc.start()
    try:
        time.sleep(0.3)  # let the flood fill the server's socket buffers
        return poll(port, samples)
    finally:
        stop.set()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def main() -> int:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="polls per row (default 300)")
    parser.add_argument(
        "--flooders",
        default="1",
        help="comma-separated numbers of flooding connections per flood (default 1)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.flooders.split(",")]
    missing = missing_nut_binaries()
    if missing:
        print(f"NUT is not installed: {missing}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers = start_servers(stack, Path(tmp))
        for name, payload in FLOODS.items():
            for count in counts if payload else [0]:
                label = f"{count} x {name}" if payload else name
                for server in servers:
                    times = sorted(measure(server.port, payload, args.samples, count))
                    p99 = times[min(len(times) - 1, round(0.99 * len(times)))]
                    rows.append((label, server.name, statistics.median(times), p99, times[-1]))
    print(f"{'flood':30}  {'server':8}  {'median ms':>9}  {'p99 ms':>7}  {'max ms':>7}")
    for name, server_name, median, p99, worst in rows:
        print(
            f"{name:30}  {server_name:8}  {median * 1e3:9.2f}  {p99 * 1e3:7.2f}  {worst * 1e3:7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
