"""One test per attack on the server, plus the audit log and the password comparison.

Password guessing runs on memory streams under the MockClock (the peer address is given);
the others use real sockets on 127.0.0.1 with short limits, measuring that an honest client
is answered while the attack is going on.
"""

from __future__ import annotations

import contextlib
import logging
import ssl

import pytest
import trio
import trio.testing
import trustme

from nuttrio.guard import AuthThrottle, PeerCounter
from nuttrio.nutconf import User
from nuttrio.server import ConnectionLimits, ServerCore, handle_stream, open_listeners, serve_nut
from nuttrio.state import StateStore, Variable

from .helpers import NoDescriptions, ScriptedDriver


@pytest.fixture
async def core(nursery):
    store = StateStore()
    store.add("ups", "Test UPS")
    driver = ScriptedDriver(
        [Variable(name="ups.status", value="OL")]
        + [Variable(name=f"var.{i:03d}", value="x" * 40) for i in range(200)]
        + [Variable(name="ups.delay.shutdown", value="20", rw=True, string=True, aux=10)],
        commands=["load.off"],
    )

    async def attach(*, task_status=trio.TASK_STATUS_IGNORED):
        with store.get("ups").connect() as link:
            await driver.run(link, task_status=task_status)

    await nursery.start(attach)
    users = {
        "admin": User("admin", "right", frozenset({"login", "fsd", "set", "primary"}), {"all"}),
        "viewer": User("viewer", "seen", frozenset({"login"})),
    }
    return ServerCore(store, users, NoDescriptions())


async def read_until(stream, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = await stream.receive_some()
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


async def attempt(core, address: str, password: str) -> tuple[bytes, float]:
    """One LOGIN attempt on a new connection from ``address``: the reply and its delay."""
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: handle_stream(core, server, address=address))
        await client.send_all(f"USERNAME admin\nPASSWORD {password}\n".encode())
        await read_until(client, b"OK\nOK\n")
        start = trio.current_time()
        await client.send_all(b"LOGIN ups\n")
        reply = await read_until(client, b"\n")
        took = trio.current_time() - start
        await client.aclose()
    return reply, took


# -- attack: password guessing ---------------------------------------------------------------


async def test_attack_password_guessing_is_throttled_per_peer(core, autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="nuttrio.audit")
    attacker, honest = "192.0.2.7", "192.0.2.8"
    delays = []
    for _ in range(6):
        reply, took = await attempt(core, attacker, "guess")
        assert reply == b"ERR ACCESS-DENIED\n"
        delays.append(took)
    assert delays == pytest.approx([0, 0, 0, 1, 2, 4])
    # Loopback is never delayed (local tools keep upsd's behaviour).
    for _ in range(6):
        assert await attempt(core, "127.0.0.1", "guess") == (b"ERR ACCESS-DENIED\n", 0)
    # Another peer is not slowed down, with the right password or a typo.
    assert await attempt(core, honest, "right") == (b"OK\n", 0)
    assert await attempt(core, honest, "typo") == (b"ERR ACCESS-DENIED\n", 0)
    # Guessing in parallel from the attacker's address is no faster: the refusals queue.
    took: list[float] = []

    async def one() -> None:
        took.append((await attempt(core, attacker, "guess"))[1])

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert sorted(took) == pytest.approx([8, 8 + 16, 8 + 16 + 30])
    # The right password from the attacker's address still works (no lock-out), at once.
    assert await attempt(core, attacker, "right") == (b"OK\n", 0)
    failed = [r.getMessage() for r in caplog.records if "authentication failed" in r.message]
    assert len(failed) == 16  # loopback's failures are audited all the same
    assert "user=admin peer=192.0.2.7 ups=ups request='LOGIN ups'" in failed[0]


def test_throttle_forgets_and_is_bounded():
    now = [0.0]
    throttle = AuthThrottle(lambda: now[0], free=0, first=1, most=30)
    assert throttle.failed("a") == 1
    now[0] = 10_000
    assert throttle.failures("a") == 0
    assert throttle.failed("a") == 1  # counted from scratch after FAILURE_MEMORY
    for i in range(5000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._peers) == 4096


def test_passwords_are_compared_in_constant_time(monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    user = User("admin", "right", frozenset({"login"}))
    assert user.allows("login", "right")
    assert not user.allows("login", "righ")
    assert calls == [(b"right", b"right"), (b"righ", b"right")]
    assert not User("nopass").password_ok("")


# -- attack: a handshake never finished --------------------------------------------------------


@pytest.fixture(scope="module")
def server_tls():
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ctx


async def start_server(nursery, core, limits, tls_context=None):
    listeners = await open_listeners([("127.0.0.1", 0)])
    await nursery.start(
        lambda task_status: serve_nut(
            core, listeners, limits, tls_context=tls_context, task_status=task_status
        )
    )
    return listeners[0]


async def honest_request(listener, request=b"GET VAR ups ups.status\n") -> float:
    """Seconds an honest client waits for a reply."""
    start = trio.current_time()
    stream = await trio.testing.open_stream_to_socket_listener(listener)
    async with stream:
        await stream.send_all(request)
        with trio.fail_after(2):
            assert await read_until(stream, b"\n")
    return trio.current_time() - start


async def test_attack_handshake_never_finished(nursery, core, server_tls):
    from nuttrio.server import ServerSettings

    core.settings = ServerSettings(tls_available=True)
    limits = ConnectionLimits(tls_handshake_timeout=2.0)
    listener = await start_server(nursery, core, limits, server_tls)
    began = trio.current_time()
    stalled = []
    for _ in range(20):  # 20 clients say STARTTLS and never send a ClientHello
        stream = await trio.testing.open_stream_to_socket_listener(listener)
        await stream.send_all(b"STARTTLS\n")
        assert await read_until(stream, b"OK STARTTLS\n")
        stalled.append(stream)
    assert await honest_request(listener) < 1.0  # long before any handshake limit
    with trio.fail_after(10):
        for stream in stalled:
            while await stream.receive_some():
                pass  # closed by the server at the handshake limit
    assert 2.0 <= trio.current_time() - began < 8
    assert core.stats.connections_open == 0


# -- attack: a client that never reads -----------------------------------------------------


async def test_attack_client_that_never_reads(nursery, core):
    listener = await start_server(nursery, core, ConnectionLimits(send_timeout=2.0))
    greedy = await trio.testing.open_stream_to_socket_listener(listener)
    # About 10 kB of reply per request: the socket buffers fill and the server's send blocks.
    flood = b"LIST VAR ups\n" * 200
    start = trio.current_time()
    with trio.fail_after(10):
        async with trio.open_nursery() as inner:

            async def push() -> None:
                # Ends when the server gives up on the greedy client and closes it.
                with contextlib.suppress(trio.BrokenResourceError):
                    while True:
                        await greedy.send_all(flood)

            inner.start_soon(push)
            await trio.sleep(0.3)
            assert await honest_request(listener) < 1.0  # served while the greedy one is stuck
    assert 2.0 <= trio.current_time() - start < 8
    await greedy.aclose()


# -- attack: 1,000 connections from one peer ------------------------------------------------


async def test_attack_a_thousand_connections_from_one_peer(nursery, core, caplog):
    limits = ConnectionLimits(max_per_peer=32, per_peer_exempt=())
    listener = await start_server(nursery, core, limits)
    port = listener.socket.getsockname()[1]
    streams = []
    for _ in range(1000):
        streams.append(await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.2"))
    with trio.fail_after(10):
        # Every connection over the cap is closed at once, never served.
        closed = 0
        for stream in streams[32:]:
            assert await stream.receive_some() == b""
            closed += 1
    assert closed == 968
    assert core.stats.connections_open == 32
    # Another address is served meanwhile.
    other = await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.3")
    async with other:
        await other.send_all(b"NETVER\n")
        with trio.fail_after(2):
            assert await read_until(other, b"\n") == b"1.3\n"
    messages = [r.getMessage() for r in caplog.records if "NUTTRIO_MAXCONN_PER_PEER" in r.message]
    assert len(messages) == 10  # 1st, 2nd, 4th... 512th refusal: the log backs off
    for stream in streams:
        await stream.aclose()


async def test_loopback_is_exempt_from_the_per_peer_cap(nursery, core):
    listener = await start_server(nursery, core, ConnectionLimits(max_per_peer=4))
    streams = [await trio.testing.open_stream_to_socket_listener(listener) for _ in range(20)]
    for stream in streams:
        await stream.send_all(b"NETVER\n")
        with trio.fail_after(2):
            assert await read_until(stream, b"\n") == b"1.3\n"
        await stream.aclose()


def test_peer_counter():
    peers = PeerCounter(2)
    assert peers.open("192.0.2.1")
    assert peers.open("192.0.2.1")
    assert not peers.open("192.0.2.1")
    assert peers.open("127.0.0.9")  # loopback, by default exempt
    peers.close("192.0.2.1")
    assert peers.open("192.0.2.1")
    assert peers.count("192.0.2.1") == 2


# -- bounded memory: a partial line that never ends ------------------------------------------


async def test_partial_line_that_never_ends_is_closed_by_idle_timeout(core, autojump_clock):
    client, server = trio.testing.memory_stream_pair()
    limits = ConnectionLimits(idle_timeout=60, max_line=4096)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: handle_stream(core, server, limits, address="192.0.2.1"))
        start = trio.current_time()
        for _ in range(50):  # a trickle, always under the line limit, never a LF
            await client.send_all(b"GET ")
            await trio.sleep(1)
        with trio.fail_after(100):
            while await client.receive_some():
                pass
        assert trio.current_time() - start == pytest.approx(60)


# -- the audit log -----------------------------------------------------------------------------


async def test_audit_lines(core, caplog):
    from .helpers import exchange, new_session

    caplog.set_level(logging.INFO, logger="nuttrio.audit")
    session = new_session(address="192.0.2.5")
    exchange(
        core,
        session,
        b"USERNAME admin\nPASSWORD right\nSET TRACKING ON\nPRIMARY ups\n"
        b"SET VAR ups ups.delay.shutdown 30\nINSTCMD ups load.off\nFSD ups\nFSD nope\n",
    )
    records = [r for r in caplog.records if r.name == "nuttrio.audit"]
    lines = [r.getMessage() for r in records]
    assert [r.levelname for r in records] == ["INFO", "INFO", "INFO", "WARNING", "WARNING"]
    assert len(lines) == 5
    assert lines[0] == (
        "user=admin peer=192.0.2.5 ups=ups request='PRIMARY ups' result=OK tracking=-"
    )
    assert lines[1].startswith(
        "user=admin peer=192.0.2.5 ups=ups request='SET VAR ups ups.delay.shutdown 30' "
        "result=OK tracking="
    )
    assert len(lines[1].rsplit("tracking=", 1)[1]) == 36  # a UUID
    assert "request='INSTCMD ups load.off' result=OK tracking=" in lines[2]
    assert "request='FSD ups' result=OK" in lines[3]
    assert "ups=nope request='FSD nope' result=UNKNOWN-UPS" in lines[4]
    assert all("right" not in line for line in lines)  # no password
    # The driver's answers come after the replies, each an audit line with its tracking id.
    await trio.testing.wait_all_tasks_blocked()
    answers = [r.getMessage() for r in caplog.records if r.name == "nuttrio.audit"][5:]
    set_id, cmd_id = (line.rsplit("tracking=", 1)[1] for line in lines[1:3])
    assert answers == [
        "user=admin peer=192.0.2.5 ups=ups request='SET VAR ups ups.delay.shutdown 30' "
        f"driver=SUCCESS tracking={set_id}",
        f"user=admin peer=192.0.2.5 ups=ups request='INSTCMD ups load.off' "
        f"driver=SUCCESS tracking={cmd_id}",
    ]


def test_upsd_users_readable_by_others_warns(tmp_path):
    from nuttrio.nutconf import load_nut_config

    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "ups.conf").write_text("[ups]\n driver = dummy-ups\n port = a.dev\n")
    users = tmp_path / "upsd.users"
    users.write_text("[admin]\n password = pw\n")
    (tmp_path / "upsd.conf").chmod(0o600)
    users.chmod(0o644)
    warnings = [str(w) for w in load_nut_config(tmp_path, env={}).warnings]
    assert f"{users}: file is world readable" in warnings
    users.chmod(0o600)
    assert not [str(w) for w in load_nut_config(tmp_path, env={}).warnings]


def _outside_address() -> str:
    """This machine's own address outside loopback (the per-peer cap's ground), or skip."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: it only picks a route
        except OSError as exc:
            pytest.skip(f"no address outside loopback to connect from: {exc}")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no address outside loopback to connect from")
    return address


@pytest.mark.parametrize(("directive", "cap"), [("NUTTRIO_MAXCONN_PER_PEER 3\n", 3), ("", 32)])
async def test_the_daemon_takes_the_per_peer_cap_from_upsd_conf(tmp_path, directive, cap):
    import nuttrio

    address = _outside_address()
    (tmp_path / "upsd.conf").write_text(directive)
    (tmp_path / "ups.conf").write_text("[a]\n driver = dummy-ups\n port = a.dev\n")
    (tmp_path / "a.dev").write_text("ups.status: OL\n")
    (tmp_path / "upsd.users").write_text("")
    options = nuttrio.DaemonOptions(confdir=tmp_path, listen=((address, 0),))
    async with nuttrio.open_daemon(options) as daemon:
        port = daemon.addresses[0][1]
        streams = [
            await trio.open_tcp_stream(address, port, local_address=address) for _ in range(cap + 2)
        ]
        with trio.fail_after(5):
            for stream in streams[cap:]:
                assert await stream.receive_some() == b""  # over the cap: closed unserved
            for stream in streams[:cap]:
                await stream.send_all(b"NETVER\n")
                assert await read_until(stream, b"\n") == b"1.3\n"
        for stream in streams:
            await stream.aclose()
