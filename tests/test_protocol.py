"""The sans-IO protocol: tokenizer rules, grammar, session state, quoting (no Trio, no I/O)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuttrio.protocol import (
    ErrCode,
    Line,
    LineError,
    LineTooLong,
    LocalProtocolError,
    ServerConnection,
    Signal,
    Tokenizer,
    quote,
    split_text,
)
from nuttrio.protocol import (
    events as ev,
)
from nuttrio.protocol import (
    replies as rp,
)


def words(data: bytes) -> list[tuple[str, ...]]:
    """Split ``data`` three ways (whole, byte by byte, whole plus a trailing partial line)."""
    results = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data + b"VER"]):
        tok = Tokenizer()
        for chunk in chunks:
            tok.feed(chunk)
        out = []
        while (item := tok.next_line()) is not None:
            assert isinstance(item, Line)
            out.append(item.words)
        results.append(out)
    assert results[0] == results[1] == results[2]
    return results[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"VER\n", [("VER",)]),
        (b"VER\r\n", [("VER",)]),
        (b"  GET\tVAR  ups  ups.status \n", [("GET", "VAR", "ups", "ups.status")]),
        (b'GET VAR "dummy"ups.status\n', [("GET", "VAR", "dummy", "ups.status")]),
        (b'GET VAR dum"my x\n', [("GET", "VAR", 'dum"my', "x")]),
        (b'SET VAR u v ""\n', [("SET", "VAR", "u", "v", "")]),
        (b"a\\ b c\n", [("a b", "c")]),
        (b'"a\\"b" \\\\\n', [('a"b', "\\")]),
        (b"VER # comment\n", [("VER",)]),
        (b"a=b\n", [("a", "=", "b")]),
        (b"=x\n", [("=", "x")]),
        (b"VER\\\nX\n", [("VERX",)]),
        (b'"two\nlines"\n', [("twolines",)]),
        (b"\x01 VER\n", [("", "VER")]),
        (b"V\x00ER\n", [("VER",)]),
        (b"V\xe9ER\n", [("VER",)]),
        (b"V\x7fER\n", [("V\x7fER",)]),
        (b"\n", [()]),
        (b"   \n", [()]),
        (b"# only\n", [()]),
        (b"VER\nNETVER\n", [("VER",), ("NETVER",)]),
        (b'"\\#"\n', [("#",)]),
    ],
)
def test_tokenizer_rules(data, expected):
    assert words(data) == expected


def test_word_and_argument_limits():
    long = b"x" * 600
    assert words(long + b"\n") == [("x" * 512,)]
    assert words(b'"' + long + b'"\n') == [("x" * 512,)]
    many = b" ".join(b"w%d" % i for i in range(40)) + b"\n"
    assert words(many) == [tuple(f"w{i}" for i in range(32))]


def test_hash_inside_quotes_is_a_line_error_and_the_next_line_parses():
    tok = Tokenizer()
    tok.feed(b'SET VAR u v "a#b"\nVER\n')
    first = tok.next_line()
    assert isinstance(first, LineError)
    assert first.lineno == 1
    assert tok.next_line() == Line(("VER",), 2)


def test_line_limit_stops_the_tokenizer():
    tok = Tokenizer(max_line=10)
    tok.feed(b"GET VAR " + b"x" * 20)
    assert isinstance(tok.next_line(), LineTooLong)
    assert tok.next_line() is None
    slow = Tokenizer(max_line=10)
    slow.feed(b'"' + b"y" * 30 + b'"\n')
    assert isinstance(slow.next_line(), LineTooLong)


def test_split_text_keeps_physical_line_numbers_and_final_line():
    text = b'# c\n\n[ups]\n  driver = dummy-ups\n  desc = "two\\\nparts"\n  port = x'
    lines = split_text(text)
    assert [(item.words, item.lineno) for item in lines if isinstance(item, Line)] == [
        (("[ups]",), 3),
        (("driver", "=", "dummy-ups"), 4),
        (("desc", "=", "twoparts"), 5),
        (("port", "=", "x"), 7),
    ]


def test_split_text_drops_a_lone_final_word_without_newline_as_parseconf_does():
    assert split_text(b"VER") == []
    assert [i.words for i in split_text(b"a b") if isinstance(i, Line)] == [("a", "b")]


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_any_bytes_any_split_gives_lines_or_errors_never_an_exception(data, cuts):
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    tok = Tokenizer(max_line=128)
    conn = ServerConnection(max_line=128)
    for a, b in itertools.pairwise(points):
        tok.feed(data[a:b])
        conn.receive_data(data[a:b])
        while (item := tok.next_line()) is not None:
            assert isinstance(item, Line | LineError | LineTooLong)
        while not isinstance(event := conn.next_event(), Signal):
            assert isinstance(event, ev.Request)
            conn.send(rp.err(ErrCode.UNKNOWN_COMMAND))
    conn.receive_data(b"")


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=100))
def test_quote_round_trips_through_the_tokenizer(text):
    tok = Tokenizer()
    tok.feed(f"VAR u v {quote(text)}\n".encode())
    assert tok.next_line() == Line(("VAR", "u", "v", text), 1)


# -- ServerConnection ----------------------------------------------------------------------------


def request(conn: ServerConnection, data: bytes) -> ev.Request:
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, ev.Request), event
    return event


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"VER\n", ev.Ver()),
        (b"ver x\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"PROTVER\n", ev.NetVer()),
        (b"help\n", ev.Help()),
        (b"STARTTLS ignored args\n", ev.StartTLS()),
        (b"\n", ev.Rejected(error=ErrCode.UNKNOWN_COMMAND)),
        (b"NUMLOGINS u\n", ev.Rejected(error=ErrCode.UNKNOWN_COMMAND)),
        (b"GET\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"GET TRACKING\n", ev.GetTracking()),
        (b"get tracking abc extra\n", ev.GetTracking(id="abc")),
        (b"GET VAR u\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"GET var U Ups.Status extra\n", ev.GetVar(ups="U", var="Ups.Status")),
        (b"GET NUMATTACH u\n", ev.GetNumLogins(ups="u", rfc=True)),
        (b"GET UPSDESC u\n", ev.GetUpsDesc(ups="u")),
        (b"GET BOGUS u v\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"LIST UPS\n", ev.ListUps()),
        (b"LIST CLIENTS u\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"LIST ENUM u\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"LIST range u v\n", ev.ListRange(ups="u", var="v")),
        (b"LOGIN u\n", ev.Rejected(error=ErrCode.USERNAME_REQUIRED)),
        (b"SET\n", ev.Rejected(error=ErrCode.USERNAME_REQUIRED)),
        (b"LOGOUT\n", ev.Logout()),
        (b"DETACH\n", ev.Logout(rfc=True)),
        (b"LOGOUT x\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
    ],
)
def test_grammar(line, expected):
    assert request(ServerConnection(), line) == expected


def authenticated() -> ServerConnection:
    conn = ServerConnection()
    for data in (b"USERNAME admin\n", b"PASSWORD pw\n"):
        request(conn, data)
        conn.send(rp.ok())
    return conn


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"LOGIN\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"ATTACH u\n", ev.Login(ups="u", rfc=True)),
        (b"MASTER u\n", ev.Primary(ups="u", word="MASTER")),
        (b"FSD u v\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"SET VAR u v\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"SET VAR u v w extra\n", ev.SetVar(ups="u", var="v", value="w")),
        (b"SET TRACKING on\n", ev.SetTracking(on=True)),
        (b"SET TRACKING maybe\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
        (b"INSTCMD u c p\n", ev.InstCmd(ups="u", cmd="c", param="p")),
        (b"INSTCMD u c p q\n", ev.InstCmd(ups="u", cmd="c", param=None)),
        (b"INSTCMD u\n", ev.Rejected(error=ErrCode.INVALID_ARGUMENT)),
    ],
)
def test_grammar_after_authentication(line, expected):
    assert request(authenticated(), line) == expected


def test_password_required_after_username_only():
    conn = ServerConnection()
    request(conn, b"USERNAME a\n")
    conn.send(rp.ok())
    assert request(conn, b"FSD u\n") == ev.Rejected(error=ErrCode.PASSWORD_REQUIRED)


def test_username_and_password_only_once_and_only_when_accepted():
    conn = ServerConnection()
    request(conn, b"PASSWORD p\n")
    conn.send(rp.ok())
    assert conn.password == "p"
    assert request(conn, b"PASSWORD q\n") == ev.Rejected(error=ErrCode.ALREADY_SET_PASSWORD)
    conn.send(rp.err(ErrCode.ALREADY_SET_PASSWORD))
    assert request(conn, b"USERNAME u\n") == ev.Username(name="u")
    conn.send(rp.ok())
    assert request(conn, b"USERNAME v\n") == ev.Rejected(error=ErrCode.ALREADY_SET_USERNAME)


def test_login_state_and_vocabulary_of_the_repeat_error():
    conn = authenticated()
    request(conn, b"LOGIN ups\n")
    conn.send(rp.err(ErrCode.UNKNOWN_UPS))
    assert conn.login_ups is None
    request(conn, b"LOGIN ups\n")
    conn.send(rp.ok())
    assert conn.login_ups == "ups"
    assert request(conn, b"LOGIN x\n") == ev.Rejected(error=ErrCode.ALREADY_LOGGED_IN)
    conn.send(rp.err(ErrCode.ALREADY_LOGGED_IN))
    assert request(conn, b"ATTACH x\n") == ev.Rejected(error=ErrCode.ALREADY_ATTACHED)


def test_logout_closes_unless_a_request_was_already_received():
    conn = ServerConnection()
    request(conn, b"LOGOUT\n")
    assert conn.send(rp.ok("Goodbye")) == b"OK Goodbye\n"
    assert conn.next_event() is Signal.CLOSE

    pipelined = ServerConnection()
    request(pipelined, b"LOGOUT\nVER\n")
    pipelined.send(rp.ok("Goodbye"))
    assert pipelined.next_event() == ev.Ver()
    pipelined.send(rp.line(rp.VER_TEXT))
    assert pipelined.next_event() is Signal.NEED_DATA


def test_eof_closes_after_complete_lines_and_drops_a_partial_one():
    conn = ServerConnection()
    conn.receive_data(b"VER\nNETV")
    conn.receive_data(b"")
    assert conn.next_event() == ev.Ver()
    conn.send(rp.line("x"))
    assert conn.next_event() is Signal.CLOSE


def test_line_too_long_is_answered_then_closes():
    conn = ServerConnection(max_line=16)
    event = request(conn, b"GET VAR " + b"x" * 100)
    assert event == ev.Rejected(error=ErrCode.TOO_LONG)
    assert conn.send(rp.err(ErrCode.TOO_LONG)) == b"ERR TOO-LONG\n"
    assert conn.next_event() is Signal.CLOSE


def test_one_request_at_a_time():
    conn = ServerConnection()
    request(conn, b"VER\nVER\n")
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.send(rp.line("v"))
    with pytest.raises(LocalProtocolError):
        conn.send(rp.line("v"))


def test_starttls_pauses_and_resumes_in_tls():
    conn = ServerConnection()
    assert request(conn, b"STARTTLS\n") == ev.StartTLS()
    assert conn.send(rp.ok("STARTTLS")) == b"OK STARTTLS\n"
    assert conn.next_event() is Signal.PAUSED
    assert conn.trailing_data == b""
    conn.tls_started()
    assert conn.tls
    assert request(conn, b"STARTTLS\n") == ev.Rejected(error=ErrCode.ALREADY_SSL_MODE)
    conn.send(rp.err(ErrCode.ALREADY_SSL_MODE))
    request(conn, b"GET NUMATTACH u\n")
    conn.send(rp.numlogins("u", 1, rfc=True))
    assert request(conn, b"STARTTLS\n") == ev.Rejected(error=ErrCode.TLS_ALREADY_ENABLED)


def test_starttls_refused_keeps_the_connection_in_clear():
    conn = ServerConnection()
    request(conn, b"STARTTLS\nVER\n")
    conn.send(rp.err(ErrCode.FEATURE_NOT_CONFIGURED))
    assert conn.next_event() == ev.Ver()


def test_tls_started_without_starttls_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        ServerConnection().tls_started()


def test_reply_formatting():
    assert rp.var("U", "ups.status", 'a"b\\c#d').data == b'VAR U ups.status "a\\"b\\\\c\\#d"\n'
    assert rp.desc("u", "v", 'raw "text"').data == b'DESC u v "raw "text""\n'
    assert rp.type_("u", "v", ["RW", "STRING:3"]).data == b"TYPE u v RW STRING:3\n"
    assert rp.numlogins("u", 2).data == b"NUMLOGINS u 2\n"
    assert rp.block("CMD u", ["CMD u a", "CMD u b"]).data == (
        b"BEGIN LIST CMD u\nCMD u a\nCMD u b\nEND LIST CMD u\n"
    )
    assert rp.block("UPS", []).data == b"BEGIN LIST UPS\nEND LIST UPS\n"
    assert rp.desc("u", "x" * 600, "t") == rp.err(ErrCode.INVALID_ARGUMENT)
