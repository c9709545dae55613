"""upsc against a server that accepts STARTTLS: nuttrio's tool and Debian's say the same.

upsc (and upslog) try STARTTLS first; against upsd without certificates it is refused
(tests/test_tools_diff.py), here nuttrio's protocol server, run in a thread with a trustme
certificate, accepts it. Debian's libupsclient (NSS, no certificate database) does not
check the certificate, and neither does nuttrio's upsc; both print the same lines about
the handshake. upscmd and upsrw never try TLS.
"""

from __future__ import annotations

import functools
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

pytestmark = pytest.mark.realnut


@pytest.fixture(scope="module")
def tls_port() -> Iterator[int]:
    if shutil.which("upsc") is None:
        pytest.skip("upsc missing (Debian package nut-client)")
    trustme = pytest.importorskip("trustme")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost", HOST).configure_cert(context)
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
