"""Real NUT clients against the real upsd 2.8.0 + dummy-ups and against nuttrio.

Both servers load ONE configuration directory (nuttrio through its command line); every
test runs the same client invocation against each and checks that the results are
identical after normalising only what must differ (nuttrio's ``VER`` text, random
tracking ids, the port number, timestamps), and that they are what upsd 2.8.0 gives, so
a test cannot pass by both sides failing the same way.

Clients: Debian's NUT 2.8.0 ``upsc``, ``upscmd``, ``upsrw`` and ``upslog``; PyNUT
(``pynutclient``) and aionut (Home Assistant's asyncio client, run with ``asyncio.run``
in plain sync tests, outside Trio).

State: each test that changes something (SET VAR, LOGIN, FSD) uses its own UPS section, so
the order of the tests does not matter and the read-only UPS ``dummy`` never changes
(dummy-ups ignores every instant command, so ``load.off`` is harmless).

Deliberate differences (docs/compat.md) are pinned by :func:`deliberate_difference`: upsd
must give its recorded answer and nuttrio exactly its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest

from nuttrio.protocol.replies import VER_TEXT

from .helpers import wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    HOST,
    MONITOR_PASSWORD,
    MONITOR_USER,
    NutConnection,
    RealNut,
    free_port,
    require_real_nut,
    write_nut_config,
)

pytestmark = pytest.mark.realnut

UPSD_VER = "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"
HELP_TEXT = "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"
#: libupsclient (upsc, upslog) prints this on stderr before it connects.
SSL_BANNER = "Init SSL without certificate database\n"
#: Seconds to wait for a SET VAR to show up: the real dummy-ups handles its socket only
#: between updates, which start with a 1 s sleep.
SET_VISIBLE_TIMEOUT = 3.0
CLIENT_TIMEOUT = 20.0

DUMMY_DEV = """\
ups.status: OL CHRG
battery.charge: 100
battery.runtime: 1800
input.voltage: 230.4
input.frequency: 50.0
ups.load: 23
ups.temperature: 31.5
ups.mfr: Acme
ups.model: "Back 500"
ups.id: office
"""

# Values that need escaping on the wire (upsc unescapes, aionut does not).
FANCY_DEV = r"""ups.status: OB LB
ups.mfr: "Acme \"Power\" Co"
ups.serial: "A\#1\\2"
ups.model: Back   500
Mixed.Case.Var: x
"""

#: ups.conf sections, in order. Only ``dummy``, ``other`` and ``fancy`` are read-only.
UPS: dict[str, dict[str, str | int]] = {
    "dummy": {"port": "dummy.dev", "desc": "Test UPS"},
    "other": {"port": "dummy.dev"},
    "fancy": {"port": "fancy.dev", "desc": "Escapes"},
    "rwups": {"port": "dummy.dev", "desc": "upsrw target"},  # upsrw -s
    "loginups": {"port": "dummy.dev"},  # LOGIN for upsc -c
    "pyups": {"port": "dummy.dev"},  # PyNUT SetRWVar, DeviceLogin, FSD
}

#: ``upsc dummy@...`` as upsd + dummy-ups 2.8.0 print it.
DUMMY_UPSC = """\
battery.charge: 100
battery.runtime: 1800
device.mfr: Acme
device.model: Back 500
device.type: ups
driver.name: dummy-ups
driver.parameter.mode: dummy-once
driver.parameter.pollinterval: 2
driver.parameter.port: dummy.dev
driver.parameter.synchronous: auto
driver.version: 2.8.0
driver.version.internal: 0.15
input.frequency: 50.0
input.voltage: 230.4
ups.id: office
ups.load: 23
ups.mfr: Acme
ups.model: Back 500
ups.status: OL CHRG
ups.temperature: 31.5
"""

DUMMY_VARS = dict(line.split(": ", 1) for line in DUMMY_UPSC.splitlines())
DUMMY_RW = (
    "battery.charge",
    "battery.runtime",
    "input.frequency",
    "input.voltage",
    "ups.id",
    "ups.load",
    "ups.mfr",
    "ups.model",
    "ups.status",
    "ups.temperature",
)

_TRACKING_RE = re.compile(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}")


@attrs.frozen
class Servers:
    """The two servers serving the same configuration directory."""

    confdir: Path
    real: int  # port of the real upsd
    ours: int  # port of nuttrio

    @property
    def ports(self) -> tuple[int, int]:
        return self.real, self.ours


@attrs.frozen
class Result:
    """A finished client process, normalised."""

    rc: int
    out: str
    err: str


def normalise(text: str, port: int) -> str:
    """Replace what legitimately differs: VER text, tracking ids, the server's port."""
    text = text.replace(VER_TEXT, UPSD_VER)
    text = _TRACKING_RE.sub("<ID>", text)
    return text.replace(f"{HOST}:{port}", f"{HOST}:<PORT>")


def normalise_obj(value: Any) -> Any:
    """Replace VER text and tracking ids in every str/bytes of a client library's result."""
    if isinstance(value, bytes):
        return normalise_obj(value.decode("latin-1")).encode("latin-1")
    if isinstance(value, str):
        return _TRACKING_RE.sub("<ID>", value.replace(VER_TEXT, UPSD_VER))
    if isinstance(value, dict):
        return {normalise_obj(k): normalise_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(normalise_obj(v) for v in value)
    if isinstance(value, set):
        return {normalise_obj(v) for v in value}
    return value


def run_client(argv: Sequence[str], port: int) -> Result:
    """Run a client; ``{hp}`` in an argument becomes ``127.0.0.1:<port>``."""
    args = [a.replace("{hp}", f"{HOST}:{port}") for a in argv]
    done = subprocess.run(
        args,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    return Result(
        done.returncode,
        normalise(done.stdout.decode("latin-1"), port),
        normalise(done.stderr.decode("latin-1"), port),
    )


def same(servers: Servers, argv: Sequence[str]) -> Result:
    """Run ``argv`` against both servers, assert equal results and return upsd's."""
    theirs = run_client(argv, servers.real)
    ours = run_client(argv, servers.ours)
    assert ours == theirs, f"{' '.join(argv)}: nuttrio differs from upsd"
    return theirs


def same_call(servers: Servers, func: Callable[[int], Any]) -> Any:
    """Call ``func(port)`` for both servers, assert equal normalised results, return upsd's."""
    theirs = normalise_obj(func(servers.real))
    ours = normalise_obj(func(servers.ours))
    assert ours == theirs
    return theirs


def upsc_value(port: int, ups: str, var: str) -> str:
    return run_client(["upsc", f"{ups}@{{hp}}", var], port).out


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    require_real_nut()
    missing = [c for c in ("upscmd", "upsrw", "upslog") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"NUT clients missing: {missing} (package nut-client)")
    confdir = Path(tmp_path_factory.mktemp("clients")) / "conf"
    confdir.mkdir()
    (confdir / "dummy.dev").write_text(DUMMY_DEV, encoding="ascii")
    (confdir / "fancy.dev").write_text(FANCY_DEV, encoding="ascii")
    upsd_port, our_port = free_port(), free_port()
    write_nut_config(confdir, port=upsd_port, ups=UPS)
    real = RealNut(confdir)
    ours = NuttrioProcess(["--nut-config", str(confdir), "--listen", f"{HOST}:{our_port}"])
    with contextlib.ExitStack() as stack:
        stack.callback(real.stop)
        # Start both at once: each needs a few seconds for its drivers' first update.
        with ThreadPoolExecutor(max_workers=1) as pool:
            nuttrio_started = pool.submit(ours.__enter__)
            try:
                real.start()
            finally:
                if nuttrio_started.exception() is None:
                    stack.push(ours)  # its __exit__ stops it and checks the exit status
            nuttrio_started.result()
        yield Servers(confdir, upsd_port, our_port)


# --------------------------------------------------------------------------
# upsc


@pytest.mark.parametrize(
    ("argv", "rc", "out", "err"),
    [
        pytest.param(["upsc", "dummy@{hp}"], 0, DUMMY_UPSC, "", id="dump"),
        pytest.param(["upsc", "DUMMY@{hp}"], 0, DUMMY_UPSC, "", id="dump-ups-case"),
        pytest.param(["upsc", "dummy@{hp}", "ups.status"], 0, "OL CHRG\n", "", id="one-var"),
        pytest.param(["upsc", "dummy@{hp}", "UPS.Status"], 0, "OL CHRG\n", "", id="var-case"),
        pytest.param(["upsc", "dummy@{hp}", "ups.model"], 0, "Back 500\n", "", id="spaces"),
        pytest.param(
            ["upsc", "dummy@{hp}", "server.version"], 0, "2.8.0\n", "", id="server-version"
        ),
        pytest.param(
            ["upsc", "dummy@{hp}", "nope.var"],
            1,
            "",
            "Error: Variable not supported by UPS\n",
            id="unknown-var",
        ),
        pytest.param(["upsc", "nope@{hp}"], 1, "", "Error: Unknown UPS\n", id="unknown-ups"),
        pytest.param(
            ["upsc", "nope@{hp}", "ups.status"], 1, "", "Error: Unknown UPS\n", id="unknown-ups-var"
        ),
        pytest.param(["upsc", "-l", "{hp}"], 0, "".join(f"{u}\n" for u in UPS), "", id="list-ups"),
        pytest.param(
            ["upsc", "-L", "{hp}"],
            0,
            "dummy: Test UPS\nother: Description unavailable\nfancy: Escapes\n"
            "rwups: upsrw target\nloginups: Description unavailable\n"
            "pyups: Description unavailable\n",
            "",
            id="list-ups-desc",
        ),
        pytest.param(["upsc", "-c", "other@{hp}"], 0, "", "", id="no-clients"),
        pytest.param(["upsc", "-c", "nope@{hp}"], 1, "", "Error: Unknown UPS\n", id="clients-nope"),
    ],
)
def test_upsc(servers: Servers, argv: list[str], rc: int, out: str, err: str) -> None:
    result = same(servers, argv)
    assert result == Result(rc, out, SSL_BANNER + err)


def test_upsc_escaped_values(servers: Servers) -> None:
    result = same(servers, ["upsc", "fancy@{hp}"])
    assert result.rc == 0
    lines = result.out.splitlines()
    assert 'ups.mfr: Acme "Power" Co' in lines
    assert r"ups.serial: A#1\2" in lines
    assert "ups.model: Back 500" in lines
    assert "ups.status: OB LB" in lines
    assert "Mixed.Case.Var: x" in lines
    # dummy-ups copies ups.* to device.* in escaped form (a 2.8.0 quirk)
    assert r"device.mfr: Acme \"Power\" Co" in lines
    assert r"device.serial: A\#1\\2" in lines
    # upsd sorts case-insensitively
    names = [line.split(":", 1)[0] for line in lines]
    assert names == sorted(names, key=str.lower)


def test_upsc_clients_after_login(servers: Servers) -> None:
    """``upsc -c`` lists one line per connection that did LOGIN, gone once it closes."""
    with contextlib.ExitStack() as stack:
        for port in servers.ports:
            for _ in range(2):
                conn = stack.enter_context(NutConnection(port))
                for line in (
                    f"USERNAME {MONITOR_USER}",
                    f"PASSWORD {MONITOR_PASSWORD}",
                    "LOGIN loginups",
                ):
                    assert conn.request(line) == b"OK\n", (port, line)
        result = same(servers, ["upsc", "-c", "loginups@{hp}"])
        assert result == Result(0, "127.0.0.1\n127.0.0.1\n", SSL_BANNER)
        # another UPS is not affected
        assert same(servers, ["upsc", "-c", "dummy@{hp}"]) == Result(0, "", SSL_BANNER)
    for port in servers.ports:
        wait_until(
            lambda port=port: run_client(["upsc", "-c", "loginups@{hp}"], port).out == "",
            5.0,
            f"the closed connections to leave LIST CLIENT on port {port}",
        )


# --------------------------------------------------------------------------
# upscmd

UPSCMD_LIST = (
    "Instant commands supported on UPS [dummy]:\n\nload.off - Turn off the load immediately\n"
)
ADMIN = ["-u", ADMIN_USER, "-p", ADMIN_PASSWORD]


def _rw_block(var: str, desc: str, maxlen: int | None = None) -> str:
    kind = "Type: NUMBER\n" if maxlen is None else f"Type: STRING\nMaximum length: {maxlen}\n"
    return f"[{var}]\n{desc}\n{kind}Value: {DUMMY_VARS[var]}\n\n"


#: ``upsrw dummy@...`` as upsd 2.8.0 prints it (dummy-ups makes every variable RW).
UPSRW_LIST = (
    _rw_block("battery.charge", "Battery charge (percent of full)")
    + _rw_block("battery.runtime", "Battery runtime (seconds)")
    + _rw_block("input.frequency", "Input line frequency (Hz)")
    + _rw_block("input.voltage", "Input voltage (V)")
    + _rw_block("ups.id", "UPS system identifier", 16)
    + _rw_block("ups.load", "Load on UPS (percent of full)")
    + _rw_block("ups.mfr", "UPS manufacturer", 32)
    + _rw_block("ups.model", "UPS model", 32)
    + _rw_block("ups.status", "UPS status", 32)
    + _rw_block("ups.temperature", "UPS temperature (degrees C)")
)


@pytest.mark.parametrize(
    ("argv", "rc", "out", "err"),
    [
        pytest.param(["upscmd", "-l", "dummy@{hp}"], 0, UPSCMD_LIST, "", id="list"),
        pytest.param(
            ["upscmd", "-l", "nope@{hp}"], 1, "", "Error: Unknown UPS\n", id="list-unknown-ups"
        ),
        pytest.param(["upscmd", *ADMIN, "dummy@{hp}", "load.off"], 0, "", "OK\n", id="run"),
        pytest.param(
            ["upscmd", *ADMIN, "dummy@{hp}", "LOAD.OFF", "5"], 0, "", "OK\n", id="run-param"
        ),
        # dummy-ups answers every command with STAT_INSTCMD_UNKNOWN
        pytest.param(
            ["upscmd", "-w", *ADMIN, "dummy@{hp}", "load.off"], 0, "", "ERR UNKNOWN\n", id="wait"
        ),
        # upscmd sends "INSTCMD dummy load.off a b" (value not quoted): upsd drops a
        # parameter given as two words and forwards "INSTCMD load.off TRACKING <id>"
        pytest.param(
            ["upscmd", "-w", *ADMIN, "dummy@{hp}", "load.off", "a b"],
            0,
            "",
            "ERR UNKNOWN\n",
            id="wait-param-with-space",
        ),
        pytest.param(
            ["upscmd", "-u", ADMIN_USER, "-p", "wrong", "dummy@{hp}", "load.off"],
            1,
            "",
            "Unexpected response from upsd: ERR ACCESS-DENIED\n",
            id="wrong-password",
        ),
        pytest.param(
            ["upscmd", "-u", MONITOR_USER, "-p", MONITOR_PASSWORD, "dummy@{hp}", "load.off"],
            1,
            "",
            "Unexpected response from upsd: ERR ACCESS-DENIED\n",
            id="no-instcmds",
        ),
        pytest.param(
            ["upscmd", *ADMIN, "dummy@{hp}", "nope.cmd"],
            1,
            "",
            "Unexpected response from upsd: ERR CMD-NOT-SUPPORTED\n",
            id="unknown-cmd",
        ),
        pytest.param(
            ["upscmd", "-w", *ADMIN, "dummy@{hp}", "nope.cmd"],
            1,
            "",
            "Unexpected response from upsd: ERR CMD-NOT-SUPPORTED\n",
            id="wait-unknown-cmd",
        ),
        pytest.param(
            ["upscmd", *ADMIN, "nope@{hp}", "load.off"],
            1,
            "",
            "Unexpected response from upsd: ERR UNKNOWN-UPS\n",
            id="unknown-ups",
        ),
    ],
)
def test_upscmd(servers: Servers, argv: list[str], rc: int, out: str, err: str) -> None:
    result = same(servers, argv)
    assert result == Result(rc, out, err)


# --------------------------------------------------------------------------
# upsrw


@pytest.mark.parametrize(
    ("argv", "rc", "out", "err"),
    [
        pytest.param(["upsrw", "dummy@{hp}"], 0, "<DUMMY_RW>", "", id="list"),
        pytest.param(["upsrw", "-l", "dummy@{hp}"], 0, "<DUMMY_RW>", "", id="list-l"),
        pytest.param(["upsrw", "nope@{hp}"], 1, "", "Error: Unknown UPS\n", id="list-unknown-ups"),
        pytest.param(
            ["upsrw", "-s", "ups.id=abcdefghijklmnopq", *ADMIN, "rwups@{hp}"],
            1,
            "",
            "Unexpected response from upsd: ERR TOO-LONG\n",
            id="string-too-long",
        ),
        pytest.param(
            ["upsrw", "-s", "ups.mfr=" + "m" * 33, *ADMIN, "rwups@{hp}"],
            1,
            "",
            "Unexpected response from upsd: ERR TOO-LONG\n",
            id="string-too-long-32",
        ),
        pytest.param(
            ["upsrw", "-w", "-s", "ups.id=abcdefghijklmnopq", *ADMIN, "rwups@{hp}"],
            1,
            "",
            "Unexpected response from upsd: ERR TOO-LONG\n",
            id="wait-string-too-long",
        ),
        pytest.param(
            ["upsrw", "-s", "nope.var=1", *ADMIN, "rwups@{hp}"],
            1,
            "",
            "Unexpected response from upsd: ERR VAR-NOT-SUPPORTED\n",
            id="unknown-var",
        ),
        pytest.param(
            ["upsrw", "-s", "ups.load=5", "-u", ADMIN_USER, "-p", "wrong", "rwups@{hp}"],
            1,
            "",
            "Unexpected response from upsd: ERR ACCESS-DENIED\n",
            id="wrong-password",
        ),
        pytest.param(
            ["upsrw", "-s", "ups.load=5", *ADMIN, "nope@{hp}"],
            1,
            "",
            "Unexpected response from upsd: ERR UNKNOWN-UPS\n",
            id="set-unknown-ups",
        ),
    ],
)
def test_upsrw(servers: Servers, argv: list[str], rc: int, out: str, err: str) -> None:
    result = same(servers, argv)
    assert result == Result(rc, out.replace("<DUMMY_RW>", UPSRW_LIST), err)


def test_upsrw_escaped_values(servers: Servers) -> None:
    result = same(servers, ["upsrw", "fancy@{hp}"])
    assert result.rc == 0
    blocks = result.out.split("\n\n")
    assert blocks[0] == "[Mixed.Case.Var]\nDescription unavailable\nType: STRING\n" + (
        "Maximum length: 32\nValue: x"
    )
    mfr = '[ups.mfr]\nUPS manufacturer\nType: STRING\nMaximum length: 32\nValue: Acme "Power" Co'
    serial = "[ups.serial]\nUPS serial number\nType: STRING\nMaximum length: 32\nValue: A#1\\2"
    assert mfr in blocks
    assert serial in blocks


def test_upsrw_set_then_upsc(servers: Servers) -> None:
    result = same(servers, ["upsrw", "-s", "ups.load=42", *ADMIN, "rwups@{hp}"])
    assert result == Result(0, "", "OK\n")
    for port in servers.ports:
        wait_until(
            lambda port=port: upsc_value(port, "rwups", "ups.load") == "42\n",
            SET_VISIBLE_TIMEOUT,
            f"ups.load=42 on port {port}",
        )
    assert same(servers, ["upsc", "rwups@{hp}", "ups.load"]) == Result(0, "42\n", SSL_BANNER)


def test_upsrw_wait(servers: Servers) -> None:
    result = same(servers, ["upsrw", "-w", "-s", "ups.id=kitchen", *ADMIN, "rwups@{hp}"])
    assert result == Result(0, "", "SUCCESS\n")
    # SUCCESS comes from the driver after it has published the new value
    assert same(servers, ["upsc", "rwups@{hp}", "ups.id"]) == Result(0, "kitchen\n", SSL_BANNER)


#: ``upsrw -w -s`` assignments on ``rwups``, in order, and what ``upsc`` reads right after.
UPSRW_SEQUENCE: tuple[tuple[str, Result], ...] = (
    ("ups.status=OB LB", Result(0, "OB LB\n", SSL_BANNER)),
    # dummy-ups ignores a change of letter case only (strcasecmp)
    ("ups.status=ob lb", Result(0, "OB LB\n", SSL_BANNER)),
    # values are cut to 255 bytes by the driver; NUMBER variables are not checked
    ("ups.load=" + "7" * 300, Result(0, "7" * 255 + "\n", SSL_BANNER)),
    ("battery.charge=abc", Result(0, "abc\n", SSL_BANNER)),
    ("ups.id=  two  sp ", Result(0, "  two  sp \n", SSL_BANNER)),
    # an empty value deletes the variable
    ("ups.temperature=", Result(1, "", SSL_BANNER + "Error: Variable not supported by UPS\n")),
)


def test_upsrw_wait_sequence(servers: Servers) -> None:
    for assignment, readback in UPSRW_SEQUENCE:
        var = assignment.split("=", 1)[0]
        result = same(servers, ["upsrw", "-w", "-s", assignment, *ADMIN, "rwups@{hp}"])
        assert result == Result(0, "", "SUCCESS\n"), assignment
        assert same(servers, ["upsc", "rwups@{hp}", var]) == readback, assignment


def deliberate_difference(servers: Servers, argv: list[str], real: Result, ours: Result) -> None:
    """Pin a difference listed in docs/compat.md: upsd gives ``real``, nuttrio ``ours``."""
    assert run_client(argv, servers.real) == real
    assert run_client(argv, servers.ours) == ours


def test_upsrw_set_value_with_escapes(servers: Servers) -> None:
    """dummy-ups 2.8.0 sends a changed value to upsd unescaped (``dstate_setinfo``:
    ``SETINFO ups.id "a\\b"c"``), so upsd stores ``ab``; nuttrio keeps what was set."""
    result = same(servers, ["upsrw", "-w", "-s", 'ups.id=a\\b"c', *ADMIN, "rwups@{hp}"])
    assert result == Result(0, "", "SUCCESS\n")
    deliberate_difference(
        servers,
        ["upsc", "rwups@{hp}", "ups.id"],
        real=Result(0, "ab\n", SSL_BANNER),
        ours=Result(0, 'a\\b"c\n', SSL_BANNER),
    )


# --------------------------------------------------------------------------
# upslog

UPSLOG_TIME = re.compile(r"^\d{8} \d{6} ", re.MULTILINE)


def run_upslogs(servers: Servers, tmp_path: Path, ups: str, fmt: str | None) -> list[Result]:
    """Run upslog against both servers at once until each logged 3 lines; return them.

    ``out`` of each result is the first 3 lines of the log file (timestamps replaced),
    ``err`` is stdout + stderr of the process (killed with SIGTERM).
    """
    procs: list[tuple[int, Path, subprocess.Popen[bytes]]] = []
    try:
        for port in servers.ports:
            log = tmp_path / f"upslog-{port}.log"
            argv = ["upslog", "-s", f"{ups}@{HOST}:{port}", "-l", str(log), "-i", "1", "-F"]
            argv += ["-p", str(tmp_path / f"upslog-{port}")]  # not the system-wide PID file
            if fmt is not None:
                argv += ["-f", fmt]
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            procs.append((port, log, proc))

        def lines(log: Path) -> list[str]:
            try:
                text = log.read_text(encoding="latin-1")
            except FileNotFoundError:
                return []
            return text.splitlines(keepends=True)[: text.count("\n")]

        wait_until(
            lambda: all(len(lines(log)) >= 3 for _, log, _ in procs),
            10.0,
            "3 lines from each upslog",
        )
        results = []
        for port, log, proc in procs:
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=10)
            first = "".join(lines(log)[:3])
            assert len(UPSLOG_TIME.findall(first)) == 3, first
            results.append(
                Result(
                    proc.returncode,
                    normalise(UPSLOG_TIME.sub("<TIME> ", first), port),
                    normalise((stdout + stderr).decode("latin-1"), port).replace(str(log), "<LOG>"),
                )
            )
        return results
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


#: upslog's stdout, then its stderr (it was stopped with SIGTERM).
UPSLOG_MESSAGES = (
    "Network UPS Tools upslog 2.8.0\n"
    "logging status of {ups}@127.0.0.1:<PORT> to <LOG> (1s intervals)\n"
    + SSL_BANNER
    + "Signal 15: exiting\n"
)


@pytest.mark.parametrize(
    ("ups", "fmt", "line"),
    [
        pytest.param("dummy", None, "<TIME> 100 230.4 23 [OL CHRG] 31.5 50.0\n", id="default"),
        pytest.param(
            "fancy",
            "%TIME @Y@m@d @H@M@S% %UPSHOST% %VAR ups.mfr% [%VAR ups.status%] %VAR nope.var%",
            '<TIME> fancy@127.0.0.1:<PORT> Acme "Power" Co [OB LB] NA\n',
            id="format",
        ),
    ],
)
def test_upslog(servers: Servers, tmp_path: Path, ups: str, fmt: str | None, line: str) -> None:
    theirs, ours = run_upslogs(servers, tmp_path, ups, fmt)
    assert ours.out == theirs.out
    assert theirs.out == line * 3
    assert theirs.rc == ours.rc == 0
    assert ours.err == theirs.err
    assert theirs.err == UPSLOG_MESSAGES.format(ups=ups)


# --------------------------------------------------------------------------
# PyNUT


def pynut_session(port: int) -> dict[str, Any]:
    """Call every PyNUTClient method worth calling; results (or errors) by step name."""
    from PyNUTClient.PyNUT import PyNUTClient, PyNUTError

    out: dict[str, Any] = {}

    def call(name: str, func: Callable[[], Any]) -> None:
        try:
            out[name] = func()
        except PyNUTError as exc:
            out[name] = ("PyNUTError", exc.args)

    client = PyNUTClient(host=HOST, port=port, login=ADMIN_USER, password=ADMIN_PASSWORD)
    try:
        call("GetUPSList", client.GetUPSList)
        call("GetUPSNames", client.GetUPSNames)
        call("GetUPSVars", lambda: client.GetUPSVars("dummy"))
        call("GetUPSVars nope", lambda: client.GetUPSVars("nope"))
        call("GetUPSCommands", lambda: client.GetUPSCommands("dummy"))
        call("GetRWVars", lambda: client.GetRWVars("dummy"))
        call("CheckUPSAvailable", lambda: client.CheckUPSAvailable("dummy"))
        call("CheckUPSAvailable nope", lambda: client.CheckUPSAvailable("nope"))
        call("help", client.help)
        call("ver", client.ver)
        call("ListClients before", lambda: client.ListClients("pyups"))
        call("DeviceLogin", lambda: client.DeviceLogin("pyups"))
        call("DeviceLogin again", lambda: client.DeviceLogin("pyups"))
        call("ListClients", lambda: client.ListClients("pyups"))
        call("ListClients all", client.ListClients)
        call("ListClients nope", lambda: client.ListClients("nope"))
        call("SetRWVar", lambda: client.SetRWVar("pyups", "ups.load", "55"))
        call("SetRWVar nope", lambda: client.SetRWVar("pyups", "nope.var", "1"))
        call("SetRWVar too long", lambda: client.SetRWVar("pyups", "ups.id", "x" * 17))
        call("RunUPSCommand", lambda: client.RunUPSCommand("pyups", "load.off"))
        call("RunUPSCommand nope", lambda: client.RunUPSCommand("pyups", "nope.cmd"))
        call("FSD", lambda: client.FSD("pyups"))
        wait_until(
            lambda: client.GetUPSVars("pyups").get(b"ups.load") == b"55",
            SET_VISIBLE_TIMEOUT,
            f"PyNUT's SET VAR on port {port}",
        )
        call("GetUPSVars pyups", lambda: client.GetUPSVars("pyups"))
    finally:
        sock = client._PyNUTClient__srv_handler  # no close() in PyNUT
        with contextlib.suppress(OSError):
            sock.sendall(b"LOGOUT\n")
        sock.close()

    anonymous = PyNUTClient(host=HOST, port=port)
    call("anonymous RunUPSCommand", lambda: anonymous.RunUPSCommand("dummy", "load.off"))
    call("anonymous DeviceLogin", lambda: anonymous.DeviceLogin("dummy"))
    call("anonymous FSD", lambda: anonymous.FSD("dummy"))
    bad = PyNUTClient(host=HOST, port=port, login=ADMIN_USER, password="wrong")
    call("bad RunUPSCommand", lambda: bad.RunUPSCommand("dummy", "load.off"))
    call("bad SetRWVar", lambda: bad.SetRWVar("dummy", "ups.load", "1"))
    call("bad DeviceLogin", lambda: bad.DeviceLogin("dummy"))
    for other in (anonymous, bad):
        other._PyNUTClient__srv_handler.close()
    return out


def test_pynut(servers: Servers) -> None:
    got = same_call(servers, pynut_session)
    rw = {k.encode(): DUMMY_VARS[k].encode() for k in DUMMY_RW}
    pyups = {k.encode(): v.encode() for k, v in DUMMY_VARS.items()}
    pyups[b"ups.load"] = b"55"
    pyups[b"ups.status"] = b"FSD OL CHRG"
    denied = ("PyNUTError", ("ERR ACCESS-DENIED",))
    assert got == {
        "GetUPSList": {
            b"dummy": b"Test UPS",
            b"other": b"Description unavailable",
            b"fancy": b"Escapes",
            b"rwups": b"upsrw target",
            b"loginups": b"Description unavailable",
            b"pyups": b"Description unavailable",
        },
        "GetUPSNames": list(UPS),
        "GetUPSVars": {k.encode(): v.encode() for k, v in DUMMY_VARS.items()},
        "GetUPSVars nope": ("PyNUTError", ("ERR UNKNOWN-UPS",)),
        # PyNUT 1.9 misparses CMDDESC ("Turn off the load immediately" on the wire)
        "GetUPSCommands": {b"load.off": b"Description unavailable"},
        "GetRWVars": rw,
        "CheckUPSAvailable": True,
        "CheckUPSAvailable nope": False,
        "help": HELP_TEXT.encode() + b"\n",
        "ver": UPSD_VER.encode() + b"\n",
        "ListClients before": {},
        "DeviceLogin": "OK",
        "DeviceLogin again": ("PyNUTError", ("ERR ALREADY-LOGGED-IN",)),
        "ListClients": {b"pyups": [b"127.0.0.1"]},
        "ListClients all": {b"pyups": [b"127.0.0.1"]},
        "ListClients nope": ("PyNUTError", ("ERR UNKNOWN-UPS",)),
        "SetRWVar": "OK",
        "SetRWVar nope": ("PyNUTError", ("ERR VAR-NOT-SUPPORTED",)),
        "SetRWVar too long": ("PyNUTError", ("ERR TOO-LONG",)),
        "RunUPSCommand": "OK",
        "RunUPSCommand nope": ("PyNUTError", ("ERR CMD-NOT-SUPPORTED",)),
        "FSD": "OK",
        "GetUPSVars pyups": pyups,
        "anonymous RunUPSCommand": ("PyNUTError", ("ERR USERNAME-REQUIRED",)),
        "anonymous DeviceLogin": ("PyNUTError", ("ERR USERNAME-REQUIRED",)),
        "anonymous FSD": denied,
        "bad RunUPSCommand": denied,
        "bad SetRWVar": denied,
        "bad DeviceLogin": denied,
    }


# --------------------------------------------------------------------------
# aionut (Home Assistant)


async def ha_session(port: int, username: str | None, password: str | None) -> dict[str, Any]:
    """What Home Assistant's NUT integration does, in its order, plus some errors."""
    from aionut import AIONUTClient, NUTError

    out: dict[str, Any] = {}

    async def call(name: str, coro: Any) -> None:
        try:
            out[name] = await coro
        except NUTError as exc:
            out[name] = (type(exc).__name__, str(exc))

    client = AIONUTClient(HOST, port, username, password)
    try:
        await call("list_ups", client.list_ups())
        await call("list_vars", client.list_vars("dummy"))
        await call("list_commands", client.list_commands("dummy"))
        await call("description", client.description("dummy"))
        await call("run_command", client.run_command("dummy", "load.off"))
        await call("run_command param", client.run_command("dummy", "load.off", "10"))
        await call("run_command nope", client.run_command("dummy", "nope.cmd"))
        await call("description other", client.description("other"))
        await call("description nope", client.description("nope"))
        await call("list_vars nope", client.list_vars("nope"))
        await call("list_vars fancy", client.list_vars("fancy"))
        await call("list_commands after errors", client.list_commands("dummy"))
    finally:
        client.shutdown()
    return out


def test_aionut_home_assistant(servers: Servers) -> None:
    got = same_call(servers, lambda port: asyncio.run(ha_session(port, ADMIN_USER, ADMIN_PASSWORD)))
    cmd_error = "Error running: INSTCMD dummy nope.cmd: ERR CMD-NOT-SUPPORTED"
    assert got == {
        "list_ups": {
            "dummy": "Test UPS",
            "other": "Description unavailable",
            "fancy": "Escapes",
            "rwups": "upsrw target",
            "loginups": "Description unavailable",
            "pyups": "Description unavailable",
        },
        "list_vars": DUMMY_VARS,
        "list_commands": {"load.off"},
        "description": "Test UPS",
        "run_command": "OK",
        "run_command param": "OK",
        "run_command nope": ("NUTCommandError", cmd_error),
        "description other": "Unavailable",
        "description nope": (
            "NUTCommandError",
            "Error running: GET UPSDESC nope: ERR UNKNOWN-UPS",
        ),
        "list_vars nope": ("NUTCommandError", "Error running: LIST VAR nope: ERR UNKNOWN-UPS"),
        "list_vars fancy": got["list_vars fancy"],
        "list_commands after errors": {"load.off"},
    }
    fancy = got["list_vars fancy"]
    assert fancy["ups.mfr"] == r"Acme \"Power\" Co"  # aionut does not unescape
    assert fancy["ups.status"] == "OB LB"


@pytest.mark.parametrize(
    ("username", "password", "error"),
    [
        pytest.param(None, None, ("NUTCommandError", "ERR USERNAME-REQUIRED"), id="anonymous"),
        pytest.param(ADMIN_USER, "wrong", ("NUTLoginError", "ERR ACCESS-DENIED"), id="wrong"),
        pytest.param(
            MONITOR_USER, MONITOR_PASSWORD, ("NUTLoginError", "ERR ACCESS-DENIED"), id="no-right"
        ),
    ],
)
def test_aionut_credentials(
    servers: Servers, username: str | None, password: str | None, error: tuple[str, str]
) -> None:
    got = same_call(servers, lambda port: asyncio.run(ha_session(port, username, password)))
    assert got["list_commands"] == {"load.off"}  # LIST CMD needs no login
    assert got["list_vars"] == DUMMY_VARS
    message = f"Error running: INSTCMD dummy load.off: {error[1]}"
    assert got["run_command"] == (error[0], message)
