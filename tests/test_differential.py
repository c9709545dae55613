"""Differential tests: the real upsd 2.8.0 + dummy-ups and nuttrio, same config, same bytes.

Both load one configuration directory; nuttrio runs through its own command line. Every
script goes to both servers on fresh connections; the replies must be byte-identical,
except for the entries of ``ALLOWED`` (each with its reason; see docs/compat.md).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from nuttrio.protocol.replies import VER_TEXT

from .nuttrio_proc import NuttrioProcess
from .realnut import RealNut, free_port, require_real_nut, write_nut_config

pytestmark = pytest.mark.realnut

UPSD_VER = "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"

DUMMY_DEV = r"""# A dummy-ups file with the awkward cases
ups.status: OL CHRG
battery.charge: 100
battery.runtime: 1800
input.voltage: 230.4
ups.load: 23
ups.mfr: "Acme \"Power\" Co"
ups.model: Back  500
ups.serial: "A\#1\\2"
Mixed.Case.Var: x
ups.test.result: "No test initiated"
input.sensitivity: normal
outlet.1.status: on
"""

SMALL_DEV = """ups.status: OL
battery.charge: 87
"""

USERS = """\
[admin]
    password = adminpass
    actions = SET FSD
    instcmds = ALL
    upsmon primary
[mon]
    password = monpass
    upsmon secondary
[cmdonly]
    password = cmdpass
    instcmds = load.off
"""


@attrs.frozen
class Script:
    """Requests for one connection: each chunk is sent as its own packet."""

    name: str
    chunks: tuple[bytes, ...]
    closes: bool = False  # the server closes the connection at the end

    @property
    def request_lines(self) -> int:
        return b"".join(self.chunks).count(b"\n")


def one_by_one(name: str, lines: list[str]) -> Script:
    return Script(name, tuple(f"{line}\n".encode() for line in lines))


def pipelined(name: str, lines: list[str]) -> Script:
    return Script(name, ("".join(f"{line}\n" for line in lines).encode(),))


UPS_SPELLINGS = ["dummy", "DUMMY", "nodesc", "nope"]
VARS = [
    "ups.status",
    "UPS.STATUS",
    "battery.charge",
    "nope.var",
    "server.version",
    "SERVER.VERSION",
    "server.other",
    "driver.name",
    "Mixed.Case.Var",
    "mixed.case.var",
    "ups.mfr",
    "ups.serial",
    "device.serial",
    "outlet.1.status",
]


def scripts() -> list[Script]:
    out = [
        one_by_one(
            "basic",
            [
                "VER",
                "NETVER",
                "PROTVER",
                "HELP",
                "ver x",
                "HELP me",
                "NETVER 1",
                "",
                "   ",
                "# comment only",
                "VER # trailing comment",
                "BOGUS",
                "NUMLOGINS dummy",
                "REQ",
                "LISTVARS",
                "vEr",
                "STARTTLS",
                "STARTTLS now please",
                "LOGOUT x",
            ],
        ),
        Script("control-bytes", (b"\x01 VER\n", b"V\x00ER\n", b"V\xe9ER\n", b"VER\r\n")),
    ]
    for sub in ("VAR", "TYPE", "DESC"):
        out.append(
            one_by_one(
                f"get-{sub.lower()}",
                [f"GET {sub} {u} {v}" for u in UPS_SPELLINGS for v in VARS],
            )
        )
    out.append(
        one_by_one(
            "get-other",
            [
                f"GET CMDDESC {u} {c}"
                for u in UPS_SPELLINGS
                for c in ("load.off", "LOAD.OFF", "nope")
            ]
            + [f"GET {s} {u}" for s in ("UPSDESC", "NUMLOGINS", "upsdesc") for u in UPS_SPELLINGS]
            + [
                "GET",
                "GET VAR",
                "GET VAR dummy",
                "GET TYPE dummy",
                "GET BOGUS dummy x",
                "GET UPSDESC",
                "GET NUMLOGINS",
                "GET TRACKING",
                "GET TRACKING abc",
                "get var dummy ups.status extra args",
                'GET VAR "dummy" "ups.status"',
                'GET VAR "dummy"ups.status',
                "GET VAR dummy=ups.status",
                'GET VAR dum"my ups.status',
                r"GET VAR dum\my ups.status",
                r"GET\ VAR dummy ups.status",
                'GET VAR "" ""',
                "GET VAR nope server.version",
                "GET CMDDESC dummy",
                "GET DESC dummy a b",
            ],
        )
    )
    out.append(
        one_by_one(
            "list",
            [
                "LIST",
                "LIST UPS",
                "list ups",
                "LIST UPS extra",
                "LIST VAR dummy",
                "LIST VAR DUMMY",
                "LIST VAR nope",
                "LIST VAR nodesc",
                "LIST RW dummy",
                "LIST RW nodesc",
                "LIST CMD dummy",
                "LIST CMD Dummy",
                "LIST CLIENT dummy",
                "LIST CLIENT nope",
                "LIST CLIENTS dummy",
                "LIST ENUM dummy ups.status",
                "LIST ENUM dummy nope",
                "LIST RANGE dummy ups.load",
                "LIST RANGE dummy",
                "LIST VAR",
                "LIST BOGUS dummy",
                "LIST ENUM nope x",
                "list var dummy extra",
            ],
        )
    )
    out.append(
        one_by_one(
            "auth-order",
            [
                "LOGIN dummy",
                "FSD dummy",
                "SET VAR dummy ups.load 5",
                "INSTCMD dummy load.off",
                "PRIMARY dummy",
                "MASTER dummy",
                "SET TRACKING ON",
                "SET",
                "INSTCMD",
                "PASSWORD wrong",
                "LOGIN dummy",
                "USERNAME admin",
                "USERNAME again",
                "PASSWORD again",
                "LOGIN dummy",
                "FSD dummy",
                "PRIMARY dummy",
                "LOGIN",
                "SET TRACKING ON",
                "GET TRACKING",
            ],
        )
    )
    out.append(
        one_by_one(
            "admin",
            [
                "USERNAME admin",
                "PASSWORD adminpass",
                "LOGIN dummy",
                "LOGIN nope",
                "GET NUMLOGINS dummy",
                "LIST CLIENT dummy",
                "LIST CLIENT DUMMY",
                "PRIMARY dummy",
                "MASTER dummy",
                "primary DUMMY",
                "PRIMARY nope",
                "PRIMARY",
                "PRIMARY a b",
                "SET VAR dummy nope x",
                "SET VAR dummy driver.name x",
                "SET VAR dummy device.type x",
                "SET VAR dummy ups.test.result a-value-longer-than-sixteen",
                "SET VAR nope ups.load 1",
                "SET VAR dummy",
                "SET VAR dummy ups.load",
                "SET",
                "SET BOGUS x",
                "SET TRACKING maybe",
                "SET TRACKING",
                "INSTCMD dummy nope.cmd",
                "INSTCMD dummy",
                "INSTCMD nope load.off",
                "INSTCMD dummy load.off",
                "INSTCMD dummy LOAD.OFF",
                "INSTCMD dummy load.off 5",
                "INSTCMD dummy load.off 5 6",
                "SET TRACKING ON",
                "GET TRACKING",
                "INSTCMD dummy load.off",
                "SET VAR dummy ups.load 24",
                "SET TRACKING off",
                "GET TRACKING",
                "GET TRACKING 00000000-0000-0000-0000-000000000000",
                "LOGOUT",
            ],
        )
    )
    out[-1] = attrs.evolve(out[-1], closes=True)
    out.append(
        one_by_one(
            "secondary",
            [
                "USERNAME mon",
                "PASSWORD monpass",
                "PRIMARY dummy",
                "FSD dummy",
                "SET VAR dummy ups.load 5",
                "INSTCMD dummy load.off",
                "LOGIN DUMMY",
                "GET NUMLOGINS DUMMY",
                "LIST CLIENT dummy",
                "LOGIN dummy",
            ],
        )
    )
    out.append(
        one_by_one(
            "instcmd-only",
            [
                "USERNAME cmdonly",
                "PASSWORD cmdpass",
                "INSTCMD dummy beeper.disable",
                "INSTCMD dummy load.off",
                "SET VAR dummy nope.var x",
                "LOGIN dummy",
            ],
        )
    )
    out.append(
        pipelined(
            "pipelined",
            [
                "VER",
                "NETVER",
                "GET VAR dummy ups.status",
                "LIST UPS",
                "BOGUS",
                "",
                "GET VAR nope x",
            ],
        )
    )
    out.append(Script("split-packets", (b"GET VA", b"R dummy ups.st", b"atus\n")))
    out.append(Script("split-list", (b"LIST V", b"AR dummy\nGET", b" VAR dummy battery.charge\n")))
    out.append(Script("crlf", (b"VER\r\nGET VAR dummy ups.status\r\nLIST CMD dummy\r\n",)))
    out.append(Script("logout-pipelined", (b"LOGOUT\nNETVER\n",)))
    out.append(Script("logout", (b"USERNAME mon\nLOGOUT\n",), closes=True))
    out.append(Script("quote-across-lines", (b'GET VAR "dummy\n', b'ups.status"\n')))
    out.append(Script("backslash-continuation", (b"GET VAR dummy \\\nups.status\n",)))
    out.append(Script("long-word", (b"GET VAR dummy " + b"x" * 600 + b"\n",)))
    out.append(
        one_by_one(
            "fsd-latch",
            [
                "USERNAME admin",
                "PASSWORD adminpass",
                "GET VAR fsdups ups.status",
                "FSD fsdups",
                "GET VAR fsdups ups.status",
                "GET VAR FSDUPS UPS.STATUS",
                "LIST VAR fsdups",
                "LIST RW fsdups",
                "FSD fsdups",
                "GET VAR dummy ups.status",
            ],
        )
    )
    return out


#: Cases where nuttrio deliberately answers differently; each is checked exactly.
ALLOWED: dict[str, tuple[str, Script, bytes]] = {
    "hash-in-quotes": (
        "upsd sends no reply and drops the rest of the read; nuttrio answers ERR",
        Script("hash-in-quotes", (b'SET VAR dummy ups.id "a#b"\n',)),
        b"ERR INVALID-ARGUMENT\n",
    ),
    "reply-over-512": (
        "upsd cuts a reply at 512 bytes and loses its LF; nuttrio answers ERR",
        Script("reply-over-512", (b"GET DESC dummy " + b"y" * 505 + b"\n",)),
        b"ERR INVALID-ARGUMENT\n",
    ),
}

SENTINEL = b"GET VAR zzsentinel server.version\n"
SENTINEL_REPLY = b'VAR zzsentinel server.version "2.8.0"\n'


def run_script(port: int, script: Script) -> bytes:
    """Send a script on a new connection and return everything the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for chunk in script.chunks:
            sock.sendall(chunk)
            if len(script.chunks) > 1:
                time.sleep(0.01)  # separate reads on the server side
        if not script.closes:
            sock.sendall(SENTINEL)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return data + b"<timeout>"
            if not chunk:
                return data + b"<closed>"
            data += chunk
            if not script.closes and data.endswith(SENTINEL_REPLY):
                return data[: -len(SENTINEL_REPLY)]


def normalise(reply: bytes) -> bytes:
    """Replace what legitimately differs: tracking ids (random) and the version text."""
    reply = reply.replace(VER_TEXT.encode(), UPSD_VER.encode())
    return re.sub(rb"TRACKING [0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", b"TRACKING <ID>", reply)


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[tuple[int, int]]:
    require_real_nut()
    confdir = Path(tmp_path_factory.mktemp("diff")) / "conf"
    confdir.mkdir()
    (confdir / "dummy.dev").write_text(DUMMY_DEV)
    (confdir / "small.dev").write_text(SMALL_DEV)
    upsd_port, our_port = free_port(), free_port()
    write_nut_config(
        confdir,
        port=upsd_port,
        ups={
            "dummy": {"port": "dummy.dev", "desc": 'Dummy "quoted" #1'},
            "nodesc": {"port": "small.dev"},
            "fsdups": {"port": "small.dev", "desc": "FSD test"},
        },
        users=USERS,
    )
    with (
        RealNut(confdir),
        NuttrioProcess(["--nut-config", str(confdir), "--listen", f"127.0.0.1:{our_port}"]),
    ):
        yield upsd_port, our_port


def test_at_least_200_request_lines_are_compared():
    assert sum(s.request_lines for s in scripts()) >= 200


@pytest.mark.parametrize("script", scripts(), ids=lambda s: s.name)
def test_same_bytes_as_upsd(servers, script):
    upsd_port, our_port = servers
    theirs = run_script(upsd_port, script)
    ours = run_script(our_port, script)
    assert normalise(ours) == normalise(theirs)


@pytest.mark.parametrize("name", list(ALLOWED))
def test_allowed_differences(servers, name):
    reason, script, expected = ALLOWED[name]
    upsd_port, our_port = servers
    theirs = run_script(upsd_port, script)
    ours = run_script(our_port, script)
    assert ours != theirs, f"upsd now agrees with nuttrio; drop the allow-list entry ({reason})"
    assert ours == expected
