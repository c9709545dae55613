"""nuttrio.client: every typed call against nuttrio and the real upsd; cancellation; `why`.

The same session runs against the real upsd 2.8.0 (+ dummy-ups) and against nuttrio serving
one configuration directory, on 127.0.0.1; the results must be equal, and a few are pinned
to what upsd gives so that both sides cannot fail the same way.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from nuttrio.client import NutClient, NutError, open_nut_client, wrap_nut_stream
from nuttrio.mgmt.runner import read_once
from nuttrio.nutconf import load_upsmon_conf
from nuttrio.protocol import ErrCode, RemoteProtocolError
from nuttrio.server import ServerCore, ServerSettings, handle_stream
from nuttrio.state import StateStore, Variable

from .helpers import NoDescriptions, ScriptedDriver, SimpleUser
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    HOST,
    MONITOR_PASSWORD,
    MONITOR_USER,
    RealNut,
    free_port,
    require_real_nut,
    write_nut_config,
)

DEV = r"""ups.status: OL CHRG
battery.charge: 100
ups.mfr: "Acme \"Power\" \#1"
ups.id: office
"""
UPS: dict[str, dict[str, str | int]] = {
    "dummy": {"port": "u.dev", "desc": 'Rack "A" #2'},
    "rw": {"port": "u.dev"},  # LOGIN, SET VAR, INSTCMD, FSD
    "whyups": {"port": "u.dev"},  # nuttrio why: NUMLOGINS must not move
}


@attrs.frozen
class Servers:
    confdir: Path
    real: int
    ours: int


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    require_real_nut()
    confdir = Path(tmp_path_factory.mktemp("client")) / "conf"
    confdir.mkdir()
    (confdir / "u.dev").write_text(DEV, encoding="ascii")
    real_port, our_port = free_port(), free_port()
    write_nut_config(confdir, port=real_port, ups=UPS)
    real = RealNut(confdir)
    ours = NuttrioProcess(["--nut-config", str(confdir), "--listen", f"{HOST}:{our_port}"])
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
        yield Servers(confdir, real_port, our_port)


async def error_of(call: Any) -> str | None:
    """The ERR token a call raises, or None if it succeeds."""
    try:
        await call
    except NutError as exc:
        return exc.code
    return None


async def session(port: int) -> dict[str, Any]:
    """Every typed call, in one session, and what each returned."""
    out: dict[str, Any] = {}
    async with open_nut_client(HOST, port) as nut:
        out["starttls"] = await error_of(nut.starttls(ssl.create_default_context()))
        out["list_ups"] = await nut.list_ups()
        variables = await nut.list_var("dummy")
        out["list_var"] = {k: v for k, v in variables.items() if not k.startswith("driver.")}
        out["list_rw"] = await nut.list_rw("dummy")
        out["list_cmd"] = await nut.list_cmd("dummy")
        out["list_enum"] = await nut.list_enum("dummy", "ups.status")
        out["list_range"] = await nut.list_range("dummy", "battery.charge")
        out["get_var"] = await nut.get_var("DUMMY", "ups.status")
        out["get_var_escaped"] = await nut.get_var("dummy", "ups.mfr")
        out["get_type"] = await nut.get_type("dummy", "ups.id")
        out["get_desc"] = await nut.get_desc("dummy", "ups.status")
        out["get_cmddesc"] = await nut.get_cmddesc("dummy", "load.off")
        out["get_upsdesc"] = await nut.get_upsdesc("dummy")
        out["num_logins"] = await nut.num_logins("dummy")
        out["unknown_ups"] = await error_of(nut.get_var("nope", "ups.status"))
        out["unknown_var"] = await error_of(nut.get_var("dummy", "nope"))
        out["login_first"] = await error_of(nut.login("rw"))
        await nut.username(ADMIN_USER)
        out["username_twice"] = await error_of(nut.username("x"))
        await nut.password(ADMIN_PASSWORD)
        await nut.login("rw")
        out["login_twice"] = await error_of(nut.login("rw"))
        out["num_logins_rw"] = await nut.num_logins("rw")
        out["list_client"] = await nut.list_client("rw")
        await nut.primary("rw")
        untracked = await nut.set_var("rw", "ups.id", "a b")
        out["set_var"] = (untracked.id, await untracked)
        await nut.set_tracking(True)
        out["tracking"] = await nut.get_tracking()
        tracked = await nut.set_var("rw", "ups.id", "tracked")
        with trio.fail_after(10):
            out["set_var_tracked"] = (tracked.id is not None, await tracked)
        command = await nut.instcmd("rw", "load.off")
        with trio.fail_after(10):
            out["instcmd_tracked"] = (command.id is not None, await error_of(command.wait()))
        out["instcmd_unknown"] = await error_of(nut.instcmd("rw", "no.such.cmd"))
        await nut.fsd("rw")
        out["fsd_status"] = await nut.get_var("rw", "ups.status")
        await nut.logout()
        out["closed"] = nut.closed
    return out


@pytest.mark.realnut
async def test_every_typed_call_gives_what_upsd_gives(servers: Servers) -> None:
    real = await session(servers.real)
    ours = await session(servers.ours)
    assert ours == real
    # Pinned to upsd 2.8.0, so that both cannot fail the same way.
    assert real["starttls"] == "FEATURE-NOT-CONFIGURED"
    assert real["list_ups"] == {
        "dummy": 'Rack "A" #2',
        "rw": "Description unavailable",
        "whyups": "Description unavailable",
    }
    assert real["get_var"] == "OL CHRG"
    assert real["get_var_escaped"] == 'Acme "Power" #1'
    assert real["get_upsdesc"] == 'Rack "A" #2'
    assert real["list_cmd"] == ["load.off"]
    assert real["get_type"][0] == "RW"
    assert (real["unknown_ups"], real["unknown_var"]) == ("UNKNOWN-UPS", "VAR-NOT-SUPPORTED")
    assert real["login_first"] == "USERNAME-REQUIRED"
    assert (real["username_twice"], real["login_twice"]) == (
        "ALREADY-SET-USERNAME",
        "ALREADY-LOGGED-IN",
    )
    assert (real["num_logins_rw"], real["list_client"]) == (1, ["127.0.0.1"])
    assert real["set_var"] == (None, "OK")
    assert real["tracking"] == "ON"
    assert real["set_var_tracked"] == (True, "SUCCESS")
    assert real["instcmd_tracked"] == (True, "UNKNOWN")  # dummy-ups runs no command
    assert real["instcmd_unknown"] == "CMD-NOT-SUPPORTED"
    assert real["fsd_status"].startswith("FSD ")
    assert real["closed"] is True


# --------------------------------------------------------------------------------------------
# nuttrio why: never logs in, says when a server is unreachable


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream, on_data: Any = None) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await source.receive_some(65536):
            if on_data is not None:
                await on_data(data)
            await sink.send_all(data)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await sink.aclose()


async def why_against(port: int, tmp_path: Path) -> tuple[list[int], bytes, list[int]]:
    """Run `why`'s reading through a proxy that reads the server's NUMLOGINS at the moment
    `why` asks for ups.status. Returns (NUMLOGINS before, during, after), what `why` sent.
    """
    sent = bytearray()
    during: list[int] = []

    async with open_nut_client(HOST, port) as watcher, trio.open_nursery() as nursery:
        # A logged-in secondary, as a primary waiting through HOSTSYNC would count it.
        secondary = await trio.open_tcp_stream(HOST, port)
        mon = wrap_nut_stream(secondary)
        await mon.username(MONITOR_USER)
        await mon.password(MONITOR_PASSWORD)
        await mon.login("whyups")
        before = await watcher.num_logins("whyups")

        async def record(data: bytes) -> None:
            sent.extend(data)
            if b"GET VAR" in data:
                during.append(await watcher.num_logins("whyups"))

        async def proxy(stream: trio.SocketStream) -> None:
            upstream = await trio.open_tcp_stream(HOST, port)
            async with trio.open_nursery() as pumps:
                pumps.start_soon(_pump, stream, upstream, record)
                pumps.start_soon(_pump, upstream, stream)

        listeners = await nursery.start(functools.partial(trio.serve_tcp, proxy, 0, host=HOST))
        proxy_port = listeners[0].socket.getsockname()[1]
        conf = tmp_path / f"upsmon-{port}.conf"
        conf.write_text(
            f"MONITOR whyups@{HOST}:{proxy_port} 1 {ADMIN_USER} {ADMIN_PASSWORD} primary\n"
            "SHUTDOWNCMD true\n"
        )
        conf.chmod(0o600)
        with trio.fail_after(20):
            reading = await read_once(load_upsmon_conf(conf))
        after = await watcher.num_logins("whyups")
        await mon.logout()
        nursery.cancel_scope.cancel()
    assert reading.unreachable == {}
    [verdict] = reading.machine.verdicts(trio.current_time())
    assert not verdict.critical
    return [before, *during, after], bytes(sent), during


@pytest.mark.realnut
@pytest.mark.parametrize("which", ["real", "ours"])
async def test_why_never_logs_in(servers: Servers, tmp_path: Path, which: str) -> None:
    port = servers.real if which == "real" else servers.ours
    counts, sent, during = await why_against(port, tmp_path)
    assert during, "why never asked for ups.status"
    assert counts == [1] * len(counts)  # NUMLOGINS unchanged while why runs
    assert b"LOGIN" not in sent
    assert b"USERNAME" not in sent
    assert b"PASSWORD" not in sent


def test_why_says_the_server_is_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    (tmp_path / "upsmon.conf").write_text(
        f"MONITOR u@{HOST}:{port} 1 mon pw secondary\nSHUTDOWNCMD true\n"
    )
    (tmp_path / "upsmon.conf").chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "nuttrio", "why", "--nut-config", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"u@{HOST}:{port}: UNREACHABLE: server {HOST}:{port} unreachable")
    assert "counted as feeding" not in result.stdout


# --------------------------------------------------------------------------------------------
# Memory streams: ERR tokens, cancellation mid-call, tracking, STARTTLS


async def _read_line(stream: trio.abc.Stream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            break
        data += chunk
    return data


async def test_err_raises_nut_error_with_its_token() -> None:
    client_stream, server = trio.testing.memory_stream_pair()
    nut = wrap_nut_stream(client_stream)

    async def answer() -> None:
        assert await _read_line(server) == b"GET VAR u ups.status\n"
        await server.send_all(b"ERR ACCESS-DENIED\n")
        assert await _read_line(server) == b"GET VAR u ups.status\n"
        await server.send_all(b"ERR SOMETHING-NEW\n")
        assert await _read_line(server) == b"GET VAR u ups.status\n"
        await server.send_all(b'VAR u ups.status "OL"\n')

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with pytest.raises(NutError) as info:
            await nut.get_var("u", "ups.status")
        assert (info.value.code, info.value.error) == ("ACCESS-DENIED", ErrCode.ACCESS_DENIED)
        assert info.value.request == ("GET", "VAR", "u", "ups.status")
        with pytest.raises(NutError) as info:
            await nut.get_var("u", "ups.status")
        assert (info.value.code, info.value.error) == ("SOMETHING-NEW", None)
        assert await nut.get_var("u", "ups.status") == "OL"  # an ERR leaves it usable
        assert not nut.closed


async def test_cancelled_mid_call_closes_the_connection() -> None:
    client_stream, server = trio.testing.memory_stream_pair()
    nut = wrap_nut_stream(client_stream)
    half_sent = trio.Event()

    async def answer() -> None:
        assert await _read_line(server) == b"LIST VAR u\n"
        await server.send_all(b'BEGIN LIST VAR u\nVAR u a "1"\n')  # and never the rest
        half_sent.set()
        assert await server.receive_some() == b""  # the client closed

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with trio.CancelScope() as scope:
            nursery.start_soon(_cancel_when, half_sent, scope)
            await nut.list_var("u")
        assert scope.cancelled_caught
        assert nut.closed
        with pytest.raises(trio.ClosedResourceError):
            await nut.get_var("u", "ups.status")  # never reads the rest of the old reply


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()


async def test_cancelled_while_waiting_for_its_turn_leaves_the_connection() -> None:
    client_stream, server = trio.testing.memory_stream_pair()
    nut = wrap_nut_stream(client_stream)
    release = trio.Event()

    async def answer() -> None:
        assert await _read_line(server) == b"GET VAR u a\n"
        await release.wait()
        await server.send_all(b'VAR u a "1"\n')
        assert await _read_line(server) == b"GET VAR u c\n"  # b was never sent
        await server.send_all(b'VAR u c "3"\n')

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        first: list[str] = []

        async def call_a() -> None:
            first.append(await nut.get_var("u", "a"))

        nursery.start_soon(call_a)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0.01) as waiting:  # queued behind "a": nothing sent
            await nut.get_var("u", "b")
        assert waiting.cancelled_caught
        release.set()
        assert await nut.get_var("u", "c") == "3"
        assert first == ["1"]
        assert not nut.closed


async def test_a_server_breaking_the_protocol_closes_the_connection() -> None:
    client_stream, server = trio.testing.memory_stream_pair()
    nut = wrap_nut_stream(client_stream)

    async def answer() -> None:
        await _read_line(server)
        await server.send_all(b'VAR u other.var "1"\n')

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with pytest.raises(RemoteProtocolError):
            await nut.get_var("u", "ups.status")
    assert nut.closed


async def test_tracked_instcmd_is_awaited_until_done(autojump_clock: Any) -> None:
    client_stream, server = trio.testing.memory_stream_pair()
    nut = wrap_nut_stream(client_stream)

    async def answer() -> None:
        assert await _read_line(server) == b"INSTCMD u load.off\n"
        await server.send_all(b"OK TRACKING 1C41F5E4-24B7\n")
        for reply in (b"PENDING\n", b"PENDING\n", b"SUCCESS\n"):
            assert await _read_line(server) == b"GET TRACKING 1C41F5E4-24B7\n"
            await server.send_all(reply)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        result = await nut.instcmd("u", "load.off")
        assert result.id == "1C41F5E4-24B7"
        start = trio.current_time()
        assert await result == "SUCCESS"
        assert trio.current_time() - start == pytest.approx(0.2)  # two polls 0.1 s apart


async def test_starttls_against_nuttrios_server(tls_contexts: Any) -> None:
    server_ctx, client_ctx = tls_contexts
    store = StateStore()
    store.add("u", "Test UPS")
    driver = ScriptedDriver([Variable(name="ups.status", value="OL")])
    core = ServerCore(
        store,
        {"u": SimpleUser("p", frozenset({"login"}))},
        NoDescriptions(),
        ServerSettings(tls_available=True),
    )
    client_stream, server = trio.testing.memory_stream_pair()

    async def attach(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with store.get("u").connect() as link:
            await driver.run(link, task_status=task_status)

    async with trio.open_nursery() as nursery:
        await nursery.start(attach)
        nursery.start_soon(lambda: handle_stream(core, server, tls_context=server_ctx))
        nut = NutClient(client_stream, host="localhost")
        await nut.starttls(client_ctx)
        assert isinstance(nut.stream, trio.SSLStream)
        assert await nut.get_var("u", "ups.status") == "OL"
        assert await error_of(nut.starttls(client_ctx)) == "ALREADY-SSL-MODE"
        await nut.username("u")
        await nut.password("p")
        await nut.login("u")
        assert await nut.num_logins("u") == 1
        await nut.logout()
        nursery.cancel_scope.cancel()
