"""The sans-IO client: ClientConnection against ServerConnection + ServerCore, and the real upsd.

Replies are fed three ways (whole, byte by byte, random chunks), as h11's tests feed theirs.
The fuzz invariant is h11's: any server input gives replies or RemoteProtocolError, never any
other exception.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from nuttrio.protocol import (
    ClientConnection,
    ClientReply,
    ClientSignal,
    ClientState,
    ErrCode,
    Line,
    LocalProtocolError,
    RemoteProtocolError,
    ReplyError,
    ServerConnection,
    Signal,
    Tokenizer,
)
from nuttrio.protocol import events as ev
from nuttrio.protocol import replies as rp
from nuttrio.protocol.tokenizer import ARG_LIMIT, WORD_LIMIT
from nuttrio.server import ServerCore, ServerSettings, Session
from nuttrio.state import CommandStatus, StateStore, Variable

from .helpers import NoDescriptions, ScriptedDriver, SimpleUser, exchange, new_session
from .realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    MONITOR_PASSWORD,
    MONITOR_USER,
    RealNutFactory,
    write_dev_file,
)

Chunker = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_chunks(data: bytes) -> list[bytes]:
    rng = random.Random(len(data))
    out, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 40)
        out.append(data[pos : pos + step])
        pos += step
    return out


@pytest.fixture(params=[whole, bytewise, random_chunks], ids=["whole", "bytes", "random"])
def chunker(request: pytest.FixtureRequest) -> Chunker:
    return request.param


def feed(client: ClientConnection, data: bytes, chunker: Chunker = whole) -> list[ClientReply]:
    """Feed ``data`` in chunks and collect every reply for the requests outstanding."""
    replies: list[ClientReply] = []
    for chunk in chunker(data):
        client.receive_data(chunk)
        while client.pending:
            reply = client.next_reply()
            if isinstance(reply, ClientSignal):
                assert reply is ClientSignal.NEED_DATA
                break
            replies.append(reply)
    return replies


def one(request: tuple[str, ...], data: bytes, **kwargs: int) -> ClientReply:
    """The reply read from ``data`` (whole, then byte by byte: both must agree)."""
    results = []
    for chunker in (whole, bytewise):
        client = ClientConnection(**kwargs)
        client.send_words(*request)
        results.append(feed(client, data, chunker))
        assert not client.pending
    assert results[0] == results[1]
    [reply] = results[0]
    return reply


# --------------------------------------------------------------------------------------------
# Requests: formatting and quoting

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=40)


def server_words(data: bytes) -> tuple[str, ...]:
    tok = Tokenizer()
    tok.feed(data)
    line = tok.next_line()
    assert isinstance(line, Line)
    assert tok.next_line() is None
    return line.words


@pytest.mark.parametrize(
    ("words", "data"),
    [
        (("GET", "VAR", "ups", "ups.status"), b"GET VAR ups ups.status\n"),
        (("SET", "VAR", "u", "v", "a b"), b'SET VAR u v "a b"\n'),
        (("SET", "VAR", "u", "v", ""), b'SET VAR u v ""\n'),
        (("USERNAME", "a=b"), b'USERNAME "a=b"\n'),
        (("USERNAME", "="), b'USERNAME "="\n'),
        (("PASSWORD", "x#y"), b'PASSWORD "x\\#y"\n'),
        (("PASSWORD", 'say "hi"'), b'PASSWORD "say \\"hi\\""\n'),
        (("PASSWORD", "back\\slash"), b'PASSWORD "back\\\\slash"\n'),
        (("PASSWORD", "it's\x7f"), b"PASSWORD it's\x7f\n"),
    ],
)
def test_send_quotes_only_when_needed(words, data):
    client = ClientConnection()
    assert client.send_words(*words) == data
    assert client.pending == (words,)
    assert server_words(data) == words


@given(st.lists(PRINTABLE, min_size=1, max_size=ARG_LIMIT))
def test_any_printable_words_survive_nuts_tokenizer(words):
    data = ClientConnection().send_words(*words)
    assert server_words(data) == tuple(words)
    tok = Tokenizer()
    for i in range(len(data)):
        tok.feed(data[i : i + 1])
    line = tok.next_line()
    assert isinstance(line, Line)
    assert line.words == tuple(words)


@given(PRINTABLE)
def test_any_printable_argument_reaches_the_server_parser_intact(word):
    client, server = ClientConnection(), ServerConnection()
    for request in [("USERNAME", word), ("PASSWORD", word), ("SET", "VAR", "u", "v", word)]:
        server.receive_data(client.send_words(*request))
        event = server.next_event()
        assert not isinstance(event, ev.Rejected | Signal)
        server.send(rp.ok())
    assert server.username == word
    assert server.password == word
    assert event == ev.SetVar(ups="u", var="v", value=word)


def test_longest_words_survive():
    words = ("SET", "VAR", "u", "v", '"#\\= ' * (WORD_LIMIT // 5) + "xy")
    assert len(words[-1]) == WORD_LIMIT
    assert server_words(ClientConnection().send_words(*words)) == words


@pytest.mark.parametrize(
    "words",
    [
        (),
        ("VER",) * (ARG_LIMIT + 1),
        ("USERNAME", "x" * (WORD_LIMIT + 1)),
        ("USERNAME", "caf\u00e9"),
        ("USERNAME", "tab\there"),
        ("USERNAME", "two\nlines"),
        ("USERNAME", "nul\x00"),
    ],
)
def test_send_refuses_what_nut_cannot_carry(words):
    client = ClientConnection()
    with pytest.raises(LocalProtocolError):
        client.send_words(*words)
    assert client.pending == ()
    assert client.state is ClientState.OPEN


# --------------------------------------------------------------------------------------------
# Replies from a hand-written server: shapes, helpers, every ERR token


def test_reply_kinds_and_helpers():
    var = one(("get", "var", "UPS", "Ups.Status"), b'VAR ups ups.status "OL CHRG"\n')
    assert var.ok
    assert var.error is None
    assert not var.is_list
    assert var.words == ("VAR", "ups", "ups.status", "OL CHRG")
    assert var.value() == "OL CHRG"
    assert var.raw == b'VAR ups ups.status "OL CHRG"\n'
    typ = one(("GET", "TYPE", "u", "v"), b"TYPE u v RW ENUM STRING:3\n")
    assert typ.args() == ("RW", "ENUM", "STRING:3")
    assert one(("GET", "TRACKING"), b"ON\n").value() == "ON"
    assert one(("GET", "TRACKING", "id"), b"PENDING\n").value() == "PENDING"
    assert one(("GET", "NUMLOGINS", "u"), b"NUMLOGINS u 3\n").value() == "3"
    assert one(("GET", "UPSDESC", "u"), b'UPSDESC u "a \\"b\\""\n').value() == 'a "b"'
    tracked = one(("INSTCMD", "u", "load.off"), b"OK TRACKING 1C41F5E4-24B7\n")
    assert tracked.tracking_id == "1C41F5E4-24B7"
    assert one(("INSTCMD", "u", "load.off"), b"OK\n").tracking_id is None
    assert one(("VER",), b"Network UPS Tools upsd 2.8.0\n").words[-1] == "2.8.0"
    assert one(("FOO",), b"ERR UNKNOWN-COMMAND\n").error is ErrCode.UNKNOWN_COMMAND

    ups = one(("LIST", "UPS"), b'BEGIN LIST UPS\nUPS a "A"\nUPS b "B b"\nEND LIST UPS\n')
    assert ups.is_list
    assert ups.words == ("BEGIN", "LIST", "UPS")
    assert ups.items == (("UPS", "a", "A"), ("UPS", "b", "B b"))
    assert ups.as_dict() == {"a": "A", "b": "B b"}
    rng = one(
        ("LIST", "RANGE", "u", "v"),
        b'BEGIN LIST RANGE u v\nRANGE u v "1" "2"\nRANGE u v "5" "9"\nEND LIST RANGE u v\n',
    )
    assert rng.rows() == (("1", "2"), ("5", "9"))
    cmds = one(("LIST", "CMD", "U"), b"BEGIN LIST CMD U\nCMD u a\nCMD u b\nEND LIST CMD U\n")
    assert cmds.as_list() == ["a", "b"]
    empty = one(("LIST", "ENUM", "u", "v"), b"BEGIN LIST ENUM u v\nEND LIST ENUM u v\n")
    assert empty.items == ()
    assert empty.as_list() == []
    other = one(("LIST", "FOO", "x", "y"), b"BEGIN LIST FOO x\nFOO 1 2 3\nEND LIST FOO x\n")
    assert other.items == (("FOO", "1", "2", "3"),)


@settings(max_examples=500)
@given(st.text(' "#=\\ab1\t\r\x7f\x01\xe9', max_size=30))
def test_reply_lines_split_as_nut_splits_them(text):
    data = text.encode("latin-1") + b"\n"
    tok = Tokenizer()
    tok.feed(data)
    line = tok.next_line()
    client = ClientConnection()
    client.send_words("VER")
    client.receive_data(data)
    if (
        isinstance(line, Line)
        and line.words
        and line.words[:2] != ("BEGIN", "LIST")
        and line.words != ("ERR",)
    ):
        assert client.next_reply().words == line.words
    else:
        with pytest.raises(RemoteProtocolError):
            client.next_reply()


def test_long_and_many_words_split_as_nut_splits_them():
    for data in [b"x" * 600 + b" y\n", b" ".join([b"w"] * 40) + b"\n", b'"' + b"q" * 600 + b'"\n']:
        tok = Tokenizer()
        tok.feed(data)
        line = tok.next_line()
        assert one(("VER",), data).words == line.words


@pytest.mark.parametrize("code", list(ErrCode))
@pytest.mark.parametrize("request_words", [("GET", "VAR", "u", "v"), ("LIST", "VAR", "u")])
def test_every_err_token(code, request_words):
    reply = one(request_words, rp.err(code).data)
    assert (reply.error, reply.error_token, reply.ok) == (code, code.value, False)
    assert reply.items == ()
    with pytest.raises(ReplyError) as info:
        reply.raise_for_error()
    assert (info.value.error, info.value.token, info.value.reply) == (code, code.value, reply)
    with pytest.raises(ReplyError):
        reply.value() if request_words[0] == "GET" else reply.as_dict()


def test_unknown_err_token_keeps_its_text():
    reply = one(("VER",), b"ERR SOMETHING-NEW and more\n")
    assert (reply.error, reply.error_token, reply.ok) == (None, "SOMETHING-NEW", False)
    with pytest.raises(ReplyError, match="VER: ERR SOMETHING-NEW"):
        reply.raise_for_error()


@pytest.mark.parametrize(
    ("reply", "call"),
    [
        (ClientReply(request=("LIST", "VAR", "u"), words=("BEGIN", "LIST", "VAR", "u")), "value"),
        (ClientReply(request=("LIST", "CMD", "u"), words=("BEGIN", "LIST", "CMD", "u")), "as_dict"),
        (ClientReply(request=("LIST", "VAR", "u"), words=("BEGIN", "LIST", "VAR", "u")), "as_list"),
        (ClientReply(request=("LIST", "FOO"), words=("BEGIN", "LIST", "FOO")), "rows"),
        (ClientReply(request=("GET", "TYPE", "u", "v"), words=("TYPE", "u", "v", "RW")), "value"),
        (ClientReply(request=("GET", "VAR", "u", "v"), words=("VAR", "u", "v", "x")), "rows"),
        (ClientReply(request=("VER",), words=("x",)), "args"),
    ],
)
def test_helpers_refuse_the_wrong_request(reply, call):
    with pytest.raises(LocalProtocolError):
        getattr(reply, call)()


@pytest.mark.parametrize(
    ("reply", "call"),
    [
        (ClientReply(request=("GET", "VAR", "u", "v"), words=("VAR", "u", "w", "x")), "value"),
        (ClientReply(request=("GET", "VAR", "u", "v"), words=("VAR", "u", "v")), "value"),
        (
            ClientReply(
                request=("LIST", "VAR", "u"),
                words=("BEGIN", "LIST", "VAR", "u"),
                items=(("VAR", "x", "a", "1"),),
            ),
            "as_dict",
        ),
    ],
)
def test_helpers_check_the_echo_of_hand_built_replies(reply, call):
    with pytest.raises(RemoteProtocolError):
        getattr(reply, call)()


# --------------------------------------------------------------------------------------------
# What the server may get wrong: RemoteProtocolError and the ERROR state


def assert_remote_error(requests, data, *, close=False, **kwargs):
    for chunker in (whole, bytewise):
        client = ClientConnection(**kwargs)
        for request in requests:
            client.send_words(*request)

        def read_all(client=client, chunker=chunker):
            feed(client, data, chunker)
            if close:
                client.receive_data(b"")
            while True:
                client.next_reply()

        with pytest.raises(RemoteProtocolError):
            read_all()
        assert client.state is ClientState.ERROR
        with pytest.raises(RemoteProtocolError):
            client.next_reply()
        with pytest.raises(LocalProtocolError):
            client.send_words("VER")


GV = ("GET", "VAR", "u", "v")
LV = ("LIST", "VAR", "u")


@pytest.mark.parametrize(
    ("request_words", "data"),
    [
        (GV, b'VAR u w "1"\n'),
        (GV, b'NUMLOGINS u v "1"\n'),
        (GV, b"VAR u v\n"),
        (GV, b'VAR u v "1" x\n'),
        (("GET", "VAR", "u"), b'VAR u v "1"\n'),
        (GV, b"BEGIN LIST VAR u\nEND LIST VAR u\n"),
        (("VER",), b"BEGIN LIST VAR u\nEND LIST VAR u\n"),
        (("VER",), b"\n"),
        (("VER",), b"ERR\n"),
        (("VER",), b'"a#b"\n'),
        (("VER",), b'"open quote\n'),
        (("VER",), b"continued\\\n"),
        (("USERNAME", "x"), b"VAR u v 1\n"),
        (("USERNAME", "x"), b"ok\n"),
        (("STARTTLS",), b"OK\n"),
        (("LOGOUT",), b"Goodbye\n"),
        (("GET", "TRACKING"), b"ON OFF\n"),
        (LV, b'VAR u v "1"\n'),
        (LV, b"BEGIN LIST VAR x\n"),
        (LV, b"BEGIN LIST VAR u extra\n"),
        (LV, b"BEGIN LIST\n"),
        (LV, b"BEGIN LIST VAR u\nBEGIN LIST VAR u\n"),
        (LV, b"BEGIN LIST VAR u\nERR UNKNOWN-UPS\n"),
        (LV, b"BEGIN LIST VAR u\nEND LIST VAR x\n"),
        (LV, b"BEGIN LIST VAR u\nEND LIST VAR\n"),
        (LV, b"BEGIN LIST VAR u\nVAR u a\nEND LIST VAR u\n"),
        (LV, b'BEGIN LIST VAR u\nRW u a "1"\nEND LIST VAR u\n'),
        (LV, b'BEGIN LIST VAR u\nVAR x a "1"\nEND LIST VAR u\n'),
        (("LIST", "VAR"), b"BEGIN LIST VAR\nEND LIST VAR\n"),
        (("LIST", "FOO", "x"), b"BEGIN LIST BAR\n"),
        (("LIST", "FOO", "x"), b"BEGIN LIST FOO x\nERR X\n"),
        (("LIST", "FOO", "x"), b"BEGIN LIST FOO x\n\n"),
        (("VER",), b"one\ntwo\n"),
    ],
)
def test_malformed_replies(request_words, data):
    assert_remote_error([request_words], data)


def test_a_list_must_end_before_the_next_reply():
    assert_remote_error([LV, ("VER",)], b"BEGIN LIST VAR u\nVER 1\nBEGIN LIST VAR u\n")
    assert_remote_error([LV, LV], b"BEGIN LIST VAR u\nBEGIN LIST VAR u\nEND LIST VAR u\n")


def test_line_limit():
    assert one(("VER",), b"x" * 10 + b"\n", max_line=10).words == ("x" * 10,)
    assert_remote_error([("VER",)], b"x" * 11 + b"\n", max_line=10)
    assert_remote_error([("VER",)], b"x" * 11, max_line=10)
    assert_remote_error([("VER",)], b'"' + b"x" * 70_000)  # default: 64 KiB


def test_list_item_limit():
    body = b'VAR u a "1"\n' * 3
    reply = one(LV, b"BEGIN LIST VAR u\n" + body + b"END LIST VAR u\n", max_list_items=3)
    assert len(reply.items) == 3
    assert_remote_error([LV], b"BEGIN LIST VAR u\n" + body * 2, max_list_items=5)


@pytest.mark.parametrize(
    "data",
    [b"", b"OK", b"BEGIN LIST VAR u\n", b'BEGIN LIST VAR u\nVAR u a "1"\n'],
    ids=["before-reply", "mid-line", "mid-list", "mid-list-line"],
)
def test_close_with_a_reply_missing(data):
    assert_remote_error([LV], data, close=True)


def test_data_nobody_asked_for():
    assert_remote_error([("VER",)], b"a\nb\n")
    client = ClientConnection()
    client.receive_data(b"hello")
    with pytest.raises(RemoteProtocolError, match="nobody asked"):
        client.next_reply()
    assert client.state is ClientState.ERROR


# --------------------------------------------------------------------------------------------
# API misuse: LocalProtocolError, state unchanged


def test_next_reply_with_nothing_outstanding():
    client = ClientConnection()
    with pytest.raises(LocalProtocolError):
        client.next_reply()
    assert client.state is ClientState.OPEN
    client.receive_data(b"")
    assert client.next_reply() is ClientSignal.CLOSED
    assert client.state is ClientState.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send_words("VER")
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"late")


def test_nothing_is_sent_after_logout():
    client = ClientConnection()
    client.send_words("VER")
    client.send_words("logout")
    with pytest.raises(LocalProtocolError, match="logout"):
        client.send_words("VER")
    replies = feed(client, b"Network UPS Tools\nOK Goodbye\n")
    assert [r.words for r in replies] == [("Network", "UPS", "Tools"), ("OK", "Goodbye")]
    assert client.state is ClientState.CLOSED
    assert client.next_reply() is ClientSignal.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send_words("VER")
    client.receive_data(b"")
    assert client.next_reply() is ClientSignal.CLOSED


def test_a_refused_logout_keeps_the_session():
    client = ClientConnection()
    client.send_words("LOGOUT", "now")
    assert feed(client, b"ERR INVALID-ARGUMENT\n")[0].error is ErrCode.INVALID_ARGUMENT
    assert client.state is ClientState.OPEN
    client.send_words("VER")


def test_data_after_goodbye_is_the_servers_fault():
    client = ClientConnection()
    client.send_words("LOGOUT")
    client.receive_data(b"OK Goodbye\nmore\n")
    assert client.next_reply().words == ("OK", "Goodbye")
    with pytest.raises(RemoteProtocolError):
        client.next_reply()


# --------------------------------------------------------------------------------------------
# STARTTLS


def test_starttls_pauses_until_tls_started():
    client = ClientConnection()
    client.send_words("VER")
    client.send_words("STARTTLS")
    with pytest.raises(LocalProtocolError, match="STARTTLS"):
        client.send_words("VER")
    with pytest.raises(LocalProtocolError):
        client.tls_started()
    client.receive_data(b"v\nOK STARTTLS\n\x16\x03")
    assert client.next_reply().words == ("v",)
    assert not client.starttls_pending
    assert client.next_reply().words == ("OK", "STARTTLS")
    assert client.starttls_pending
    assert client.state is ClientState.PAUSED
    assert client.next_reply() is ClientSignal.PAUSED
    assert client.trailing_data == b"\x16\x03"  # not empty: the server misbehaved
    with pytest.raises(LocalProtocolError):
        client.send_words("VER")
    client.tls_started()
    assert (client.tls, client.state, client.trailing_data) == (True, ClientState.OPEN, b"")
    client.send_words("STARTTLS")
    assert feed(client, b"ERR ALREADY-SSL-MODE\n")[0].error is ErrCode.ALREADY_SSL_MODE
    assert client.state is ClientState.OPEN


def test_starttls_refused_keeps_plaintext():
    client = ClientConnection()
    client.send_words("STARTTLS")
    assert feed(client, b"ERR FEATURE-NOT-CONFIGURED\n")[0].error is ErrCode.FEATURE_NOT_CONFIGURED
    assert not client.starttls_pending
    client.send_words("VER")


def test_starttls_pair_with_server_connection():
    client, server = ClientConnection(), ServerConnection()
    server.receive_data(client.send_words("STARTTLS"))
    assert server.next_event() == ev.StartTLS()
    client.receive_data(server.send(rp.ok("STARTTLS")))
    assert client.next_reply().words == ("OK", "STARTTLS")
    assert (client.next_reply(), server.next_event()) == (ClientSignal.PAUSED, Signal.PAUSED)
    assert client.trailing_data == server.trailing_data == b""
    client.tls_started()
    server.tls_started()
    server.receive_data(client.send_words("STARTTLS"))
    refused = server.next_event()
    assert refused == ev.Rejected(error=ErrCode.ALREADY_SSL_MODE)
    client.receive_data(server.send(rp.err(refused.error)))
    assert client.next_reply().error is ErrCode.ALREADY_SSL_MODE
    assert client.state is ClientState.OPEN


# --------------------------------------------------------------------------------------------
# Fuzz: any server bytes give replies or RemoteProtocolError, never anything else

FUZZ_REQUESTS = [
    GV,
    LV,
    ("LIST", "UPS"),
    ("LIST", "FOO", "x"),
    ("VER",),
    ("USERNAME", "x"),
    ("GET", "TRACKING"),
    ("STARTTLS",),
    ("LOGOUT",),
]
FRAGMENTS = [
    b"OK\n",
    b"OK STARTTLS\n",
    b"OK Goodbye\n",
    b"ERR X\n",
    b"ERR\n",
    b"ON\n",
    b'VAR u v "1"\n',
    b"BEGIN LIST VAR u\n",
    b'VAR u a "1"\n',
    b"END LIST VAR u\n",
    b"BEGIN LIST UPS\n",
    b'UPS u "d"\n',
    b"END LIST UPS\n",
    b"BEGIN LIST FOO x\n",
    b"END LIST FOO x\n",
    b'"',
    b"#",
    b"\\",
    b"=",
    b" ",
    b"\n",
    b"\x00",
    b"\xff",
    b"x" * 70,
]


def drain(client: ClientConnection, eof: bool) -> None:
    while client.pending or eof or client.trailing_data or client.state is not ClientState.OPEN:
        reply = client.next_reply()
        if reply is ClientSignal.PAUSED:
            client.tls_started()
        elif isinstance(reply, ClientSignal):
            return


@settings(max_examples=300)
@given(
    requests=st.lists(st.sampled_from(FUZZ_REQUESTS), max_size=6),
    data=st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(FRAGMENTS)).map(b"".join)),
    split=st.sampled_from([whole, bytewise, random_chunks]),
    close=st.booleans(),
)
def test_fuzz_any_server_bytes(requests, data, split, close):
    client = ClientConnection(max_line=64)
    for request in requests:
        try:
            client.send_words(*request)
        except LocalProtocolError:  # nothing may follow STARTTLS or LOGOUT
            break
    try:
        for chunk in split(data):
            client.receive_data(chunk)
            drain(client, eof=False)
        if close:
            client.receive_data(b"")
            drain(client, eof=True)
    except RemoteProtocolError:
        assert client.state is ClientState.ERROR


# --------------------------------------------------------------------------------------------
# Round trips through ServerConnection + ServerCore

FAKE_VARS = [
    Variable(name="ups.status", value="OL", rw=True, string=True, aux=32),
    Variable(name="input.sensitivity", value="normal", rw=True, enums=("low", "normal", "high")),
    Variable(name="battery.charge.low", value="20", rw=True, ranges=((10, 50), (60, 80))),
    Variable(name="ups.ro.string", value="ro", string=True, aux=10),
    Variable(name="ups.id", value="id1", rw=True, string=True, aux=8),
    Variable(name="ups.rw.noaux", value="x", rw=True, string=True, aux=0),
    Variable(name="Mixed.Case.Var", value='q"uo#te\\ = x'),
    Variable(name="driver.name", value="fake"),
]
USERS = {
    "admin": SimpleUser(
        "adminpass", frozenset({"set", "fsd", "login", "master"}), frozenset({"all"})
    ),
    "cmdonly": SimpleUser("cmdpass", frozenset(), frozenset({"load.off"})),
    "mon": SimpleUser("p w#=\\", frozenset({"login"})),
}


@pytest.fixture
async def world(nursery):
    store = StateStore()
    store.add("fake", 'A "fake" UPS #1')
    store.add("nodriver")
    store.add("nocmds")
    store.add("stale")
    driver = ScriptedDriver(FAKE_VARS, ["load.off", "beeper.disable", "Z.last", "a.first"])

    async def attach(name, drv, *, task_status=trio.TASK_STATUS_IGNORED):
        with store.get(name).connect() as link:
            await drv.run(link, task_status=task_status)

    await nursery.start(attach, "fake", driver)
    await nursery.start(attach, "nocmds", ScriptedDriver([Variable(name="ups.status", value="OB")]))
    await nursery.start(attach, "stale", ScriptedDriver([], stale=True))
    core = ServerCore(store, USERS, NoDescriptions(), ServerSettings(maxage=15))
    return core, driver


class Pair:
    """A ClientConnection talking to a ServerConnection + ServerCore session."""

    def __init__(self, core: ServerCore, chunker: Chunker = whole) -> None:
        self.core = core
        self.chunker = chunker
        self.client = ClientConnection()
        self.session: Session = new_session()

    def ask(self, *requests: tuple[str, ...]) -> list[ClientReply]:
        data = b"".join(self.client.send_words(*request) for request in requests)
        answer = exchange(self.core, self.session, data)
        replies = feed(self.client, answer, self.chunker)
        assert not self.client.pending
        assert b"".join(reply.raw for reply in replies) == answer
        assert [reply.request for reply in replies] == list(requests)
        return replies

    def ask1(self, *request: str) -> ClientReply:
        [reply] = self.ask(request)
        return reply


async def test_single_line_replies(world, chunker):
    pair = Pair(world[0], chunker)
    checks: list[tuple[tuple[str, ...], Callable[[ClientReply], object], object]] = [
        (("VER",), lambda r: r.words[:4], ("Network", "UPS", "Tools", "upsd")),
        (("NETVER",), lambda r: r.words, ("1.3",)),
        (("PROTVER",), lambda r: r.words, ("1.3",)),
        (("HELP",), lambda r: r.words[0], "Commands:"),
        (("GET", "VAR", "fake", "ups.status"), ClientReply.value, "OL"),
        (("get", "var", "FAKE", "UPS.STATUS"), ClientReply.value, "OL"),
        (("GET", "VAR", "fake", "mixed.case.var"), ClientReply.value, 'q"uo#te\\ = x'),
        (("GET", "VAR", "nope", "server.version"), ClientReply.value, "2.8.0"),
        (("GET", "VAR", "x", "SERVER.INFO"), ClientReply.value, rp.VER_TEXT),
        (("GET", "TYPE", "fake", "input.sensitivity"), ClientReply.args, ("RW", "ENUM", "NUMBER")),
        (("GET", "TYPE", "fake", "ups.ro.string"), ClientReply.args, ("STRING:10",)),
        (("GET", "DESC", "fake", "ups.status"), ClientReply.value, "UPS status"),
        (("GET", "DESC", "fake", "nope"), ClientReply.value, "Description unavailable"),
        (
            ("GET", "CMDDESC", "fake", "load.off"),
            ClientReply.value,
            "Turn off the load immediately",
        ),
        (("GET", "UPSDESC", "fake"), ClientReply.value, 'A "fake" UPS #1'),
        (("GET", "UPSDESC", "nodriver"), ClientReply.value, "Unavailable"),
        (("GET", "NUMLOGINS", "fake"), ClientReply.value, "0"),
        (("GET", "NUMATTACH", "fake"), ClientReply.value, "0"),
        (("GET", "TRACKING"), ClientReply.value, "OFF"),
    ]
    replies = pair.ask(*(request for request, _, _ in checks))
    for reply, (_, get, expected) in zip(replies, checks, strict=True):
        assert reply.ok
        assert get(reply) == expected


async def test_every_list_kind(world, chunker):
    core = world[0]
    pair = Pair(core, chunker)
    logged = Pair(core)
    assert [
        r.ok for r in logged.ask(("USERNAME", "mon"), ("PASSWORD", "p w#=\\"), ("LOGIN", "fake"))
    ] == [True] * 3
    ups, var, rw, cmd, enum, rng, client, *empties = pair.ask(
        ("LIST", "UPS"),
        ("list", "var", "Fake"),
        ("LIST", "RW", "fake"),
        ("LIST", "CMD", "fake"),
        ("LIST", "ENUM", "fake", "input.sensitivity"),
        ("LIST", "RANGE", "fake", "battery.charge.low"),
        ("LIST", "CLIENT", "FAKE"),
        ("LIST", "ENUM", "fake", "ups.id"),
        ("LIST", "RANGE", "fake", "ups.id"),
        ("LIST", "CMD", "nocmds"),
        ("LIST", "CLIENT", "nodriver"),
    )
    assert ups.as_dict() == {
        "fake": 'A "fake" UPS #1',
        "nodriver": "Description unavailable",
        "nocmds": "Description unavailable",
        "stale": "Description unavailable",
    }
    assert var.words == ("BEGIN", "LIST", "VAR", "Fake")
    values = var.as_dict()
    assert values["Mixed.Case.Var"] == 'q"uo#te\\ = x'
    assert values["ups.status"] == "OL"
    assert list(values) == sorted(values, key=str.lower)
    assert set(rw.as_dict()) == {v.name for v in FAKE_VARS if v.rw}
    assert cmd.as_list() == ["a.first", "beeper.disable", "load.off", "Z.last"]
    assert enum.as_list() == ["low", "normal", "high"]
    assert rng.rows() == (("10", "50"), ("60", "80"))
    assert client.as_list() == ["127.0.0.1"]
    for empty in empties:
        assert (empty.ok, empty.is_list, empty.items, empty.rows()) == (True, True, (), ())


async def test_err_tokens_from_the_core(world, chunker):
    core = world[0]
    cases: list[tuple[list[tuple[str, ...]], tuple[str, ...], ErrCode]] = [
        ([], ("REQ",), ErrCode.UNKNOWN_COMMAND),
        ([], ("VER", "x"), ErrCode.INVALID_ARGUMENT),
        ([], ("LIST", "VAR", "nope"), ErrCode.UNKNOWN_UPS),
        ([], ("GET", "VAR", "fake", "nope"), ErrCode.VAR_NOT_SUPPORTED),
        ([], ("LIST", "ENUM", "fake", "nope"), ErrCode.VAR_NOT_SUPPORTED),
        ([], ("GET", "VAR", "nodriver", "ups.status"), ErrCode.DRIVER_NOT_CONNECTED),
        ([], ("LIST", "VAR", "stale"), ErrCode.DATA_STALE),
        ([], ("LOGIN", "fake"), ErrCode.USERNAME_REQUIRED),
        ([("USERNAME", "mon")], ("LOGIN", "fake"), ErrCode.PASSWORD_REQUIRED),
        ([("USERNAME", "mon")], ("USERNAME", "x"), ErrCode.ALREADY_SET_USERNAME),
        ([("PASSWORD", "x")], ("PASSWORD", "x"), ErrCode.ALREADY_SET_PASSWORD),
        ([("USERNAME", "mon"), ("PASSWORD", "bad")], ("LOGIN", "fake"), ErrCode.ACCESS_DENIED),
        (
            [("USERNAME", "mon"), ("PASSWORD", "p w#=\\"), ("LOGIN", "fake")],
            ("LOGIN", "fake"),
            ErrCode.ALREADY_LOGGED_IN,
        ),
        (
            [("USERNAME", "mon"), ("PASSWORD", "p w#=\\"), ("ATTACH", "fake")],
            ("ATTACH", "fake"),
            ErrCode.ALREADY_ATTACHED,
        ),
        (
            [("USERNAME", "cmdonly"), ("PASSWORD", "cmdpass")],
            ("INSTCMD", "fake", "nope.cmd"),
            ErrCode.CMD_NOT_SUPPORTED,
        ),
        ([], ("STARTTLS",), ErrCode.FEATURE_NOT_CONFIGURED),
        ([], ("GET", "TRACKING", "x"), ErrCode.FEATURE_NOT_CONFIGURED),
    ]
    admin = [("USERNAME", "admin"), ("PASSWORD", "adminpass")]
    for var, value, code in [
        ("ups.ro.string", "x", ErrCode.READONLY),
        ("ups.rw.noaux", "x", ErrCode.SET_FAILED),
        ("ups.id", "too long value", ErrCode.TOO_LONG),
        ("input.sensitivity", "HIGH", ErrCode.INVALID_VALUE),
    ]:
        cases.append((admin, ("SET", "VAR", "fake", var, value), code))
    cases.append(([*admin, ("SET", "TRACKING", "ON")], ("GET", "TRACKING", "x"), ErrCode.UNKNOWN))
    for setup, request, code in cases:
        pair = Pair(core, chunker)
        assert all(reply.ok for reply in pair.ask(*setup))
        reply = pair.ask1(*request)
        assert (reply.error, reply.error_token) == (code, code.value), request


async def test_set_tracking_and_instcmd(world, chunker):
    core, driver = world
    pair = Pair(core, chunker)
    on, set_, cmd = pair.ask(
        ("USERNAME", "admin"),
        ("PASSWORD", "adminpass"),
        ("SET", "TRACKING", "ON"),
        ("SET", "VAR", "fake", "ups.id", 'a "b#'),
        ("INSTCMD", "fake", "load.off", "7 x"),
    )[2:]
    assert (on.words, on.tracking_id) == (("OK",), None)
    ids = [set_.tracking_id, cmd.tracking_id]
    assert all(tid is not None and len(tid) == 36 for tid in ids)
    assert [r.value() for r in pair.ask(*(("GET", "TRACKING", tid) for tid in ids))] == [
        "PENDING",
        "PENDING",
    ]
    await trio.testing.wait_all_tasks_blocked()
    assert (driver.received[0].value, driver.received[1].value) == ('a "b#', "7 x")
    assert pair.ask1("GET", "VAR", "fake", "ups.id").value() == 'a "b#'
    assert [r.value() for r in pair.ask(*(("GET", "TRACKING", tid.lower()) for tid in ids))] == [
        "SUCCESS",
        "SUCCESS",
    ]
    driver.answer = CommandStatus.FAILED
    tid = pair.ask1("INSTCMD", "fake", "load.off").tracking_id
    await trio.testing.wait_all_tasks_blocked()
    assert pair.ask1("GET", "TRACKING", tid).error is ErrCode.FAILED
    assert pair.ask1("SET", "TRACKING", "OFF").ok
    assert pair.ask1("INSTCMD", "fake", "load.off").words == ("OK",)


async def test_logout_then_close(world, chunker):
    pair = Pair(world[0], chunker)
    _, bye = pair.ask(("VER",), ("LOGOUT",))
    assert (bye.words, bye.ok) == (("OK", "Goodbye"), True)
    assert pair.client.state is ClientState.CLOSED
    assert pair.client.next_reply() is ClientSignal.CLOSED
    assert pair.session.conn.next_event() is Signal.CLOSE
    pair.client.receive_data(b"")
    assert pair.client.next_reply() is ClientSignal.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.client.send_words("VER")


async def test_starttls_through_the_core(world):
    core = world[0]
    core.settings = ServerSettings(tls_available=True)
    pair = Pair(core)
    assert pair.ask1("STARTTLS").words == ("OK", "STARTTLS")
    assert pair.client.next_reply() is ClientSignal.PAUSED
    assert pair.session.conn.next_event() is Signal.PAUSED
    pair.client.tls_started()
    pair.session.conn.tls_started()
    assert pair.ask1("STARTTLS").error is ErrCode.ALREADY_SSL_MODE
    assert pair.ask1("GET", "VAR", "fake", "ups.status").value() == "OL"


async def test_pipelining_many_requests(world, chunker):
    core = world[0]
    rng = random.Random(7)
    pool = [
        ("GET", "VAR", "fake", "ups.status"),
        ("GET", "VAR", "fake", "nope"),
        ("LIST", "VAR", "fake"),
        ("LIST", "CMD", "fake"),
        ("LIST", "ENUM", "fake", "ups.id"),
        ("LIST", "VAR", "nope"),
        ("GET", "TYPE", "fake", "battery.charge.low"),
        ("GET", "DESC", "fake", "ups.status"),
        ("VER",),
        ("NOPE", "x"),
        ("GET", "TRACKING"),
    ]
    requests = [rng.choice(pool) for _ in range(400)]
    expected = {request: Pair(core).ask1(*request) for request in pool}
    replies = Pair(core, chunker).ask(*requests)
    assert replies == [expected[request] for request in requests]


# --------------------------------------------------------------------------------------------
# The real upsd (Debian's NUT 2.8.0), over a plain socket


class SocketClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = ClientConnection()

    def close(self) -> None:
        self.sock.close()

    def ask(self, *requests: tuple[str, ...]) -> list[ClientReply]:
        self.sock.sendall(b"".join(self.conn.send_words(*request) for request in requests))
        replies: list[ClientReply] = []
        while len(replies) < len(requests):
            reply = self.conn.next_reply()
            if reply is ClientSignal.NEED_DATA:
                self.conn.receive_data(self.sock.recv(4096))
            else:
                assert isinstance(reply, ClientReply)
                replies.append(reply)
        return replies

    def ask1(self, *request: str) -> ClientReply:
        [reply] = self.ask(request)
        return reply


@pytest.mark.realnut
def test_against_the_real_upsd(real_nut: RealNutFactory, tmp_path):
    dev = write_dev_file(
        tmp_path / "u.dev",
        {"battery.charge": "87", "ups.status": "OL CHRG", "ups.id": 'say "hi" #1'},
    )
    nut = real_nut({"dummy": {"port": str(dev), "desc": 'Rack "A" #2'}})
    mon = SocketClient(nut.port)
    try:
        assert mon.ask1("STARTTLS").error is ErrCode.FEATURE_NOT_CONFIGURED
        assert [
            r.words for r in mon.ask(("USERNAME", MONITOR_USER), ("PASSWORD", MONITOR_PASSWORD))
        ] == [("OK",), ("OK",)]
        assert mon.ask1("LOGIN", "dummy").words == ("OK",)
        status, upper, desc, numlogins = mon.ask(
            ("GET", "VAR", "dummy", "ups.status"),
            ("get", "var", "DUMMY", "UPS.STATUS"),
            ("GET", "UPSDESC", "dummy"),
            ("GET", "NUMLOGINS", "dummy"),
        )
        assert status.value() == upper.value() == "OL CHRG"
        assert upper.words[:3] == ("VAR", "DUMMY", "UPS.STATUS")
        assert desc.value() == 'Rack "A" #2'
        assert numlogins.value() == "1"
        variables = mon.ask1("LIST", "VAR", "dummy").as_dict()
        assert variables["battery.charge"] == "87"
        assert variables["ups.id"] == 'say "hi" #1'
        assert variables["driver.name"] == "dummy-ups"
        assert mon.ask1("LIST", "CMD", "dummy").as_list() == ["load.off"]
        assert mon.ask1("LIST", "UPS").as_dict() == {"dummy": 'Rack "A" #2'}
        assert mon.ask1("LIST", "CLIENT", "dummy").as_list() == ["127.0.0.1"]
        assert mon.ask1("LIST", "ENUM", "dummy", "ups.status").items == ()
        errors = mon.ask(
            ("GET", "VAR", "dummy", "nope"),
            ("GET", "VAR", "nope", "ups.status"),
            ("LIST", "VAR", "nope"),
            ("LOGIN", "dummy"),
            ("SET", "VAR", "dummy", "ups.id", "x"),
            ("NOPE",),
            ("GET", "TYPE", "dummy", "ups.status"),
        )
        assert [r.error for r in errors[:6]] == [
            ErrCode.VAR_NOT_SUPPORTED,
            ErrCode.UNKNOWN_UPS,
            ErrCode.UNKNOWN_UPS,
            ErrCode.ALREADY_LOGGED_IN,
            ErrCode.ACCESS_DENIED,
            ErrCode.UNKNOWN_COMMAND,
        ]
        assert errors[6].args() == ("RW", "STRING:32")

        admin = SocketClient(nut.port)
        try:
            assert all(
                r.ok for r in admin.ask(("USERNAME", ADMIN_USER), ("PASSWORD", ADMIN_PASSWORD))
            )
            # Quoted on the way in; dummy-ups publishes it back (unescaped, so no " or #).
            assert admin.ask1("SET", "VAR", "dummy", "ups.id", "a b=c ").words == ("OK",)
            deadline = time.monotonic() + 5
            while mon.ask1("GET", "VAR", "dummy", "ups.id").value() != "a b=c ":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert admin.ask1("GET", "NUMLOGINS", "dummy").value() == "1"
        finally:
            admin.close()

        assert mon.ask1("LOGOUT").words == ("OK", "Goodbye")
        assert mon.conn.next_reply() is ClientSignal.CLOSED
        assert mon.sock.recv(4096) == b""
        mon.conn.receive_data(b"")
        assert mon.conn.next_reply() is ClientSignal.CLOSED
    finally:
        mon.close()
