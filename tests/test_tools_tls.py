"""upsc against a server that accepts STARTTLS: nuttrio's tool and Debian's say the same.

upsc (and upslog) try STARTTLS first; against upsd without certificates it is refused
(tests/test_tools_diff.py), here nuttrio's protocol server, run in a thread with a trustme
certificate, accepts it. Debian's libupsclient (NSS, no certificate database) does not
check the certificate, and neither does nuttrio's upsc; both print the same lines about
the handshake. upscmd and upsrw never try TLS.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from nuttrio.server import ServerCore, ServerSettings, handle_stream
from nuttrio.state import StateStore, Variable

from .helpers import NoDescriptions, ScriptedDriver, SimpleUser
from .realnut import HOST
from .test_tools_diff import run_nut, run_ours
from .test_tools_diff import server as server  # a fixture
from .test_tools_diff import servers as servers  # a fixture

pytestmark = pytest.mark.realnut

#: The test CA's file and the server certificate's SHA-256, once tls_port made them.
MATERIAL: dict[str, str] = {}


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if shutil.which("upsc") is None:
        pytest.skip("upsc missing (Debian package nut-client)")
    trustme = pytest.importorskip("trustme")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", HOST)
    leaf.configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    MATERIAL["ca"] = str(ca_file)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    MATERIAL["pin"] = hashlib.sha256(der).hexdigest()
    ports: list[int] = []
    ready = threading.Event()
    token: list[trio.lowlevel.TrioToken] = []
    stop = trio.Event()

    async def serve() -> None:
        store = StateStore()
        store.add("u", "TLS UPS")
        driver = ScriptedDriver(
            [Variable(name="ups.status", value="OL"), Variable(name="a.b", value="1")]
        )
        users = {"admin": SimpleUser("pw", frozenset({"login"}))}
        core = ServerCore(store, users, NoDescriptions(), ServerSettings(tls_available=True))

        async def attach(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with store.get("u").connect() as link:
                await driver.run(link, task_status=task_status)

        async def one(stream: trio.SocketStream) -> None:
            await handle_stream(core, stream, tls_context=context)

        async with trio.open_nursery() as nursery:
            await nursery.start(attach)
            serve_tcp = functools.partial(trio.serve_tcp, one, 0, host=HOST)
            listeners = await nursery.start(serve_tcp)
            ports.append(listeners[0].socket.getsockname()[1])
            token.append(trio.lowlevel.current_trio_token())
            ready.set()
            await stop.wait()
            nursery.cancel_scope.cancel()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield ports[0]
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token[0])
        thread.join(5)


@pytest.mark.parametrize(
    "argv",
    [
        ["u@{hp}", "ups.status"],
        ["u@{hp}"],
        ["-l", "{hp}"],
        ["-L", "{hp}"],
        ["nope@{hp}"],
    ],
    ids=["var", "dump", "l", "L", "unknown-ups"],
)
def test_upsc_over_tls_same_as_nut(tls_port: int, argv: list[str]) -> None:
    args = [a.replace("{hp}", f"{HOST}:{tls_port}") for a in argv]
    theirs, ours = run_nut("upsc", args), run_ours("upsc", args)
    assert b"SSL handshake done successfully with server 127.0.0.1\n" in theirs.err
    assert ours == theirs


def test_upscmd_never_tries_tls(tls_port: int) -> None:
    args = ["-l", f"u@{HOST}:{tls_port}"]
    theirs, ours = run_nut("upscmd", args), run_ours("upscmd", args)
    assert theirs.err == b""
    assert ours == theirs


# -- nuttrio's --tls, --tls-verify, --ca, --pin: STARTTLS required, certificate checked ----


@pytest.mark.parametrize("tool", ["upsc", "upscmd", "upsrw"])
def test_ca_or_pin_makes_every_tool_use_checked_tls(tls_port: int, tool: str) -> None:
    target = [f"u@{HOST}:{tls_port}"] if tool == "upsc" else ["-l", f"u@{HOST}:{tls_port}"]
    plain = run_ours(tool, target)
    for flags in (["--ca", MATERIAL["ca"]], ["--pin", MATERIAL["pin"]], ["--tls"]):
        ours = run_ours(tool, [*flags, *target])
        assert ours.rc == 0, ours
        assert ours.out == plain.out
        assert b"SSL" not in ours.err  # libupsclient's banner is for its own attempt only


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--pin", "00" * 32], b"is not the pinned"),
        (["--tls-verify"], b"CERTIFICATE_VERIFY_FAILED"),
    ],
    ids=["wrong-pin", "untrusted-ca"],
)
def test_a_failed_check_is_an_error_and_nothing_is_sent_in_clear(
    tls_port: int, flags: list[str], why: bytes
) -> None:
    ours = run_ours("upsc", [*flags, f"u@{HOST}:{tls_port}", "ups.status"])
    assert ours.rc == 1
    assert ours.out == b""
    assert b"Error: TLS required, but STARTTLS failed" in ours.err
    assert why in ours.err


def test_tls_required_from_a_server_without_it_fails(server: int) -> None:
    """The real upsd and nuttrio without a certificate refuse STARTTLS: --tls stops there."""
    plain = run_ours("upsc", ["-l", f"{HOST}:{server}"])
    assert plain.rc == 0
    ours = run_ours("upsc", ["--tls", "-l", f"{HOST}:{server}"])
    assert (ours.rc, ours.out) == (1, b"")
    assert ours.err.startswith(b"Error: TLS required, but STARTTLS failed")


def test_a_bad_pin_or_ca_argument_is_an_error(tls_port: int) -> None:
    target = f"u@{HOST}:{tls_port}"
    bad_pin = run_ours("upsc", ["--pin", "xyz", target])
    assert (bad_pin.rc, bad_pin.out) == (1, b"")
    assert bad_pin.err.startswith(b"Error: --pin xyz: ")
    missing = run_ours("upsc", ["--ca", "/nonexistent/ca.pem", target])
    assert (missing.rc, missing.out) == (1, b"")
    assert missing.err.startswith(b"Error: --ca /nonexistent/ca.pem: ")
