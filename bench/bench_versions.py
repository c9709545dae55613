"""Benchmark two revisions of nuttrio against each other and the real NUT upsd, in one run.

"No slower than before" cannot be read off two bench_server.py runs on different days: on a
shared 2-CPU VM the machine itself moves 15-20 % between runs. This script checks out a
base revision (``git worktree add --detach``, removed at the end), starts the real
``upsd`` + ``dummy-ups``, nuttrio at the base revision and nuttrio as checked out here, all
three on one generated configuration directory, and measures them in interleaved rounds
(upsd, base, head; again...), so a slow minute of the machine hits all three alike. It
prints the median of the rounds and the ratios head/base and each nuttrio/upsd.

With ``--instructions`` it also counts, under valgrind's callgrind, the instructions each
nuttrio executes per ``GET VAR`` and per ``LIST VAR`` (instrumentation switched on only
around the requests): a count that does not depend on how busy the machine is, and so the
figure to quote for a change of a few per cent.

Run from the repository root::

    python bench/bench_versions.py --base 46557b0          # ~1 min
    python bench/bench_versions.py --base HEAD~5 --instructions   # + ~4 min under valgrind

Exit status 0 = done, 1 = a server misbehaved, 2 = NUT, git or valgrind missing, 130 =
interrupted. Every process and the worktree are cleaned up on exit, errors, Ctrl-C, SIGTERM
and the watchdog.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import SIGNALS_SEEN, Stop, watchdog

# bench_server puts the repository on sys.path and imports the tests' NUT helpers; the
# names below come through it, so the two scripts set up the same way.
from bench_server import (
    DEV_VALUES,
    HOST,
    REPO,
    UPS,
    BenchError,
    NuttrioProcess,
    RealNut,
    RealNutError,
    Server,
    closed_loop,
    free_port,
    get_var_load,
    list_var,
    list_var_latency,
    log,
    machine_description,
    missing_nut_binaries,
    proc_status_kib,
    wait_quiet,
    wait_served,
    write_dev_file,
    write_nut_config,
)

#: Requests counted under callgrind (after 200 uncounted ones): GET VAR, then LIST VAR.
COUNTED_GETS = 3000
COUNTED_LISTS = 300


@contextlib.contextmanager
def base_checkout(rev: str, workdir: Path) -> Iterator[Path]:
    """A detached worktree of ``rev`` under ``workdir``, removed on exit."""
    tree = workdir / "base"
    git = ["git", "-C", str(REPO)]
    done = subprocess.run(
        [*git, "worktree", "add", "--detach", "--quiet", str(tree), rev],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"git worktree add {rev}: {done.stderr.strip()}")
    try:
        yield tree
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)


def start_servers(
    stack: contextlib.ExitStack, workdir: Path, base: Path
) -> tuple[Path, list[Server]]:
    """upsd + dummy-ups, nuttrio at ``base`` and nuttrio here, on one configuration."""
    dev = write_dev_file(workdir / "bench.dev", DEV_VALUES)
    upsd_port = free_port()
    confdir = write_nut_config(workdir / "nut", port=upsd_port, ups={UPS: {"port": str(dev)}})
    nut = stack.enter_context(RealNut(confdir))
    assert nut.upsd is not None
    servers = [
        Server("upsd", upsd_port, {"upsd": nut.upsd.pid, "dummy-ups": nut.driver_procs[UPS].pid})
    ]
    for name, tree in (("base", base), ("head", REPO)):
        port = free_port()
        log(f"starting nuttrio ({name}, {tree}) on port {port}")
        proc = NuttrioProcess(
            ["--nut-config", str(confdir), "--listen", f"{HOST}:{port}"], timeout=30.0, cwd=tree
        )
        stack.enter_context(proc)
        assert proc.proc is not None
        servers.append(Server(name, port, {name: proc.proc.pid}))
    for srv in servers:
        wait_served(srv.port)
    return confdir, servers


@dataclass
class Rounds:
    """Per server: the request rate of each round, LIST VAR medians, RSS at the end."""

    rate: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    list_ms: dict[str, list[float]] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    instructions: dict[tuple[str, str], float] = field(default_factory=dict)


def run_rounds(
    servers: Sequence[Server], rounds: int, seconds: float, conns: Sequence[int]
) -> Rounds:
    res = Rounds()
    for srv in servers:
        get_var_load(srv.port, 1, 0.3, srv.all_pids, 1)  # warm-up
    for number in range(rounds):
        log(f"round {number + 1}/{rounds}")
        for count in conns:
            for srv in servers:
                run = get_var_load(srv.port, count, seconds, srv.all_pids, 1)
                res.rate.setdefault((srv.name, count), []).append(run.rate)
                res.cpu.setdefault((srv.name, count), []).append(run.server_cpu_per_10k)
        for srv in servers:
            lat = list_var_latency(srv.port, seconds / 2)
            res.list_ms.setdefault(srv.name, []).append(lat.median * 1e3)
    for srv in servers:
        res.rss_mib[srv.name] = sum(proc_status_kib(p, "VmRSS") for p in srv.all_pids) / 1024
    return res


def _callgrind_cost(path: Path) -> int:
    """Self cost summed over a callgrind file (a ``calls=`` line's next line is inclusive)."""
    total, after_call = 0, False
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("calls="):
            after_call = True
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False
                continue
            parts = line.split()
            if len(parts) >= 2 and parts[-1].isdigit():
                total += int(parts[-1])
    return total


def _list_loop(sock: socket.socket, count: int) -> None:
    for _ in range(count):
        list_var(sock)


def count_instructions(tree: Path, confdir: Path, workdir: Path) -> dict[str, float]:
    """Instructions per GET VAR and per LIST VAR of nuttrio at ``tree``, under callgrind."""
    port = free_port()
    out = workdir / f"callgrind.{tree.name}"
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p",
        sys.executable, "-m", "nuttrio", "--attach", "--nut-config", str(confdir),
        "--listen", f"{HOST}:{port}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    per: dict[str, float] = {}
    try:
        wait_served(port, timeout=300)
        for kind, count in (("get", COUNTED_GETS), ("list", COUNTED_LISTS)):
            with socket.create_connection((HOST, port), timeout=60) as sock:
                if kind == "get":
                    closed_loop([sock], 60, 200)
                else:
                    _list_loop(sock, 20)
                control = ["callgrind_control"]
                subprocess.run(
                    [*control, "-i", "on", str(proc.pid)], capture_output=True, check=True
                )
                if kind == "get":
                    done = closed_loop([sock], 600, count).requests
                    if done != count:
                        raise BenchError(f"{done} of {count} GET VAR under callgrind")
                else:
                    _list_loop(sock, count)
                subprocess.run(
                    [*control, "-i", "off", str(proc.pid)], capture_output=True, check=True
                )
                subprocess.run([*control, "-d", str(proc.pid)], capture_output=True, check=True)
            dumps = sorted(
                workdir.glob(f"{out.name}.{proc.pid}.*"), key=lambda p: p.stat().st_mtime
            )
            per[kind] = _callgrind_cost(dumps[-1]) / count
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return per


def render(res: Rounds, conns: Sequence[int], rev: str, rounds: int, seconds: float) -> str:
    med = statistics.median
    rows = [("measurement", "upsd", "base", "head", "head/base", "base/upsd", "head/upsd")]

    def add(label: str, values: dict[str, float], digits: int) -> None:
        u, b, h = (values[k] for k in ("upsd", "base", "head"))
        rows.append(
            (
                label,
                *(f"{v:,.{digits}f}" for v in (u, b, h)),
                f"{h / b:.3f}",
                f"{b / u:.3f}",
                f"{h / u:.3f}",
            )
        )

    for count in conns:
        add(
            f"GET VAR req/s, {count} conn",
            {k: med(res.rate[(k, count)]) for k in ("upsd", "base", "head")},
            0,
        )
    for count in conns:
        add(
            f"server CPU ms/10k GET, {count} conn",
            {k: 1e3 * med(res.cpu[(k, count)]) for k in ("upsd", "base", "head")},
            0,
        )
    add("LIST VAR median, ms", {k: med(res.list_ms[k]) for k in ("upsd", "base", "head")}, 3)
    add("RSS after load, MiB", res.rss_mib, 1)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"base = {rev}; head = this checkout; medians of {rounds} interleaved rounds")
    lines.append(f"of {seconds:g} s each (GET VAR; LIST VAR {seconds / 2:g} s)")
    lines.append("rounds, req/s: " + "; ".join(
        f"{k} {count}c " + "/".join(f"{v:,.0f}" for v in res.rate[(k, count)])
        for count in conns for k in ("upsd", "base", "head")
    ))  # fmt: skip
    if res.instructions:
        lines.append("")
        lines.append("instructions per request (callgrind, whole nuttrio process):")
        for kind, label in (("get", "GET VAR"), ("list", "LIST VAR")):
            b, h = res.instructions[("base", kind)], res.instructions[("head", kind)]
            lines.append(f"  {label}: base {b:,.0f}, head {h:,.0f}, head/base {h / b:.3f}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="nuttrio at a base revision vs nuttrio here vs the real upsd, interleaved."
    )
    parser.add_argument(
        "--base", default="HEAD~1", help="git revision to compare with (default HEAD~1)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (default 5, 1-50)"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="each measurement (default 2, 0.1-30)"
    )
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions under callgrind"
    )
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS (<= 3600) for an idle machine")  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    if not 0.1 <= args.seconds <= 30:
        parser.error("--seconds must be between 0.1 and 30")
    if not 0 <= args.wait_quiet <= 3600:
        parser.error("--wait-quiet must be between 0 and 3600")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_nut_binaries() + [t for t in ("git",) if shutil.which(t) is None]
    if args.instructions:
        missing += [t for t in ("valgrind", "callgrind_control") if shutil.which(t) is None]
    if missing:
        print(f"bench: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    conns = (1, 10)
    budget = 120 + args.rounds * (3 * len(conns) + 2) * args.seconds * 1.5 + 600 * args.instructions
    header = machine_description()
    try:
        quiet = wait_quiet(args.wait_quiet)
        header.append(f"machine busy before start: {quiet:.0f}% of one CPU (should be near 0)")
        t0 = time.monotonic()
        with (
            watchdog(budget),
            tempfile.TemporaryDirectory(prefix="nbenchv") as tmp,
            base_checkout(args.base, Path(tmp)) as base,
            contextlib.ExitStack() as stack,
        ):
            confdir, servers = start_servers(stack, Path(tmp), base)
            res = run_rounds(servers, args.rounds, args.seconds, conns)
            stack.close()
            if args.instructions:
                for name, tree in (("base", base), ("head", REPO)):
                    log(f"counting instructions of {name} under callgrind (a few minutes)")
                    for kind, value in count_instructions(tree, confdir, Path(tmp)).items():
                        res.instructions[(name, kind)] = value
            log(f"done in {time.monotonic() - t0:.0f} s")
    except (
        Stop,
        KeyboardInterrupt,
        BenchError,
        RealNutError,
        RuntimeError,
        subprocess.SubprocessError,
    ) as exc:
        if SIGNALS_SEEN or isinstance(exc, (Stop, KeyboardInterrupt)):
            print(
                f"bench: interrupted by {', '.join(SIGNALS_SEEN) or 'Ctrl-C'}; "
                "all processes stopped",
                file=sys.stderr,
            )
            return 130
        print(f"bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(header))
    print()
    print(render(res, conns, args.base, args.rounds, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
