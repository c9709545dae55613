"""The one grammar: both directions agree, and send_failed() puts both connections in ERROR."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuttrio.protocol import (
    ClientConnection,
    ClientState,
    ErrCode,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ServerConnection,
    ServerState,
    Signal,
    Tokenizer,
    grammar,
)
from nuttrio.protocol import events as ev
from nuttrio.protocol import replies as rp
from nuttrio.protocol.tokenizer import Line

WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
ANY = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=20)


def _events() -> st.SearchStrategy[ev.Request]:
    """Every event the grammar can send, with any sendable arguments."""
    choices = []
    for command in grammar.COMMANDS:
        fields = {name: ANY for name in command.params}
        fields.update({name: st.none() | ANY for name in command.optional})
        fixed = {name: st.just(value) for name, value in command.fixed.items()}
        choices.append(st.builds(command.event, **fields, **fixed))
    return st.one_of(choices)


def test_errors_say_whose_fault():
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert not issubclass(RemoteProtocolError, LocalProtocolError)


@given(_events())
def test_every_event_round_trips_through_the_server_parser(event):
    tok = Tokenizer()
    tok.feed(event.to_bytes())
    line = tok.next_line()
    assert isinstance(line, Line)
    assert grammar.parse(line.words) == event
    assert grammar.parse(event.words()) == event


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ev.GetVar(ups="u", var="ups.status"), b"GET VAR u ups.status\n"),
        (ev.Login(ups="u", rfc=True), b"ATTACH u\n"),
        (ev.Logout(), b"LOGOUT\n"),
        (ev.Primary(ups="u", word="MASTER"), b"MASTER u\n"),
        (ev.GetNumLogins(ups="u", rfc=True), b"GET NUMATTACH u\n"),
        (ev.SetTracking(on=True), b"SET TRACKING ON\n"),
        (ev.SetVar(ups="u", var="v", value="a b#"), b'SET VAR u v "a b\\#"\n'),
        (ev.InstCmd(ups="u", cmd="load.off"), b"INSTCMD u load.off\n"),
        (ev.GetTracking(id="x-1"), b"GET TRACKING x-1\n"),
        (ev.ListRange(ups="u", var="v"), b"LIST RANGE u v\n"),
    ],
)
def test_events_serialize_themselves(event, line):
    assert event.to_bytes() == line
    client = ClientConnection()
    assert client.send(event) == line
    assert client.pending == (event.words(),)


def test_rejected_is_not_a_request():
    with pytest.raises(LocalProtocolError):
        ClientConnection().send(ev.Rejected(error=ErrCode.UNKNOWN))


@pytest.mark.parametrize(
    ("words", "error"),
    [
        ((), ErrCode.UNKNOWN_COMMAND),
        (("NOPE",), ErrCode.UNKNOWN_COMMAND),
        (("GET",), ErrCode.INVALID_ARGUMENT),
        (("GET", "NOPE", "u", "v"), ErrCode.INVALID_ARGUMENT),
        (("GET", "VAR", "u"), ErrCode.INVALID_ARGUMENT),
        (("SET", "TRACKING"), ErrCode.INVALID_ARGUMENT),
        (("SET", "TRACKING", "MAYBE"), ErrCode.INVALID_ARGUMENT),
        (("VER", "x"), ErrCode.INVALID_ARGUMENT),
        (("USERNAME", "a", "b"), ErrCode.INVALID_ARGUMENT),
    ],
)
def test_grammar_refusals(words, error):
    assert grammar.parse(words) == ev.Rejected(error=error)


def test_upsd_argument_quirks():
    assert grammar.parse(("get", "var", "u", "v", "extra")) == ev.GetVar(ups="u", var="v")
    assert grammar.parse(("INSTCMD", "u", "c", "p")) == ev.InstCmd(ups="u", cmd="c", param="p")
    assert grammar.parse(("INSTCMD", "u", "c", "p", "q")) == ev.InstCmd(ups="u", cmd="c")
    assert grammar.parse(("set", "tracking", "off", "x")) == ev.SetTracking(on=False)
    assert {
        "LOGIN",
        "ATTACH",
        "PRIMARY",
        "MASTER",
        "FSD",
        "SET",
        "INSTCMD",
    } == grammar.LOGIN_REQUIRED


def test_server_send_failed_is_the_error_state():
    server = ServerConnection()
    server.receive_data(b"VER\nVER\n")
    assert isinstance(server.next_event(), ev.Ver)
    server.send(rp.line("x"))
    assert server.state is ServerState.OPEN
    server.send_failed()
    assert server.state is ServerState.ERROR
    with pytest.raises(LocalProtocolError):
        server.next_event()
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"VER\n")
    with pytest.raises(LocalProtocolError):
        server.send(rp.line("x"))


def test_client_send_failed_is_the_error_state():
    client = ClientConnection()
    client.send(ev.Ver())
    client.send_failed()
    assert client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        client.next_reply()
    with pytest.raises(LocalProtocolError):
        client.send(ev.Ver())


def test_server_states():
    server = ServerConnection()
    server.receive_data(b"LOGOUT\n")
    assert isinstance(server.next_event(), ev.Logout)
    server.send(rp.ok("Goodbye"))
    assert (server.state, server.logged_out) == (ServerState.LOGGED_OUT, True)
    server.receive_data(b"")
    assert server.state is ServerState.PEER_CLOSED
    assert server.next_event() is Signal.CLOSE


def test_the_parse_memo_is_bounded():
    for i in range(3000):
        assert grammar.parse(("GET", "VAR", "u", f"v{i}")) == ev.GetVar(ups="u", var=f"v{i}")
    assert len(grammar._MEMO) <= grammar._MEMO_ENTRIES
    long_value = ("SET", "VAR", "u", "v", "x" * 500)
    grammar.parse(long_value)
    assert long_value not in grammar._MEMO  # long requests are never kept
