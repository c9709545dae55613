"""The Trio server: real TCP sockets on 127.0.0.1 and memory streams for exact timing."""

from __future__ import annotations

import errno
import itertools
import resource
import socket

import pytest
import trio
import trio.testing

from nuttrio.server import ConnectionLimits, ServerCore, handle_stream, open_listeners, serve_nut
from nuttrio.state import StateStore, Variable

from .helpers import NoDescriptions, ScriptedDriver, SimpleUser


@pytest.fixture
async def core(nursery):
    store = StateStore()
    store.add("ups", "Test UPS")
    driver = ScriptedDriver(
        [Variable(name=f"var.{i:02d}", value=f"value {i}") for i in range(20)]
        + [Variable(name="ups.status", value="OL")]
    )

    async def attach(*, task_status=trio.TASK_STATUS_IGNORED):
        with store.get("ups").connect() as link:
            await driver.run(link, task_status=task_status)

    await nursery.start(attach)
    return ServerCore(store, {"u": SimpleUser("p", frozenset({"login"}))}, NoDescriptions())


async def start_server(nursery, core, limits=None):
    listeners = await open_listeners([("127.0.0.1", 0)])
    await nursery.start(serve_nut, core, listeners, limits)
    return listeners[0]


async def read_until(stream, end: bytes) -> bytes:
    data = b""
    with trio.fail_after(5):
        while not data.endswith(end):
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed early after {data!r}"
            data += chunk
    return data


async def test_pipelined_requests_over_tcp(nursery, core):
    listener = await start_server(nursery, core)
    stream = await trio.testing.open_stream_to_socket_listener(listener)
    await stream.send_all(b"VER\nGET VAR ups ups.status\nLIST UPS\nBOGUS\n")
    data = await read_until(stream, b"ERR UNKNOWN-COMMAND\n")
    assert data.endswith(
        b'VAR ups ups.status "OL"\nBEGIN LIST UPS\nUPS ups "Test UPS"\nEND LIST UPS\n'
        b"ERR UNKNOWN-COMMAND\n"
    )
    sock = stream.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class CountingStream(trio.abc.Stream):
    """Counts the writes made to a stream."""

    def __init__(self, inner):
        self.inner = inner
        self.writes = 0

    async def send_all(self, data):
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self):
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        return await self.inner.receive_some(max_bytes)

    async def aclose(self):
        await self.inner.aclose()


async def test_a_whole_list_goes_out_in_one_write(core):
    client, server = trio.testing.memory_stream_pair()
    counted = CountingStream(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_stream, core, counted)
        await client.send_all(b"LIST VAR ups\n")
        data = await read_until(client, b"END LIST VAR ups\n")
        assert data.count(b"\n") == 23
        assert counted.writes == 1
        await client.send_all(b"GET VAR ups var.01\nGET VAR ups var.02\n")
        await read_until(client, b'"value 2"\n')
        assert counted.writes == 2  # the two pipelined replies went out together
        await client.aclose()


async def test_idle_timeout_counts_complete_lines_only(core, autojump_clock):
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_stream, core, server)
        start = trio.current_time()
        await trio.sleep(59)
        await client.send_all(b"VER\n")
        await read_until(client, b"\n")
        await trio.sleep(30)
        await client.send_all(b"GET VA")  # a partial line does not count as activity
        with trio.fail_after(100):
            assert await client.receive_some() == b""
        assert trio.current_time() - start == pytest.approx(59 + 60)


async def test_long_line_gets_an_error_and_closes(core):
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_stream, core, server, ConnectionLimits(max_line=1024))
        await client.send_all(b"VER\nGET VAR " + b"x" * 5000)
        data = await read_until(client, b"ERR TOO-LONG\n")
        assert data.startswith(b"Network UPS Tools")
        assert await client.receive_some() == b""


async def test_logout_closes_but_pipelined_requests_keep_it_open(nursery, core):
    listener = await start_server(nursery, core)
    stream = await trio.testing.open_stream_to_socket_listener(listener)
    await stream.send_all(b"LOGOUT\n")
    assert await read_until(stream, b"\n") == b"OK Goodbye\n"
    assert await stream.receive_some() == b""

    stream = await trio.testing.open_stream_to_socket_listener(listener)
    await stream.send_all(b"LOGOUT\nNETVER\n")
    assert await read_until(stream, b"1.3\n") == b"OK Goodbye\n1.3\n"
    await stream.send_all(b"NETVER\n")
    assert await read_until(stream, b"\n") == b"1.3\n"


async def test_numlogins_drops_when_the_connection_closes(nursery, core):
    listener = await start_server(nursery, core)
    a = await trio.testing.open_stream_to_socket_listener(listener)
    await a.send_all(b"USERNAME u\nPASSWORD p\nLOGIN ups\nGET NUMLOGINS ups\n")
    assert (await read_until(a, b"NUMLOGINS ups 1\n")).endswith(b"OK\nNUMLOGINS ups 1\n")
    await a.send_all(b"LIST CLIENT ups\n")
    assert b"CLIENT ups 127.0.0.1\n" in await read_until(a, b"END LIST CLIENT ups\n")
    await a.aclose()
    b = await trio.testing.open_stream_to_socket_listener(listener)
    with trio.fail_after(5):
        while True:
            await b.send_all(b"GET NUMLOGINS ups\n")
            if await read_until(b, b"\n") == b"NUMLOGINS ups 0\n":
                break
            await trio.sleep(0.01)


async def test_a_client_that_never_reads_does_not_delay_others(nursery, core):
    listener = await start_server(nursery, core)
    hog = socket.create_connection(listener.socket.getsockname()[:2])
    hog.setblocking(False)
    request = b"LIST VAR ups\n" * 1000
    sent = 0
    try:
        while sent < 50_000_000:
            sent += hog.send(request)
    except BlockingIOError:
        pass  # the hog's buffers are full: the server is blocked writing to it
    other = await trio.testing.open_stream_to_socket_listener(listener)
    await other.send_all(b"GET VAR ups ups.status\n")
    assert await read_until(other, b"\n") == b'VAR ups ups.status "OL"\n'
    hog.close()


async def test_max_clients_queues_connections_until_a_slot_frees(nursery, core):
    listener = await start_server(nursery, core, ConnectionLimits(max_clients=2))
    a = await trio.testing.open_stream_to_socket_listener(listener)
    b = await trio.testing.open_stream_to_socket_listener(listener)
    for s in (a, b):
        await s.send_all(b"NETVER\n")
        assert await read_until(s, b"\n") == b"1.3\n"
    c = await trio.testing.open_stream_to_socket_listener(listener)
    await c.send_all(b"NETVER\n")
    with trio.move_on_after(0.3):
        await c.receive_some()
        pytest.fail("a third client was served while two were connected")
    await a.aclose()
    assert await read_until(c, b"\n") == b"1.3\n"


def test_protocol_package_does_not_import_trio():
    import subprocess
    import sys

    code = "import sys, nuttrio.protocol; assert 'trio' not in sys.modules, 'trio imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_starttls_upgrades_the_same_session(core, tls_contexts):
    from nuttrio.server import ServerSettings

    server_ctx, client_ctx = tls_contexts
    core.settings = ServerSettings(tls_available=True)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: handle_stream(core, server, tls_context=server_ctx))
        await client.send_all(b"USERNAME u\nSTARTTLS\n")
        assert await read_until(client, b"OK STARTTLS\n") == b"OK\nOK STARTTLS\n"
        tls = trio.SSLStream(client, client_ctx, server_hostname="localhost")
        await tls.do_handshake()
        await tls.send_all(b"PASSWORD p\nLOGIN ups\nSTARTTLS\n")
        assert await read_until(tls, b"ERR ALREADY-SSL-MODE\n") == (
            b"OK\nOK\nERR ALREADY-SSL-MODE\n"  # USERNAME from before TLS still counts
        )
        await tls.aclose()


async def test_plaintext_pipelined_after_starttls_is_refused(core, tls_contexts):
    from nuttrio.server import ServerSettings

    server_ctx, _ = tls_contexts
    core.settings = ServerSettings(tls_available=True)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: handle_stream(core, server, tls_context=server_ctx))
        await client.send_all(b"STARTTLS\nVER\n")
        assert await read_until(client, b"OK STARTTLS\n") == b"OK STARTTLS\n"
        with trio.fail_after(5):
            assert await client.receive_some() == b""  # closed: no command injection


async def test_tls_handshake_timeout_closes(core, tls_contexts, autojump_clock):
    from nuttrio.server import ServerSettings

    server_ctx, _ = tls_contexts
    core.settings = ServerSettings(tls_available=True)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: handle_stream(
                core, server, ConnectionLimits(tls_handshake_timeout=7), tls_context=server_ctx
            )
        )
        start = trio.current_time()
        await client.send_all(b"STARTTLS\n")
        await read_until(client, b"OK STARTTLS\n")
        with trio.fail_after(100):
            while await client.receive_some():
                pass
        assert trio.current_time() - start == pytest.approx(7)


async def test_a_bug_in_one_connection_does_not_stop_the_server(nursery, core, monkeypatch, caplog):
    from nuttrio.protocol import events as ev

    original = core.handle

    def buggy(session, request):
        if isinstance(request, ev.Help):
            raise ZeroDivisionError("bug")
        return original(session, request)

    monkeypatch.setattr(core, "handle", buggy)
    listener = await start_server(nursery, core)
    victim = await trio.testing.open_stream_to_socket_listener(listener)
    await victim.send_all(b"HELP\n")
    with trio.fail_after(5):
        assert await victim.receive_some() == b""
    assert "ZeroDivisionError" in caplog.text
    other = await trio.testing.open_stream_to_socket_listener(listener)
    await other.send_all(b"NETVER\n")
    assert await read_until(other, b"\n") == b"1.3\n"


async def test_stats_count_connections_requests_and_error_tokens(core):
    assert (core.stats.connections_open, core.stats.connections_accepted) == (0, 0)
    async with trio.open_nursery() as nursery:
        first, first_server = trio.testing.memory_stream_pair()
        second, second_server = trio.testing.memory_stream_pair()
        nursery.start_soon(handle_stream, core, first_server)
        nursery.start_soon(handle_stream, core, second_server)
        await first.send_all(b"VER\nGET VAR ups ups.status\nGET VAR nope x\nLIST VAR nope\nBOGUS\n")
        await read_until(first, b"ERR UNKNOWN-COMMAND\n")
        await second.send_all(b"USERNAME u\nPASSWORD p\nMASTER ups\n")
        await read_until(second, b"ERR ACCESS-DENIED\n")
        assert (core.stats.connections_open, core.stats.connections_accepted) == (2, 2)
        await first.aclose()
        await second.send_all(b"LOGOUT\n")
        await read_until(second, b"OK Goodbye\n")
    assert (core.stats.connections_open, core.stats.connections_accepted) == (0, 2)
    assert core.stats.requests == {
        "VER": 1,
        "GET": 2,
        "LIST": 1,
        "REJECTED": 1,
        "USERNAME": 1,
        "PASSWORD": 1,
        "MASTER": 1,
        "LOGOUT": 1,
    }
    assert core.stats.errors == {"UNKNOWN-UPS": 2, "UNKNOWN-COMMAND": 1, "ACCESS-DENIED": 1}


class ShortOfDescriptors(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose accept fails with EMFILE ``failures`` times, then hands out a stream."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[float] = []
        self.client, self.server = trio.testing.memory_stream_pair()

    async def accept(self):
        self.attempts.append(trio.current_time())
        if len(self.attempts) <= self.failures:
            raise OSError(errno.EMFILE, "Too many open files")
        if len(self.attempts) == self.failures + 1:
            return self.server
        await trio.sleep_forever()

    async def aclose(self):
        pass


async def test_running_out_of_descriptors_logs_once_and_backs_off(
    nursery, core, autojump_clock, caplog
):
    listener = ShortOfDescriptors(failures=7)
    await nursery.start(serve_nut, core, [listener])
    await listener.client.send_all(b"VER\n")
    assert (await read_until(listener.client, b"\n")).startswith(b"Network UPS Tools")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert f"RLIMIT_NOFILE soft {soft}" in errors[0].getMessage()
    assert "accepting connections again after 7 failed attempts" in caplog.text
    gaps = [b - a for a, b in itertools.pairwise(listener.attempts)]
    assert gaps[:7] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "flood", [b"\n" * 65536, b"LIST VAR ups\n" * 4000], ids=["empty-lines", "list-var"]
)
async def test_a_flooding_client_delays_the_others_only_briefly(nursery, core, flood):
    # Before the slices, one such write kept every other client waiting 90-420 ms. The
    # figure itself (about a millisecond) is measured by bench/bench_fairness.py.
    listener = await start_server(nursery, core)
    flooder = await trio.testing.open_stream_to_socket_listener(listener)
    poller = await trio.testing.open_stream_to_socket_listener(listener)

    async def drain():
        while await flooder.receive_some(1 << 20):
            pass

    async def flood_forever():
        while True:
            await flooder.send_all(flood)

    nursery.start_soon(drain)
    nursery.start_soon(flood_forever)
    await trio.sleep(0.05)  # the flood is under way
    worst = 0.0
    for _ in range(20):
        began = trio.current_time()
        await poller.send_all(b"GET VAR ups ups.status\n")
        assert await read_until(poller, b"\n") == b'VAR ups ups.status "OL"\n'
        worst = max(worst, trio.current_time() - began)
        await trio.sleep(0.005)
    assert worst < 0.05
