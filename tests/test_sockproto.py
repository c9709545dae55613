"""The driver socket protocol (nuttrio.hw.sockproto) on exchanges recorded from dummy-ups 2.8.0.

The recording (tests/fixtures/driver_socket/dummy-ups-2.8.0.jsonl, made by
record_exchange.py next to it) holds what Debian's dummy-ups answered on its socket to
DUMPALL, PING, SET and INSTCMD with and without TRACKING, and GETPID (unknown to 2.8.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nuttrio.hw import sockproto as sp
from nuttrio.protocol import LocalProtocolError
from nuttrio.state import CommandStatus, Variable

RECORDING = Path(__file__).parent / "fixtures" / "driver_socket" / "dummy-ups-2.8.0.jsonl"


def recorded() -> list[tuple[bytes, bytes]]:
    steps = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    return [(s["send"].encode("latin-1"), s["receive"].encode("latin-1")) for s in steps]


def events_of(data: bytes, *, chunk: int | None = None) -> list[object]:
    parser = sp.DriverParser()
    out: list[object] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        parser.receive_data(piece)
        out.extend(parser.events())
    return out


def mirror_of(data: bytes) -> sp.DriverMirror:
    mirror = sp.DriverMirror()
    for event in events_of(data):
        if not isinstance(event, sp.BadLine):
            mirror.apply(event)
    return mirror


def test_the_recorded_dump_of_dummy_ups_gives_upsd_s_copy_of_the_state():
    sent, dump = recorded()[0]
    assert sent == sp.dumpall()
    mirror = mirror_of(dump)
    assert mirror.dumped
    assert not mirror.stale
    got = {v.name: v for v in mirror.variables()}
    assert got["battery.charge"] == Variable("battery.charge", "93", rw=True)
    assert got["ups.mfr"] == Variable("ups.mfr", 'Quote " and # hash', rw=True, string=True, aux=32)
    # dummy-ups 2.8.0 copies device.mfr in its escaped form: the escapes arrive escaped.
    assert got["device.mfr"].value == 'Quote \\" and \\# hash'
    assert got["ups.model"].value == "Back-UPS RS 1500"
    assert got["ups.status"] == Variable("ups.status", "OL CHRG", rw=True, string=True, aux=32)
    assert [v.name for v in mirror.variables()] == sorted(got, key=str.lower)
    assert mirror.commands == ("load.off",)


def test_events_are_the_same_whatever_the_reads_look_like():
    data = b"".join(received for _, received in recorded())
    whole = events_of(data)
    assert events_of(data, chunk=1) == whole
    assert events_of(data, chunk=7) == whole
    kinds = {type(e) for e in whole}
    assert {sp.SetInfo, sp.SetFlags, sp.SetAux, sp.AddCmd, sp.DataOk, sp.DumpDone} <= kinds
    assert {sp.Pong, sp.Tracking, sp.BadLine} <= kinds


def test_recorded_live_updates_and_tracking_replies():
    steps = recorded()
    mirror = mirror_of(steps[0][1])
    trackings: list[sp.Tracking] = []
    bad: list[sp.BadLine] = []
    for _, received in steps[1:]:
        for event in events_of(received):
            if isinstance(event, sp.BadLine):
                bad.append(event)
                continue
            assert mirror.apply(event)
            if isinstance(event, sp.Tracking):
                trackings.append(event)
    assert [(t.id, sp.tracking_status(t.status)) for t in trackings] == [
        ("rec-1", CommandStatus.SUCCESS),
        ("rec-2", CommandStatus.SUCCESS),
        ("rec-3", CommandStatus.UNKNOWN),  # dummy-ups has no instant command handler
    ]
    values = {v.name: v.value for v in mirror.variables()}
    assert values["battery.charge"] == "50"
    assert values["ups.status"] == "OB LB"
    # 2.8.0 sends live updates unescaped: 'x # y' is a line upsd drops, the value stays.
    assert len(bad) == 1
    assert "#" in bad[0].message
    assert values["ups.mfr"] == 'Quote " and # hash'


def test_requests_as_upsd_writes_them():
    assert (
        sp.set_var("ups.mfr", 'a "b" #c', "t-1") == b'SET ups.mfr "a \\"b\\" \\#c" TRACKING t-1\n'
    )
    assert sp.set_var("battery.charge", "50") == b'SET battery.charge "50"\n'
    assert sp.set_var("x", "") == b'SET x ""\n'
    assert sp.instcmd("load.off") == b"INSTCMD load.off\n"
    assert sp.instcmd("test.battery.start", "60", "t2") == (
        b"INSTCMD test.battery.start 60 TRACKING t2\n"
    )
    assert sp.instcmd("load.off", None, "t3") == b"INSTCMD load.off TRACKING t3\n"
    assert sp.ping() == b"PING\n"
    assert sp.getpid() == b"GETPID\n"
    assert sp.logout() == b"LOGOUT\n"
    assert sp.broadcast(False) == b"BROADCAST 0\n"
    assert sp.nobroadcast() == b"NOBROADCAST\n"
    assert sp.dumpvalue("ups.status") == b"DUMPVALUE ups.status\n"
    assert sp.dumpstatus() == b"DUMPSTATUS\n"
    with pytest.raises(LocalProtocolError):
        sp.set_var("x", "caf\xe9")


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("0", CommandStatus.SUCCESS),
        ("1", CommandStatus.UNKNOWN),
        ("2", CommandStatus.INVALID_ARGUMENT),
        ("3", CommandStatus.FAILED),
        ("4", CommandStatus.INVALID_ARGUMENT),  # 2.8.3's conversion failed
        ("PENDING", CommandStatus.UNKNOWN),
        ("17", CommandStatus.UNKNOWN),
    ],
)
def test_tracking_status_numbers(word, status):
    assert sp.tracking_status(word) is status


def test_the_quirks_of_upsd_s_state_copy():
    mirror = mirror_of(
        b'SETINFO Ups.Model "Back-UPS"\n'
        b'SETINFO ups.model "BACK-UPS"\n'  # differs only in case: no change (strcasecmp)
        b'ADDENUM no.such "x"\n'  # unknown variable: ignored
        b'SETINFO input.sensitivity "H"\n'
        b'ADDENUM input.sensitivity "H"\nADDENUM input.sensitivity "L"\n'
        b'ADDENUM input.sensitivity "H"\n'  # exact duplicate
        b'ADDENUM input.sensitivity "h"\n'  # not a duplicate (strcmp)
        b'DELENUM input.sensitivity "l"\n'  # removed (strcasecmp)
        b'SETINFO ups.delay "10"\n'
        b"ADDRANGE ups.delay 0 100\nADDRANGE ups.delay 0 200\n"  # same min: a duplicate
        b"ADDRANGE ups.delay 150 300\nADDRANGE ups.delay 9 1\n"  # min > max: refused
        b"DELRANGE ups.delay 150 300\n"
        b"SETFLAGS ups.delay RW number BOGUS\nSETAUX ups.delay 12abc\n"
        b"ADDCMD test.battery.start\nADDCMD Beeper.off\nADDCMD load.off\nADDCMD LOAD.OFF\n"
        b"DELCMD test.battery.start\n"
        b'SETINFO gone "1"\nDELINFO GONE\n'
    )
    got = {v.name: v for v in mirror.variables()}
    assert got["Ups.Model"].value == "Back-UPS"
    assert got["input.sensitivity"].enums == ("H", "h")
    assert got["ups.delay"] == Variable(
        "ups.delay", "10", rw=True, number=True, aux=12, ranges=((0, 100),)
    )
    assert mirror.commands == ("Beeper.off", "load.off")
    assert "gone" not in {k.lower() for k in got}
    assert len(got) == 3
    assert not mirror.dumped


def test_what_upsd_does_not_count_as_news():
    mirror = sp.DriverMirror()
    for line, news in [
        (b"FOO bar\n", False),
        (b"SETINFO only.name\n", False),  # too few words
        (b"ADDRANGE x 1\n", False),
        (b"pong\n", True),  # words are case-insensitive
        (b"DATASTALE\n", True),
        (b"PID 4242\n", True),
        (b"OK Goodbye\n", True),
    ]:
        (event,) = events_of(line)
        assert mirror.apply(event) is news, line
    assert mirror.stale
    assert mirror.pid == 4242
    mirror.apply(sp.DataOk())
    assert not mirror.stale
    mirror.reset()
    assert mirror.pid is None
    assert mirror.variables() == []
    assert not mirror.dumped


def test_a_line_too_long_ends_the_parsing():
    parser = sp.DriverParser(max_line=64)
    parser.receive_data(b'SETINFO a "' + b"x" * 100 + b'"\nPONG\n')
    events = list(parser.events())
    assert len(events) == 1
    assert isinstance(events[0], sp.BadLine)
    assert parser.broken
    parser.receive_data(b"PONG\n")
    assert list(parser.events()) == []


def test_blank_lines_and_comments_give_nothing():
    assert events_of(b"\n  \n# a comment\nPONG # trailing\n") == [sp.Pong()]
