"""nuttrio's upsc, upscmd, upsrw and upslog against Debian's NUT 2.8.0 tools, byte for byte.

One server pair serves one configuration directory for the whole module: the real upsd
2.8.0 + dummy-ups, and nuttrio (``python -m nuttrio``), each on 127.0.0.1 and ::1. Every
case runs Debian's tool and nuttrio's (in-process, through
:func:`nuttrio.cli.clients.run_tool`, without a terminal) against each server, and
compares exit status, standard output and standard error exactly. A few cases also pin
what upsd's answer must contain, so that a case cannot pass by both tools failing alike.

Deliberate differences are listed in :data:`ALLOWED_DIFFERENCES` with their reasons; a
case listed there must still differ exactly as described (nuttrio's output starts with
NUT's and adds only the documented lines).

State: SETs go to ``rwups`` (always to the same values, so repeating them changes
nothing), instant commands to ``cmdups`` (dummy-ups ignores them); ``dummy`` and
``fancy`` are only read.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from nuttrio.cli.clients import run_tool
from nuttrio.cli.clients._base import Stdio

from .helpers import ipv6_loopback_missing, wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import HOST, NutConnection, RealNut, free_port, require_real_nut, write_nut_config

pytestmark = pytest.mark.realnut

DUMMY_DEV = """\
ups.status: OL CHRG
battery.charge: 100
input.voltage: 230.4
ups.load: 23
ups.model: "Back 500"
"""
FANCY_DEV = r"""ups.status: OB LB
ups.mfr: "Acme \"Power\" Co"
ups.serial: "A\#1\\2"
"""
UPS: dict[str, dict[str, str | int]] = {
    "dummy": {"port": "dummy.dev", "desc": "Test UPS"},
    "fancy": {"port": "fancy.dev", "desc": 'Quotes " and \\ backslash'},
    "rwups": {"port": "dummy.dev"},
    "cmdups": {"port": "dummy.dev"},
}
TOOL_TIMEOUT = 20.0
LONG = "x" * 40  # longer than dummy-ups' STRING:32
#: Why the ``{h6}`` cases are skipped (the servers then listen on 127.0.0.1 only), or None.
NO_IPV6 = ipv6_loopback_missing()


@attrs.frozen
class Servers:
    """The two servers; ``ports[name]`` is where each listens (127.0.0.1 and ::1)."""

    confdir: Path
    ports: dict[str, int]


@attrs.frozen
class Result:
    """A finished tool."""

    rc: int
    out: bytes
    err: bytes


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    require_real_nut()
    missing = [c for c in ("upsc", "upscmd", "upsrw", "upslog") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"NUT clients missing: {missing} (Debian package nut-client)")
    confdir = Path(tmp_path_factory.mktemp("tools")) / "conf"
    confdir.mkdir()
    (confdir / "dummy.dev").write_text(DUMMY_DEV, encoding="ascii")
    (confdir / "fancy.dev").write_text(FANCY_DEV, encoding="ascii")
    upsd_port, our_port = free_port(), free_port()
    extra = "" if NO_IPV6 else f"LISTEN ::1 {upsd_port}"
    write_nut_config(confdir, port=upsd_port, ups=UPS, upsd_extra=extra)
    real = RealNut(confdir)
    listen = ["--listen", f"{HOST}:{our_port}"]
    listen += [] if NO_IPV6 else ["--listen", f"[::1]:{our_port}"]
    ours = NuttrioProcess(["--nut-config", str(confdir), *listen])
    with contextlib.ExitStack() as stack:
        stack.callback(real.stop)
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = pool.submit(ours.__enter__)
            try:
                real.start()
            finally:
                if started.exception() is None:
                    stack.push(ours)
            started.result()
        yield Servers(confdir, {"upsd": upsd_port, "nuttrio": our_port})


def expand(argv: Sequence[str], port: int, confdir: Path) -> list[str]:
    """``{hp}`` -> 127.0.0.1:port, ``{h6}`` -> [::1]:port, ``{dir}`` -> the config dir."""
    mapping = {"{hp}": f"{HOST}:{port}", "{h6}": f"[::1]:{port}", "{dir}": str(confdir)}
    out = []
    for arg in argv:
        for key, value in mapping.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def run_nut(tool: str, argv: Sequence[str], stdin: bytes = b"") -> Result:
    """Debian's tool, without a controlling terminal (as the in-process run has none)."""
    done = subprocess.run(
        [tool, *argv],
        input=stdin,
        capture_output=True,
        timeout=TOOL_TIMEOUT,
        check=False,
        start_new_session=True,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_both(tool: str, argv: Sequence[str], stdin: bytes = b"") -> tuple[Result, Result]:
    """Debian's tool (a process) and nuttrio's (in-process) at the same time."""
    proc = subprocess.Popen(
        [tool, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        ours = run_ours(tool, argv, stdin)
        out, err = proc.communicate(stdin, timeout=TOOL_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(proc.returncode, out, err), ours


def run_ours(tool: str, argv: Sequence[str], stdin: bytes = b"") -> Result:
    """nuttrio's tool in this process, on byte buffers, with no terminal."""
    out, err = io.BytesIO(), io.BytesIO()
    rc = run_tool(tool, argv, Stdio(out, err, io.BytesIO(stdin), tty=None))
    return Result(rc, out.getvalue(), err.getvalue())


@attrs.frozen
class Case:
    """One invocation; ``expect``: bytes upsd's run must print (stdout + stderr)."""

    tool: str
    argv: tuple[str, ...]
    stdin: bytes = b""
    expect: bytes | None = None


def case(tool: str, *argv: str, stdin: bytes = b"", expect: bytes | None = None, id: str) -> object:
    return pytest.param(Case(tool, argv, stdin, expect), id=id)


AUTH = ("-u", "admin", "-p", "adminpass")

CASES = [
    # upsc
    case("upsc", "dummy@{hp}", expect=b"ups.status: OL CHRG\n", id="upsc-dump"),
    case("upsc", "DUMMY@{hp}", id="upsc-dump-case"),
    case("upsc", "dummy@{hp}", "ups.status", expect=b"OL CHRG\n", id="upsc-var"),
    case("upsc", "dummy@{hp}", "ups.status", "extra", id="upsc-extra-arg"),
    case("upsc", "dummy@{h6}", "ups.model", expect=b"Back 500\n", id="upsc-ipv6"),
    case("upsc", "fancy@{hp}", id="upsc-escapes"),
    case("upsc", "nope@{hp}", expect=b"Error: Unknown UPS\n", id="upsc-unknown-ups"),
    case("upsc", "dummy@{hp}", "nope.x", expect=b"Variable not supported", id="upsc-unknown-var"),
    case("upsc", "dummy@{hp}", "nope", expect=b"old-style", id="upsc-old-var"),
    case("upsc", "-l", "{hp}", expect=b"dummy\nfancy\n", id="upsc-l"),
    case("upsc", "-L", "{hp}", expect=b"dummy: Test UPS\n", id="upsc-L"),
    case("upsc", "-l", "{h6}", id="upsc-l-ipv6"),
    case("upsc", "-c", "dummy@{hp}", id="upsc-c"),
    case("upsc", "-c", "nope@{hp}", expect=b"Error: Unknown UPS\n", id="upsc-c-unknown"),
    case("upsc", "-c", id="upsc-c-missing"),
    case("upsc", "dummy@127.0.0.1:1", expect=b"Connection refused", id="upsc-refused"),
    case("upsc", "dummy@nosuchhost.invalid", expect=b"No such host", id="upsc-bad-host"),
    case("upsc", "dummy@{hp}x", id="upsc-port-suffix"),
    case("upsc", "dummy@127.0.0.1:", expect=b"no port specified", id="upsc-empty-port"),
    case("upsc", "dummy@127.0.0.1:0", id="upsc-port-zero"),
    case("upsc", "dummy@[::1", expect=b"missing closing bracket", id="upsc-bracket"),
    case("upsc", "", expect=b"can't parse empty string", id="upsc-empty"),
    case("upsc", "@{hp}", id="upsc-at-host"),
    case("upsc", expect=b"invalid UPS definition", id="upsc-no-args"),
    # the default host, localhost:3493 (whatever answers there, or nothing)
    case("upsc", "-l", id="upsc-l-default-host"),
    case("upsc", "dummy", "ups.status", id="upsc-default-host"),
    case("upscmd", "-l", "dummy", id="upscmd-default-host"),
    case("upsc", "-l", "127.0.0.1:", id="upsc-l-bad-host"),
    case("upsc", "-V", expect=b"Network UPS Tools upscmd 2.8.0\n", id="upsc-V"),
    case("upsc", "--", "dummy@{hp}", "ups.load", id="upsc-double-dash"),
    # upscmd
    case("upscmd", "-l", "dummy@{hp}", expect=b"load.off - Turn off", id="upscmd-l"),
    case("upscmd", "-l", "nope@{hp}", expect=b"Unknown UPS", id="upscmd-l-unknown"),
    case("upscmd", "-l", "dummy@{h6}", expect=b"load.off - Turn off", id="upscmd-l-ipv6"),
    case("upscmd", "-l", "nope@{h6}", expect=b"Unknown UPS", id="upscmd-l-ipv6-unknown"),
    case("upscmd", *AUTH, "cmdups@{hp}", "load.off", expect=b"OK\n", id="upscmd-ok"),
    case("upscmd", *AUTH, "-w", "cmdups@{hp}", "load.off", expect=b"ERR UNKNOWN\n", id="upscmd-w"),
    case("upscmd", *AUTH, "cmdups@{hp}", "load.off", "5", expect=b"OK\n", id="upscmd-param"),
    case("upscmd", *AUTH, "-w", "cmdups@{hp}", "load.off", "5", id="upscmd-w-param"),
    case(
        "upscmd", *AUTH, "cmdups@{hp}", "load.off", "a b", expect=b"OK\n", id="upscmd-param-space"
    ),
    case("upscmd", *AUTH, "-w", "-t", "0", "cmdups@{hp}", "load.off", id="upscmd-w-timeout"),
    case("upscmd", *AUTH, "-t", "x", "cmdups@{hp}", "load.off", id="upscmd-bad-timeout"),
    case(
        "upscmd", *AUTH, "cmdups@{hp}", "nope.cmd", expect=b"CMD-NOT-SUPPORTED", id="upscmd-unknown"
    ),
    case("upscmd", *AUTH, "nope@{hp}", "load.off", expect=b"UNKNOWN-UPS", id="upscmd-unknown-ups"),
    case("upscmd", *AUTH, "cmdups@{hp}", "nope", expect=b"old command names", id="upscmd-old"),
    case("upscmd", "-u", "admin", "-p", "bad", "cmdups@{hp}", "load.off", id="upscmd-bad-pass"),
    case(
        "upscmd",
        "-u",
        "monuser",
        "-p",
        "monpass",
        "cmdups@{hp}",
        "load.off",
        expect=b"ACCESS-DENIED",
        id="upscmd-denied",
    ),
    case(
        "upscmd",
        "-u",
        "admin",
        "cmdups@{hp}",
        "load.off",
        expect=b"Password: ",
        id="upscmd-prompt-pass",
    ),
    case("upscmd", "cmdups@{hp}", "load.off", expect=b"Username (", id="upscmd-prompt-user-eof"),
    case("upscmd", "cmdups@{hp}", "load.off", stdin=b"admin\nadminpass\n", id="upscmd-prompt-both"),
    case(
        "upscmd",
        "-u",
        "admin",
        "cmdups@{hp}",
        "load.off",
        stdin=b"adminpass\n",
        id="upscmd-prompt-ok",
    ),
    case(
        "upscmd",
        *AUTH,
        "cmdups@127.0.0.1:1",
        "load.off",
        expect=b"Connection refused",
        id="upscmd-refused",
    ),
    case("upscmd", *AUTH, "cmdups@", "load.off", id="upscmd-bad-ups"),
    case("upscmd", "-V", id="upscmd-V"),
    # upsrw
    case("upsrw", "dummy@{hp}", expect=b"[ups.load]\nLoad on UPS", id="upsrw-list"),
    case("upsrw", "-l", "fancy@{hp}", id="upsrw-list-fancy"),
    case("upsrw", "dummy@{h6}", expect=b"[ups.load]\nLoad on UPS", id="upsrw-list-ipv6"),
    case("upsrw", "-l", "fancy@{h6}", id="upsrw-list-ipv6-fancy"),
    case("upsrw", "nope@{hp}", expect=b"Unknown UPS", id="upsrw-unknown-ups"),
    case("upsrw", "-s", "ups.load=42", *AUTH, "rwups@{hp}", expect=b"OK\n", id="upsrw-set"),
    case(
        "upsrw",
        "-s",
        "ups.load=42",
        *AUTH,
        "-w",
        "rwups@{hp}",
        expect=b"SUCCESS\n",
        id="upsrw-set-w",
    ),
    case(
        "upsrw",
        "-s",
        "ups.load",
        *AUTH,
        "rwups@{hp}",
        stdin=b"42\n",
        expect=b"Enter new value",
        id="upsrw-set-prompt",
    ),
    case(
        "upsrw",
        "-s",
        "nope.x=1",
        *AUTH,
        "-w",
        "rwups@{hp}",
        expect=b"VAR-NOT-SUPPORTED",
        id="upsrw-set-fails",
    ),
    case("upsrw", "-s", f"ups.mfr={LONG}", *AUTH, "-w", "rwups@{hp}", id="upsrw-set-too-long"),
    case(
        "upsrw",
        "-s",
        'ups.model=Back "5" 0',
        *AUTH,
        "-w",
        "rwups@{hp}",
        expect=b"SUCCESS\n",
        id="upsrw-set-quotes",
    ),
    case(
        "upsrw",
        "-s",
        "nope=1",
        *AUTH,
        "rwups@{hp}",
        expect=b"old variable names",
        id="upsrw-set-old",
    ),
    case(
        "upsrw",
        "-s",
        "ups.load=42",
        "-u",
        "admin",
        "-p",
        "bad",
        "rwups@{hp}",
        expect=b"ACCESS-DENIED",
        id="upsrw-bad-pass",
    ),
    case("upsrw", "-s", "ups.load=42", "rwups@{hp}", expect=b"Username (", id="upsrw-prompts-eof"),
    case(
        "upsrw", "-s", "ups.load=42", "rwups@{hp}", stdin=b"admin\nadminpass\n", id="upsrw-prompts"
    ),
    case(
        "upsrw",
        "-s",
        "ups.load=42",
        "-l",
        "dummy@{hp}",
        expect=b"overriding setvar",
        id="upsrw-l-overrides",
    ),
    case("upsrw", "-s", "ups.load=42", *AUTH, "-w", "-t", "0", "rwups@{hp}", id="upsrw-w-timeout"),
    case("upsrw", "dummy@127.0.0.1:1", expect=b"Connection refused", id="upsrw-refused"),
    case("upsrw", "-V", expect=b"Network UPS Tools upsrw 2.8.0\n", id="upsrw-V"),
    # upslog: the cases that end before logging starts
    case("upslog", expect=b"No UPS defined", id="upslog-no-args"),
    case("upslog", "-s", "dummy@{hp}", expect=b"No filename", id="upslog-no-file"),
    case("upslog", "-l", "-", id="upslog-no-ups"),
    case("upslog", "-V", id="upslog-V"),
    case(
        "upslog", "-s", "dummy@", "-l", "-", expect=b"invalid UPS definition", id="upslog-bad-ups"
    ),
    case(
        "upslog",
        "-s",
        "dummy@{hp}",
        "-l",
        "/nonexistent/dir/log",
        expect=b"could not open logfile",
        id="upslog-bad-file",
    ),
    case(
        "upslog",
        "-s",
        "dummy@{hp}",
        "-l",
        "-",
        "-u",
        "no-such-user-x",
        expect=b"user no-such-user-x not found",
        id="upslog-bad-user",
    ),
]

#: Every known difference from Debian's 2.8.0 tools, with its reason. Only the first shows
#: in these tests' cases (test_usage_adds_only_nuttrio_options pins it); the others are
#: where NUT's behaviour is undefined or a NUT bug, and are kept out of the cases.
ALLOWED_DIFFERENCES = (
    (
        "usage",
        "-h (and the usage printed for missing arguments) ends with a 'nuttrio additions:' "
        "block naming --json, --password-file and upslog's -m",
    ),
    (
        "upsrw-value-at-eof",
        "upsrw -s VAR with standard input at its end: NUT sends uninitialised memory as "
        "the value; nuttrio sends the empty value",
    ),
    (
        "unquoted-arguments",
        "upscmd/upsrw send USERNAME, PASSWORD and the INSTCMD value unquoted, so a space "
        "splits them; nuttrio quotes them, so they arrive whole (the output is the same: "
        "upsd drops the extra words of INSTCMD, case upscmd-param-space, but the driver gets "
        "'a' from NUT and 'a b' from nuttrio, and a password with a space works only here)",
    ),
    (
        "crash-on-bare-at",
        "'upsc @', 'upsc x@:' and 'upsc -l :' (nothing around the separator) crash NUT "
        "(strdup of NULL, status 139); nuttrio reports the invalid definition, status 1",
    ),
    (
        "closed-mid-list",
        "a server closing the connection in the middle of a LIST: NUT prints the lines it "
        "got and exits 0 (it takes the failure for the list's end); nuttrio reads whole "
        "lists, prints nothing and fails with 'Error: Server disconnected'",
    ),
    (
        "tls",
        "a TLS handshake that fails after OK STARTTLS: NUT reports NSS's error text, "
        "nuttrio Python's ssl error (a successful handshake prints the same lines: "
        "tests/test_tools_tls.py)",
    ),
)
USAGE_CASES = [
    case("upsc", "-h", id="upsc-h"),
    case("upscmd", "-h", id="upscmd-h"),
    case("upscmd", "dummy@{hp}", id="upscmd-no-command"),
    case("upscmd", id="upscmd-no-args"),
    case("upsrw", "-h", id="upsrw-h"),
    case("upsrw", id="upsrw-no-args"),
    case("upslog", "-h", id="upslog-h"),
    case("upslog", "a", "b", id="upslog-two-args"),
    case("upsc", "-lz", "{hp}", expect=b"invalid option -- 'z'", id="upsc-bad-option"),
    case("upscmd", "-l", id="upscmd-l-missing"),
    case("upscmd", "-u", id="upscmd-missing-arg"),
    case("upsrw", "-x", id="upsrw-bad-option"),
]
USAGE_REASON = ALLOWED_DIFFERENCES[0][1]


@pytest.fixture(params=["upsd", "nuttrio"])
def server(request: pytest.FixtureRequest, servers: Servers) -> int:
    """Each case runs against the real upsd and against nuttrio."""
    port: int = servers.ports[request.param]
    return port


@pytest.mark.parametrize("spec", CASES)
def test_same_as_nut(servers: Servers, server: int, spec: Case) -> None:
    if NO_IPV6 and any("{h6}" in arg for arg in spec.argv):
        pytest.skip(NO_IPV6)
    argv = expand(spec.argv, server, servers.confdir)
    theirs, ours = run_both(spec.tool, argv, spec.stdin)
    if spec.expect is not None:
        assert spec.expect in theirs.out + theirs.err, theirs
    assert ours == theirs


@pytest.mark.parametrize("spec", USAGE_CASES)
def test_usage_adds_only_nuttrio_options(servers: Servers, server: int, spec: Case) -> None:
    """Allowed difference: USAGE_REASON. NUT's text comes first, unchanged."""
    argv = expand(spec.argv, server, servers.confdir)
    theirs = run_nut(spec.tool, argv)
    ours = run_ours(spec.tool, argv)
    assert (ours.rc, ours.err) == (theirs.rc, theirs.err)
    if spec.expect is not None:
        assert spec.expect in theirs.err
    assert ours.out.startswith(theirs.out), USAGE_REASON
    added = ours.out[len(theirs.out) :]
    assert added.lstrip(b"\n").startswith(b"nuttrio additions:\n"), added


@pytest.mark.parametrize("argv", [["@"], ["x@:"], ["-l", ":"]])
def test_nut_crashes_where_nuttrio_reports(argv: list[str]) -> None:
    """Allowed difference "crash-on-bare-at"."""
    theirs, ours = run_nut("upsc", argv), run_ours("upsc", argv)
    assert theirs.rc in (-11, 139)
    assert ours.rc == 1
    assert ours.err.endswith(b"Required format: upsname[@hostname[:port]]\n") or ours.err.endswith(
        b"Required format: [hostname[:port]]\n"
    )


def test_upsc_c_lists_a_logged_in_client(servers: Servers, server: int) -> None:
    """``-c`` (and ``-j -c``) with one client logged in to the UPS."""
    with NutConnection(server) as conn:
        for line in ("USERNAME monuser", "PASSWORD monpass", "LOGIN dummy"):
            assert conn.request(line) == b"OK\n"
        argv = ["-c", f"dummy@{HOST}:{server}"]
        theirs, ours = run_nut("upsc", argv), run_ours("upsc", argv)
        assert theirs.out == b"127.0.0.1\n"
        assert ours == theirs
        assert run_ours("upsc", ["-j", *argv]).out == b'[\n  "127.0.0.1"\n]\n'


def test_password_file_is_as_p(servers: Servers, tmp_path: Path) -> None:
    """``--password-file`` (nuttrio's) gives what NUT's ``-p`` gives, on both servers."""
    secret = tmp_path / "secret"
    secret.write_text("adminpass\n", encoding="ascii")
    for port in servers.ports.values():
        target = f"cmdups@{HOST}:{port}"
        theirs = run_nut("upscmd", ["-u", "admin", "-p", "adminpass", target, "load.off"])
        ours = run_ours(
            "upscmd", ["-u", "admin", "--password-file", str(secret), target, "load.off"]
        )
        assert ours == theirs == Result(0, b"", b"OK\n")
        missing = run_ours("upsrw", ["--password-file", str(tmp_path / "nope"), target])
        assert missing.rc == 1
        assert missing.err.endswith(b"No such file or directory\n")


def test_set_is_visible_on_both_servers(servers: Servers) -> None:
    """The SET cases really set: ups.load of rwups reads 42 after nuttrio's upsrw."""
    for port in servers.ports.values():
        hp = f"{HOST}:{port}"
        done = run_ours("upsrw", ["-s", "ups.load=42", *AUTH, "-w", f"rwups@{hp}"])
        assert done == Result(0, b"", b"SUCCESS\n")
        wait_until(
            lambda hp=hp: run_nut("upsc", [f"rwups@{hp}", "ups.load"]).out == b"42\n",
            5,
            "ups.load 42",
        )


# -- JSON ------------------------------------------------------------------------------


def _plain_pairs(text: bytes) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.decode().splitlines())


def test_upsc_json_equals_plain(servers: Servers, server: int) -> None:
    hp = f"{HOST}:{server}"
    for ups in ("dummy", "fancy"):
        plain = run_ours("upsc", [f"{ups}@{hp}"])
        shaped = run_ours("upsc", ["-j", f"{ups}@{hp}"])
        assert json.loads(shaped.out) == _plain_pairs(plain.out)
        one = run_ours("upsc", ["--json", f"{ups}@{hp}", "ups.status"])
        assert (
            json.loads(one.out) == run_ours("upsc", [f"{ups}@{hp}", "ups.status"]).out.decode()[:-1]
        )
    names = run_ours("upsc", ["-j", "-l", hp])
    assert json.loads(names.out) == run_ours("upsc", ["-l", hp]).out.decode().split()
    described = run_ours("upsc", ["-j", "-L", hp])
    assert json.loads(described.out) == _plain_pairs(run_ours("upsc", ["-L", hp]).out)
    assert json.loads(described.out)["fancy"] == 'Quotes " and \\ backslash'
    clients = run_ours("upsc", ["-j", "-c", f"dummy@{hp}"])
    assert clients.out == b"[\n\n]\n"  # NUT 2.8.5's layout of an empty array


def test_upsc_json_layout_and_errors(servers: Servers, server: int) -> None:
    """NUT 2.8.5's exact layout: two-space indent; errors as {"error": ...} plus stderr."""
    hp = f"{HOST}:{server}"
    names = run_ours("upsc", ["-j", "-l", hp])
    assert names.out == b'[\n  "dummy",\n  "fancy",\n  "rwups",\n  "cmdups"\n]\n'
    unknown = run_ours("upsc", ["-j", f"nope@{hp}"])
    assert unknown.rc == 1
    assert unknown.out == b'{\n  "error": "Unknown UPS"\n}\n'
    assert unknown.err.endswith(b"Error: Unknown UPS\n")
    var = run_ours("upsc", ["-j", f"dummy@{hp}", "nope.x"])
    assert (var.rc, var.out) == (1, b'{"error": "Variable not supported by UPS"}\n')


def test_upscmd_and_upsrw_json_equal_plain(servers: Servers, server: int) -> None:
    hp = f"{HOST}:{server}"
    cmds = json.loads(run_ours("upscmd", ["--json", "-l", f"dummy@{hp}"]).out)
    plain = run_ours("upscmd", ["-l", f"dummy@{hp}"]).out.decode().splitlines()[2:]
    assert [f"{k} - {v}" if v else k for k, v in cmds.items()] == plain
    listed = json.loads(run_ours("upsrw", ["--json", f"dummy@{hp}"]).out)
    blocks = run_ours("upsrw", [f"dummy@{hp}"]).out.decode().split("\n\n")[:-1]
    assert len(listed) == len(blocks) > 0
    for (name, item), block in zip(listed.items(), blocks, strict=True):
        lines = block.splitlines()
        assert lines[0] == f"[{name}]"
        assert lines[1] == item["description"]
        assert lines[2] == f"Type: {item['type']}"
        assert lines[-1] == f"Value: {item['value']}"
        if item["type"] == "STRING":
            assert lines[3] == f"Maximum length: {item['maximum_length']}"


def test_password_prompt_on_a_terminal(servers: Servers) -> None:
    """With a terminal, ``Password: `` goes to it, echo off, and the answer is read from it."""
    import pty
    import termios

    master, slave = pty.openpty()
    seen = bytearray()

    def answer() -> None:
        while b"Password: " not in seen:
            seen.extend(os.read(master, 100))
        echo_on = termios.tcgetattr(slave)[3] & termios.ECHO
        seen.extend(b"<echo on>" if echo_on else b"<echo off>")
        os.write(master, b"adminpass\n")

    helper = threading.Thread(target=answer, daemon=True)
    helper.start()
    try:
        out, err = io.BytesIO(), io.BytesIO()
        port = servers.ports["nuttrio"]
        argv = ["-u", "admin", f"cmdups@{HOST}:{port}", "load.off"]
        rc = run_tool("upscmd", argv, Stdio(out, err, io.BytesIO(), tty=os.ttyname(slave)))
        helper.join(5)
    finally:
        os.close(slave)
        os.close(master)
    assert (rc, out.getvalue(), err.getvalue()) == (0, b"", b"OK\n")
    assert bytes(seen) == b"Password: <echo off>"
