"""nuttrio's tools and Debian's against a scripted NUT server, for what dummy-ups cannot show.

dummy-ups has no ENUM or RANGE variables, never leaves a result PENDING and never sends
an unknown error token; this server (plain TCP on 127.0.0.1, in a thread) answers each
request line from :data:`SCRIPT`, so both tools meet exactly the same replies. Both
outputs (status, stdout, stderr) must be equal byte for byte; a few cases also pin what
Debian's tool printed, so that the script cannot make both fail alike.
"""

from __future__ import annotations

import json
import shutil
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from .realnut import HOST
from .test_tools_diff import Case, case, run_nut, run_ours

pytestmark = pytest.mark.realnut

TRACKING_ID = "01234567-89AB-CDEF-0123-456789ABCDEF"

#: Request line -> reply lines; a list of replies is used in turn (the last one repeats),
#: per connection. ``None`` closes the connection without a reply.
SCRIPT: dict[str, str | list[str] | None] = {
    "LIST RW u": (
        'BEGIN LIST RW u\nRW u a.enum "x"\nRW u b.range "35"\nRW u c.weird "v"\n'
        'RW u d.notype "v"\nRW u e.numenum "2"\nRW u f.oldenum "y"\nRW u g.rwonly "w"\n'
        "END LIST RW u\n"
    ),
    "GET DESC u a.enum": 'DESC u a.enum "An \\"enum\\""\n',
    "GET TYPE u a.enum": "TYPE u a.enum RW ENUM STRING:8\n",
    "GET VAR u a.enum": 'VAR u a.enum "x"\n',
    "LIST ENUM u a.enum": (
        'BEGIN LIST ENUM u a.enum\nENUM u a.enum "x"\nENUM u a.enum "y z"\nEND LIST ENUM u a.enum\n'
    ),
    "GET TYPE u b.range": "TYPE u b.range RW RANGE NUMBER\n",
    "GET VAR u b.range": 'VAR u b.range "35"\n',
    "LIST RANGE u b.range": (
        'BEGIN LIST RANGE u b.range\nRANGE u b.range "10" "20"\nRANGE u b.range "30" "40x"\n'
        "END LIST RANGE u b.range\n"
    ),
    "GET TYPE u c.weird": "TYPE u c.weird RW FOO NUMBER\n",
    "GET VAR u c.weird": 'VAR u c.weird "v"\n',
    "GET TYPE u d.notype": "ERR VAR-NOT-SUPPORTED\n",
    "GET TYPE u e.numenum": "TYPE u e.numenum ENUM NUMBER\n",
    "GET VAR u e.numenum": 'VAR u e.numenum "2"\n',
    "LIST ENUM u e.numenum": (
        'BEGIN LIST ENUM u e.numenum\nENUM u e.numenum "1"\nENUM u e.numenum "2"\n'
        "END LIST ENUM u e.numenum\n"
    ),
    "GET TYPE u f.oldenum": "TYPE u f.oldenum ENUM\n",
    "GET VAR u f.oldenum": 'VAR u f.oldenum "y"\n',
    "LIST ENUM u f.oldenum": "BEGIN LIST ENUM u f.oldenum\nEND LIST ENUM u f.oldenum\n",
    "GET TYPE u g.rwonly": "TYPE u g.rwonly RW\n",
    "LIST RW norange": 'BEGIN LIST RW norange\nRW norange v.x "1"\nEND LIST RW norange\n',
    "GET TYPE norange v.x": "TYPE norange v.x RANGE\n",
    "GET VAR norange v.x": "ERR DATA-STALE\n",
    # upscmd -w: PENDING twice, then the result
    "SET TRACKING ON": "OK\n",
    "INSTCMD u slow.cmd": f"OK TRACKING {TRACKING_ID}\n",
    f"GET TRACKING {TRACKING_ID}": ["PENDING\n", "PENDING\n", "ERR INVALID-ARGUMENT\n"],
    "INSTCMD u never.done": f"OK TRACKING {TRACKING_ID}X\n",
    "USERNAME admin": "OK\n",
    "PASSWORD pw": "OK\n",
    # upsc: error tokens libupsclient names, one it does not, a closed connection
    "GET VAR u stale.var": "ERR DATA-STALE\n",
    "GET VAR u strange.var": "ERR SOMETHING-NEW\n",
    "GET VAR u noconn.var": "ERR DRIVER-NOT-CONNECTED\n",
    "GET VAR u other.ups": 'VAR x other.ups "1"\n',
    "LIST VAR gone": None,
    "LIST VAR half": 'BEGIN LIST VAR half\nVAR half a.b "1"\n',
    "LIST UPS": "ERR ACCESS-DENIED\n",
    "LIST CMD u": "BEGIN LIST CMD u\nCMD u a.cmd\nCMD u b.cmd\nEND LIST CMD u\n",
    "GET CMDDESC u a.cmd": 'CMDDESC u a.cmd "First"\n',
    "GET CMDDESC u b.cmd": "ERR UNKNOWN-COMMAND\n",
    # bytes NUT's parser drops, each with a message on stderr (sent as latin-1)
    "GET VAR u odd.var": 'VAR u odd.var "caf\u00c3\u00a9 \x01\tx\x7f"\n',
    "LIST VAR odd": (
        'BEGIN LIST VAR odd\nVAR odd a.b "\u00ff"\nVAR odd c.d \x02\\\x03e\nEND LIST VAR odd\n'
    ),
    "LOGOUT": "OK Goodbye\n",
}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        turns: dict[str, int] = {}
        for raw in self.rfile:
            line = raw.decode("ascii").rstrip("\r\n")
            reply = SCRIPT.get(line, "ERR UNKNOWN-COMMAND\n")
            if isinstance(reply, list):
                turn = turns.get(line, 0)
                turns[line] = turn + 1
                reply = reply[min(turn, len(reply) - 1)]
            if reply is None:
                return
            self.wfile.write(reply.encode("latin-1"))
            if line == "LOGOUT" or line.startswith("LIST VAR half"):
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def scripted() -> Iterator[int]:
    missing = [c for c in ("upsc", "upscmd", "upsrw") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"NUT clients missing: {missing} (Debian package nut-client)")
    server = _Server((HOST, 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


AUTH = ("-u", "admin", "-p", "pw")

CASES = [
    case("upsrw", "u@{hp}", expect=b'Option: "30-40" SELECTED', id="upsrw-types"),
    case("upsrw", "norange@{hp}", expect=b"do_range: can't get current value", id="upsrw-stale"),
    case(
        "upscmd", *AUTH, "-w", "u@{hp}", "slow.cmd", expect=b"ERR INVALID-ARGUMENT\n", id="pending"
    ),
    case(
        "upscmd",
        *AUTH,
        "-w",
        "-t",
        "1",
        "u@{hp}",
        "slow.cmd",
        expect=b"timeout",
        id="pending-timeout",
    ),
    case("upscmd", *AUTH, "-w", "u@{hp}", "never.done", id="bad-tracking-id"),
    case("upscmd", "-l", "u@{hp}", expect=b"b.cmd\n", id="cmddesc-missing"),
    case("upsc", "u@{hp}", "stale.var", expect=b"Error: Data stale\n", id="stale"),
    case("upsc", "u@{hp}", "strange.var", expect=b"Error: Unknown error\n", id="unknown-token"),
    case("upsc", "u@{hp}", "noconn.var", expect=b"Error: Driver not connected\n", id="noconn"),
    case("upsc", "-l", "{hp}", expect=b"Error: Access denied\n", id="list-denied"),
    case("upsc", "gone@{hp}", expect=b"Error: Server disconnected\n", id="closed"),
    case("upsc", "u@{hp}", "odd.var", expect=b"(0xffffffc3)!\n", id="dropped-bytes"),
    case("upsc", "odd@{hp}", expect=b"(0x03)!\n", id="dropped-bytes-list"),
]


@pytest.mark.parametrize("spec", CASES)
def test_same_as_nut_on_scripted_server(scripted: int, spec: Case) -> None:
    argv = [a.replace("{hp}", f"{HOST}:{scripted}") for a in spec.argv]
    theirs = run_nut(spec.tool, argv, spec.stdin)
    ours = run_ours(spec.tool, argv, spec.stdin)
    if spec.expect is not None:
        assert spec.expect in theirs.out + theirs.err, theirs
    assert ours == theirs


def test_scripted_server_answers(scripted: int) -> None:
    """The script itself: an unknown request gets ERR UNKNOWN-COMMAND."""
    with socket.create_connection((HOST, scripted), timeout=5) as sock:
        sock.sendall(b"FOO\n")
        assert sock.recv(100) == b"ERR UNKNOWN-COMMAND\n"


def test_closed_in_mid_list_is_reported(scripted: int) -> None:
    """Allowed difference ("closed-mid-list" in test_tools_diff.ALLOWED_DIFFERENCES)."""
    argv = [f"half@{HOST}:{scripted}"]
    theirs, ours = run_nut("upsc", argv), run_ours("upsc", argv)
    assert (theirs.rc, theirs.out) == (0, b"a.b: 1\n")
    assert (ours.rc, ours.out) == (1, b"")
    assert ours.err == theirs.err + b"Error: Server disconnected\n"


def test_json_of_every_rw_type(scripted: int) -> None:
    """upsrw --json on the scripted types; upscmd --json -l with a missing description."""
    hp = f"{HOST}:{scripted}"
    listed = json.loads(run_ours("upsrw", ["--json", f"u@{hp}"]).out)
    assert listed["a.enum"] == {
        "description": 'An "enum"',
        "type": "ENUM",
        "value": "x",
        "maximum_length": 8,
        "value_type": "STRING",
        "options": ["x", "y z"],
    }
    assert listed["b.range"]["ranges"] == [[10, 20], [30, 40]]
    assert listed["c.weird"]["unrecognized"] == ["FOO"]
    assert listed["c.weird"]["type"] == "NUMBER"
    assert listed["d.notype"] == {"description": None, "type": None, "value": None}
    assert listed["e.numenum"]["value_type"] == "NUMBER"
    assert "maximum_length" not in listed["e.numenum"]
    assert listed["f.oldenum"]["value_type"] is None
    assert listed["g.rwonly"]["type"] == "UNKNOWN"
    plain = run_nut("upsrw", [f"u@{hp}"]).out.decode()
    assert plain.count("\n\n") == len(listed)
    commands = json.loads(run_ours("upscmd", ["--json", "-l", f"u@{hp}"]).out)
    assert commands == {"a.cmd": "First", "b.cmd": None}
