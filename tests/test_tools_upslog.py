"""nuttrio's upslog against Debian's, logging from the same servers (see test_tools_diff).

Each test runs both tools as processes (nuttrio's through ``python -m nuttrio upslog``),
at the same time, and compares what they print; the cases that end before logging starts
are in test_tools_diff. ``-m`` and ``--json`` are nuttrio's (``-m`` is NUT 2.8.1's) and are
checked against the plain log instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from .helpers import wait_until
from .realnut import HOST
from .test_tools_diff import NO_IPV6, TOOL_TIMEOUT, Result, Servers, run_ours, server, servers

pytestmark = pytest.mark.realnut

__all__ = ["server", "servers"]  # the fixtures, started once for this module


@attrs.define
class Logger:
    """One upslog process (Debian's or nuttrio's); its output is read as it comes."""

    argv: list[str]
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    out: bytearray = attrs.Factory(bytearray)
    err: bytearray = attrs.Factory(bytearray)
    readers: list[threading.Thread] = attrs.Factory(list)

    def __enter__(self) -> Logger:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            reader = threading.Thread(target=_drain, args=(stream, sink), daemon=True)
            reader.start()
            self.readers.append(reader)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_lines(self, count: int) -> None:
        """Wait until standard output has ``count`` lines."""
        wait_until(lambda: self.out.count(b"\n") >= count, 15, f"{count} lines of {self.argv}")

    def finish(self) -> Result:
        """SIGTERM, then the whole output."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10)
        for reader in self.readers:
            reader.join(5)
        return Result(rc, bytes(self.out), bytes(self.err))


def _drain(stream: io.BufferedReader, sink: bytearray) -> None:
    while chunk := stream.read1(65536):
        sink.extend(chunk)


def _upslog(ours: bool, *argv: str) -> list[str]:
    head = [sys.executable, "-m", "nuttrio", "upslog"] if ours else ["upslog"]
    return [*head, "-u", _me(), "-p", "/dev/null/none", *argv]


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="ascii").splitlines() if path.exists() else []


FORMAT = (
    "[%VAR ups.model%] %%x %VAR ups.status% %VAR nope% %VAR x.y% %UPSHOST% %FOO% %VAR ups.load%%bad"
)


@pytest.mark.parametrize("host", [HOST, "[::1]"])
def test_upslog_stdout_same_as_nut(servers: Servers, server: int, host: str) -> None:
    """``-l -`` (foreground): banner, lines, the exit message: the same for both tools,
    on 127.0.0.1 and on IPv6's ``[::1]``."""
    if host == "[::1]" and NO_IPV6 is not None:
        pytest.skip(NO_IPV6)
    argv = ["-s", f"dummy@{host}:{server}", "-l", "-", "-i", "1", "-f", FORMAT]
    with Logger(_upslog(False, *argv)) as theirs, Logger(_upslog(True, *argv)) as ours:
        theirs.wait_lines(4)  # the banner's two lines, then two log lines
        ours.wait_lines(4)
        got = {"theirs": theirs.finish(), "ours": ours.finish()}
    for result in got.values():
        assert result.rc == 0
    head = {k: r.out.splitlines()[:4] for k, r in got.items()}
    assert head["ours"] == head["theirs"]
    assert (
        head["theirs"][2]
        == f"[Back 500] %x OL CHRG INVALID NA dummy@{host}:{server} INVALID 23INVALIDbad".encode()
    )
    assert got["ours"].err == got["theirs"].err
    assert got["theirs"].err.endswith(b"Signal 15: exiting\n")


def test_upslog_file_rotation_on_sighup(servers: Servers, server: int, tmp_path: Path) -> None:
    """A log file (with -F), renamed, then SIGHUP: logging goes on in a new file."""
    argv = ["-s", f"dummy@{HOST}:{server}", "-l", "ups.log", "-i", "1", "-F"]
    argv += ["-f", "%VAR ups.status%"]
    dirs = {who: tmp_path / who for who in ("theirs", "ours")}
    with contextlib.ExitStack() as stack:
        loggers = {}
        for who, workdir in dirs.items():
            workdir.mkdir()
            logger = Logger(_upslog(who == "ours", *argv), cwd=workdir)
            loggers[who] = stack.enter_context(logger)
        for who, logger in loggers.items():
            log = dirs[who] / "ups.log"
            wait_until(lambda log=log: len(_lines(log)) >= 1, 10, "a log line")
            log.rename(dirs[who] / "ups.log.1")
            logger.signal(signal.SIGHUP)
        for who in loggers:
            log = dirs[who] / "ups.log"
            wait_until(lambda log=log: len(_lines(log)) >= 1, 10, "a log line after SIGHUP")
        results = {who: logger.finish() for who, logger in loggers.items()}
    for workdir in dirs.values():
        assert set(_lines(workdir / "ups.log.1")) == {"OL CHRG"}
        assert set(_lines(workdir / "ups.log")) == {"OL CHRG"}
    assert results["ours"] == results["theirs"]
    assert b"Signal 1: reopening log file\n" in results["theirs"].err


def test_upslog_old_style_arguments(servers: Servers) -> None:
    """``upslog ups file interval format words...``: the words joined, each with a space."""
    argv = [f"dummy@{HOST}:{servers.ports['nuttrio']}", "-", "1", "%VAR", "ups.status%", "!"]
    with Logger(_upslog(False, *argv)) as theirs, Logger(_upslog(True, *argv)) as ours:
        theirs.wait_lines(3)
        ours.wait_lines(3)
        got = [theirs.finish(), ours.finish()]
    assert got[0].out.splitlines()[2] == b"OL CHRG ! "
    assert got[1].out.splitlines()[:3] == got[0].out.splitlines()[:3]
    assert got[1].err == got[0].err


def _start_in_background(
    who: str, port: int, log: Path | str, pid: Path, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    argv = ["-s", f"dummy@{HOST}:{port}", "-l", str(log), "-i", "1", "-f", "%VAR ups.load%"]
    argv += extra
    head = [sys.executable, "-m", "nuttrio", "upslog"] if who == "ours" else ["upslog"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [*head, "-u", _me(), "-p", str(pid), *argv],
        capture_output=True,
        timeout=TOOL_TIMEOUT,
        env=env,
        start_new_session=True,
        check=False,
    )


def _pid_in(path: Path) -> int:
    """The PID a background upslog wrote, once the whole line is there (it is not atomic)."""
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"), 5, "the PID file")
    return int(path.read_text())


def test_upslog_background_loses_stdout(servers: Servers, tmp_path: Path) -> None:
    """Without -F a file log puts upslog in the background; what it printed is lost."""
    port = servers.ports["nuttrio"]
    files = {who: (tmp_path / f"{who}.log", tmp_path / f"{who}.pid") for who in ("theirs", "ours")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = {
            who: pool.submit(_start_in_background, who, port, log, pid)
            for who, (log, pid) in files.items()
        }
        done = {who: future.result() for who, future in started.items()}
    try:
        for who, (log, _) in files.items():
            assert (done[who].returncode, done[who].stdout) == (0, b"")
            assert done[who].stderr == b"Init SSL without certificate database\n"
            wait_until(lambda log=log: len(_lines(log)) >= 2, 10, "two log lines")
            assert set(_lines(log)) == {"23"}
    finally:
        for _, pid in files.values():
            os.kill(_pid_in(pid), signal.SIGTERM)


def test_upslog_minus_b_goes_to_the_background_even_logging_to_stdout(
    servers: Servers, tmp_path: Path
) -> None:
    """-B: the parent returns at once, as NUT's does; the child runs on (its stdout lost)."""
    port = servers.ports["nuttrio"]
    pids = {who: tmp_path / f"{who}.pid" for who in ("theirs", "ours")}
    done = {who: _start_in_background(who, port, "-", pid, "-B") for who, pid in pids.items()}
    try:
        assert (done["ours"].returncode, done["ours"].stdout, done["ours"].stderr) == (
            done["theirs"].returncode,
            done["theirs"].stdout,
            done["theirs"].stderr,
        )
        assert done["ours"].returncode == 0
        for pid in pids.values():
            os.kill(_pid_in(pid), 0)  # the background child is running
    finally:
        for pid in pids.values():
            if pid.exists():
                os.kill(_pid_in(pid), signal.SIGTERM)


def test_upslog_multiple_and_json(servers: Servers, tmp_path: Path) -> None:
    """``-m`` (NUT 2.8.1): one log per UPS, here on both servers; --json: JSON Lines."""
    upsd, ours = (f"{HOST}:{servers.ports[k]}" for k in ("upsd", "nuttrio"))
    first, second = tmp_path / "a.log", tmp_path / "b.jsonl"
    fmt = "%UPSHOST% %VAR ups.status% %VAR battery.charge% %VAR nope.x%"
    argv = ["-m", f"dummy@{upsd},{first}", "-m", f"fancy@{ours},-", "-F", "-i", "1", "-f", fmt]
    with Logger(_upslog(True, *argv, "--json")) as logger:
        wait_until(lambda: len(_lines(first)) >= 2, 10, "two JSON lines")
        result = logger.finish()
    records = [json.loads(line) for line in _lines(first)]
    assert {r["ups"] for r in records} == {f"dummy@{upsd}"}
    assert records[0]["values"] == {
        "ups.status": "OL CHRG",
        "battery.charge": "100",
        "nope.x": None,
    }
    assert records[1]["etime"] - records[0]["etime"] == 1
    out = result.out.decode().splitlines()
    assert out[:3] == [
        "Network UPS Tools upslog 2.8.0",
        f"logging status of dummy@{upsd} to {first} (1s intervals)",
        f"logging status of fancy@{ours} to - (1s intervals)",
    ]
    fancy = json.loads(out[3])
    assert fancy["values"] == {"ups.status": "OB LB", "battery.charge": None, "nope.x": None}
    with Logger(_upslog(True, *argv[:5], "-i", "1", "-f", fmt)) as plain:
        wait_until(lambda: len(_lines(first)) >= len(records) + 1, 10, "a plain line")
        plain.finish()
    assert _lines(first)[-1] == f"dummy@{upsd} OL CHRG 100 NA"
    bad = run_ours("upslog", ["-m", "dummy@localhost"])
    assert (bad.rc, bad.err) == (
        1,
        b"Argument '-m upsspec,logfile' requires exactly 2 components in the tuple\n",
    )
    assert second.exists() is False


#: Every escape that does not read a variable, and a variable for good measure.
TIME_FORMAT = "%TIME @Y-@m-@d @H:@M:@S% %ETIME% %HOST% %UPSHOST% %PID% [%VAR ups.status%]"


def _mask_escapes(line: bytes, pid: int) -> bytes:
    """TIME_FORMAT's line with its time and PID checked, then masked (they differ by run)."""
    day, clock, etime, host, upshost, logged_pid, rest = line.decode().split(" ", 6)
    stamp = int(etime)
    assert abs(stamp - time.time()) < 30, line
    assert f"{day} {clock}" == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)), line
    assert host == socket.gethostname(), line
    assert int(logged_pid) == pid, line
    return " ".join(["<time>", "<etime>", host, upshost, "<pid>", rest]).encode()


def _mask_default(line: bytes, pid: int) -> bytes:
    """The default format's line with its time (``@Y@m@d @H@M@S``) checked, then masked."""
    day, clock, rest = line.decode().split(" ", 2)
    stamp = time.mktime(time.strptime(f"{day} {clock}", "%Y%m%d %H%M%S"))
    assert abs(stamp - time.time()) < 30, line
    return f"<time> {rest}".encode()


@pytest.mark.parametrize(
    ("fmt", "mask", "expected"),
    [
        pytest.param(
            TIME_FORMAT,
            _mask_escapes,
            f"<time> <etime> {socket.gethostname()} dummy@{HOST}:{{port}} <pid> [OL CHRG]",
            id="escapes",
        ),
        pytest.param(None, _mask_default, "<time> 100 230.4 23 [OL CHRG] NA NA", id="default"),
    ],
)
def test_upslog_time_host_pid_escapes_same_as_nut(
    servers: Servers,
    server: int,
    fmt: str | None,
    mask: Callable[[bytes, int], bytes],
    expected: str,
) -> None:
    """%TIME fmt%, %ETIME%, %HOST%, %UPSHOST%, %PID% and the default format, as NUT's.

    The time (to the second) and the PID differ between the two runs: each is checked
    (the PID is the logger's, the time now's) and then masked.
    """
    argv = ["-s", f"dummy@{HOST}:{server}", "-l", "-", "-i", "1"]
    argv += [] if fmt is None else ["-f", fmt]
    with Logger(_upslog(False, *argv)) as theirs, Logger(_upslog(True, *argv)) as ours:
        theirs.wait_lines(4)
        ours.wait_lines(4)
        pids = {"theirs": theirs.pid, "ours": ours.pid}
        got = {"theirs": theirs.finish(), "ours": ours.finish()}
    shapes = {}
    for who, result in got.items():
        banner, lines = result.out.splitlines()[:2], result.out.splitlines()[2:4]
        shapes[who] = (result.rc, banner, [mask(line, pids[who]) for line in lines], result.err)
    assert shapes["theirs"][2] == [expected.format(port=server).encode()] * 2
    assert shapes["ours"] == shapes["theirs"]


#: Variables for the JSON test: set ones (with quotes and backslashes), a missing one,
#: an unknown one and a name without a dot (INVALID in the plain log, not in the JSON).
JSON_VARS = ("ups.status", "ups.mfr", "ups.serial", "battery.charge", "nope.x", "bad")


def test_upslog_single_ups_json_values_equal_plain(servers: Servers, server: int) -> None:
    """``-s UPS --json``: each line's values are what the plain log prints (NA is null)."""
    fmt = "%ETIME% %UPSHOST%|" + "|".join(f"%VAR {name}%" for name in JSON_VARS)
    argv = ["-s", f"fancy@{HOST}:{server}", "-l", "-", "-i", "1", "-f", fmt]
    with Logger(_upslog(True, *argv)) as plain, Logger(_upslog(True, *argv, "--json")) as shaped:
        plain.wait_lines(4)
        shaped.wait_lines(4)
        got = [plain.finish(), shaped.finish()]
    assert got[0].out.splitlines()[:2] == got[1].out.splitlines()[:2]  # the banner
    lines = [result.out.splitlines()[2:4] for result in got]
    for text, record_text in zip(*lines, strict=True):
        head, *values = text.decode().split("|")
        etime, upshost = head.split(" ")
        record = json.loads(record_text)
        assert record["ups"] == upshost == f"fancy@{HOST}:{server}"
        assert abs(record["etime"] - int(etime)) <= 2  # two processes, not one clock
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record["etime"]))
        assert record["time"].startswith(stamp)
        plain_values = {n: None if v == "NA" else v for n, v in zip(JSON_VARS, values, strict=True)}
        assert plain_values.pop("bad") == "INVALID"
        assert list(record["values"].items()) == list(plain_values.items())
        assert record["values"]["ups.mfr"] == 'Acme "Power" Co'
        assert record["values"]["battery.charge"] is None
