"""Request handling against the state store, with a scripted driver (ENUM, RANGE, STRING...).

The expected bytes are upsd 2.8.0's as observed (shared/reference/upsd-protocol.md §3, §10);
dummy-ups cannot publish ENUM/RANGE/read-only strings, so these cases are covered here.
"""

from __future__ import annotations

import re

import pytest
import trio
import trio.testing

from nuttrio.server import ServerCore, ServerSettings
from nuttrio.state import CommandKind, CommandStatus, StateStore, Variable

from .helpers import NoDescriptions, ScriptedDriver, SimpleUser, exchange, lines, new_session

FAKE_VARS = [
    Variable(name="ups.status", value="OL", rw=True, string=True, aux=32),
    Variable(name="input.sensitivity", value="normal", rw=True, enums=("low", "normal", "high")),
    Variable(
        name="output.voltage.nominal",
        value="230",
        rw=True,
        string=True,
        aux=3,
        enums=("120", "230"),
    ),
    Variable(name="battery.charge.low", value="20", rw=True, ranges=((10, 50), (60, 80))),
    Variable(name="ups.ro.string", value="ro", string=True, aux=10),
    Variable(name="ups.id", value="id1", rw=True, string=True, aux=8),
    Variable(name="ups.rw.noaux", value="x", rw=True, string=True, aux=0),
    Variable(name="Mixed.Case.Var", value='q"uo#te\\'),
    Variable(name="driver.name", value="fake"),
]

USERS = {
    "admin": SimpleUser(
        "adminpass", frozenset({"set", "fsd", "login", "master"}), frozenset({"all"})
    ),
    "cmdonly": SimpleUser("cmdpass", frozenset(), frozenset({"load.off"})),
    "mon": SimpleUser("pw", frozenset({"login"})),
}


@pytest.fixture
async def world(nursery):
    store = StateStore()
    store.add("fake", "A fake UPS")
    store.add("nodriver")
    store.add("nodesc")
    driver = ScriptedDriver(FAKE_VARS, ["load.off", "beeper.disable", "Z.last", "a.first"])
    other = ScriptedDriver([Variable(name="ups.status", value="OB")])

    async def attach(name, drv, *, task_status=trio.TASK_STATUS_IGNORED):
        with store.get(name).connect() as link:
            await drv.run(link, task_status=task_status)

    await nursery.start(attach, "fake", driver)
    await nursery.start(attach, "nodesc", other)
    core = ServerCore(store, USERS, NoDescriptions(), ServerSettings(maxage=15))
    return core, store, driver


def ask(core, session, *requests: str) -> str:
    return exchange(core, session, lines(*requests)).decode()


def admin(core):
    s = new_session()
    assert ask(core, s, "USERNAME admin", "PASSWORD adminpass") == "OK\nOK\n"
    return s


@pytest.mark.parametrize(
    ("request_line", "reply"),
    [
        ("GET VAR fake ups.status", 'VAR fake ups.status "OL"'),
        ("get var FAKE UPS.STATUS", 'VAR FAKE UPS.STATUS "OL"'),
        ("GET VAR fake nope", "ERR VAR-NOT-SUPPORTED"),
        ("GET VAR nope ups.status", "ERR UNKNOWN-UPS"),
        ("GET VAR nodriver ups.status", "ERR DRIVER-NOT-CONNECTED"),
        ("GET VAR nope server.info", 'VAR nope server.info "' + "{VER}" + '"'),
        ("GET VAR x SERVER.VERSION", 'VAR x server.version "2.8.0"'),
        ("GET VAR fake server.other", "ERR VAR-NOT-SUPPORTED"),
        ("GET VAR fake Mixed.Case.Var", 'VAR fake Mixed.Case.Var "q\\"uo\\#te\\\\"'),
        ("GET TYPE fake ups.status", "TYPE fake ups.status RW STRING:32"),
        ("GET TYPE fake driver.name", "TYPE fake driver.name NUMBER"),
        ("GET TYPE fake input.sensitivity", "TYPE fake input.sensitivity RW ENUM NUMBER"),
        (
            "GET TYPE fake output.voltage.nominal",
            "TYPE fake output.voltage.nominal RW ENUM STRING:3",
        ),
        ("GET TYPE fake battery.charge.low", "TYPE fake battery.charge.low RW RANGE NUMBER"),
        ("GET TYPE fake ups.ro.string", "TYPE fake ups.ro.string STRING:10"),
        ("GET TYPE fake ups.rw.noaux", "TYPE fake ups.rw.noaux RW STRING:0"),
        ("GET TYPE fake nope", "ERR VAR-NOT-SUPPORTED"),
        ("GET DESC fake ups.status", 'DESC fake ups.status "UPS status"'),
        ("GET DESC fake nope.var", 'DESC fake nope.var "Description unavailable"'),
        ("GET DESC nodriver x", "ERR DRIVER-NOT-CONNECTED"),
        ("GET CMDDESC fake load.off", 'CMDDESC fake load.off "Turn off the load immediately"'),
        ("GET CMDDESC fake nope", 'CMDDESC fake nope "Description unavailable"'),
        ("GET UPSDESC fake", 'UPSDESC fake "A fake UPS"'),
        ("GET UPSDESC nodesc", 'UPSDESC nodesc "Unavailable"'),
        ("GET UPSDESC nodriver", 'UPSDESC nodriver "Unavailable"'),
        ("GET UPSDESC nope", "ERR UNKNOWN-UPS"),
        ("GET NUMLOGINS fake", "NUMLOGINS fake 0"),
        ("GET NUMATTACH fake", "NUMATTACH fake 0"),
        ("GET NUMLOGINS nodriver", "ERR DRIVER-NOT-CONNECTED"),
        ("GET TRACKING", "OFF"),
        ("GET TRACKING some-id", "ERR FEATURE-NOT-CONFIGURED"),
        ("STARTTLS", "ERR FEATURE-NOT-CONFIGURED"),
        ("HELP", "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"),
        ("NETVER", "1.3"),
        ("ATTACH fake", "ERR USERNAME-REQUIRED"),
        ("REQ", "ERR UNKNOWN-COMMAND"),
    ],
)
async def test_single_line_replies(world, request_line, reply):
    core = world[0]
    from nuttrio.protocol.replies import VER_TEXT

    assert ask(core, new_session(), request_line) == reply.replace("{VER}", VER_TEXT) + "\n"


async def test_lists(world):
    core = world[0]
    s = new_session()
    assert ask(core, s, "LIST UPS") == (
        'BEGIN LIST UPS\nUPS fake "A fake UPS"\nUPS nodriver "Description unavailable"\n'
        'UPS nodesc "Description unavailable"\nEND LIST UPS\n'
    )
    listing = ask(core, s, "LIST VAR Fake")
    names = re.findall(r"^VAR Fake (\S+) ", listing, re.M)
    assert names == sorted(names, key=str.lower)
    assert listing.startswith("BEGIN LIST VAR Fake\n")
    assert listing.endswith("END LIST VAR Fake\n")
    assert 'VAR Fake Mixed.Case.Var "q\\"uo\\#te\\\\"\n' in listing
    rw = ask(core, s, "LIST RW fake")
    assert "ups.ro.string" not in rw
    assert "driver.name" not in rw
    assert 'RW fake ups.id "id1"\n' in rw
    assert ask(core, s, "LIST CMD fake") == (
        "BEGIN LIST CMD fake\nCMD fake a.first\nCMD fake beeper.disable\nCMD fake load.off\n"
        "CMD fake Z.last\nEND LIST CMD fake\n"
    )
    assert ask(core, s, "LIST ENUM fake input.sensitivity") == (
        "BEGIN LIST ENUM fake input.sensitivity\n"
        'ENUM fake input.sensitivity "low"\nENUM fake input.sensitivity "normal"\n'
        'ENUM fake input.sensitivity "high"\nEND LIST ENUM fake input.sensitivity\n'
    )
    assert ask(core, s, "LIST ENUM fake ups.id") == (
        "BEGIN LIST ENUM fake ups.id\nEND LIST ENUM fake ups.id\n"
    )
    assert ask(core, s, "LIST RANGE fake battery.charge.low") == (
        "BEGIN LIST RANGE fake battery.charge.low\n"
        'RANGE fake battery.charge.low "10" "50"\nRANGE fake battery.charge.low "60" "80"\n'
        "END LIST RANGE fake battery.charge.low\n"
    )
    assert ask(core, s, "LIST ENUM fake nope") == "ERR VAR-NOT-SUPPORTED\n"
    assert ask(core, s, "LIST VAR nodriver") == "ERR DRIVER-NOT-CONNECTED\n"
    assert ask(core, s, "LIST CLIENT nodriver") == (
        "BEGIN LIST CLIENT nodriver\nEND LIST CLIENT nodriver\n"
    )


async def test_login_numlogins_and_list_client(world):
    core = world[0]
    a, b = new_session("127.0.0.1"), new_session("::1")
    assert ask(core, a, "USERNAME mon", "PASSWORD pw", "LOGIN fake") == "OK\nOK\nOK\n"
    assert ask(core, b, "USERNAME mon", "PASSWORD bad", "LOGIN fake") == (
        "OK\nOK\nERR ACCESS-DENIED\n"
    )
    b2 = new_session("::1")
    assert ask(core, b2, "USERNAME mon", "PASSWORD pw", "LOGIN nodriver", "LOGIN fake") == (
        "OK\nOK\nOK\nERR ALREADY-LOGGED-IN\n"
    )
    b3 = new_session("::1")
    assert ask(core, b3, "USERNAME mon", "PASSWORD pw", "LOGIN nope", "ATTACH FAKE") == (
        "OK\nOK\nERR UNKNOWN-UPS\nOK\n"
    )
    assert ask(core, new_session(), "GET NUMLOGINS fake") == "NUMLOGINS fake 2\n"
    assert ask(core, new_session(), "LIST CLIENT FAKE") == (
        "BEGIN LIST CLIENT FAKE\nCLIENT fake ::1\nCLIENT fake 127.0.0.1\nEND LIST CLIENT FAKE\n"
    )
    core.closed(a)
    assert ask(core, new_session(), "GET NUMATTACH fake") == "NUMATTACH fake 1\n"


async def test_primary_and_fsd_latch(world):
    core, store, _ = world
    s = admin(core)
    assert ask(core, s, "PRIMARY fake", "MASTER fake", "PRIMARY nope") == (
        "OK PRIMARY-GRANTED\nOK MASTER-GRANTED\nERR UNKNOWN-UPS\n"
    )
    mon = new_session()
    assert ask(core, mon, "USERNAME mon", "PASSWORD pw", "PRIMARY fake", "FSD fake") == (
        "OK\nOK\nERR ACCESS-DENIED\nERR ACCESS-DENIED\n"
    )
    assert ask(core, s, "FSD nodriver", "FSD fake") == "OK FSD-SET\nOK FSD-SET\n"
    assert ask(core, s, "GET VAR fake ups.status") == 'VAR fake ups.status "FSD OL"\n'
    assert 'VAR fake ups.status "FSD OL"' in ask(core, s, "LIST VAR fake")
    assert 'RW fake ups.status "OL"' in ask(core, s, "LIST RW fake")
    assert store.get("fake").snapshot().fsd


@pytest.mark.parametrize(
    ("request_line", "reply"),
    [
        ("SET VAR nope x 1", "ERR UNKNOWN-UPS"),
        ("SET VAR nodriver x 1", "ERR DRIVER-NOT-CONNECTED"),
        ("SET VAR fake nope 1", "ERR VAR-NOT-SUPPORTED"),
        ("SET VAR fake driver.name 1", "ERR READONLY"),
        ("SET VAR fake ups.ro.string x", "ERR READONLY"),
        ("SET VAR fake ups.rw.noaux x", "ERR SET-FAILED"),
        ("SET VAR fake ups.id toolongvalue", "ERR TOO-LONG"),
        ("SET VAR fake input.sensitivity HIGH", "ERR INVALID-VALUE"),
        ("SET VAR fake battery.charge.low 55", "ERR INVALID-VALUE"),
        ("SET VAR fake battery.charge.low abc", "ERR INVALID-VALUE"),
        ("SET VAR fake battery.charge.low 9.9", "ERR INVALID-VALUE"),
        ("SET VAR fake battery.charge.low 10.9xyz", "OK"),
        ("SET VAR fake battery.charge.low ' 75'", "OK"),
        ("SET VAR fake input.sensitivity high", "OK"),
        ('SET VAR fake ups.id ""', "OK"),
        ("SET VAR fake ups.id 12345678", "OK"),
    ],
)
async def test_set_var_error_order(world, request_line, reply):
    core = world[0]
    assert ask(core, admin(core), request_line.replace("'", '"')) == reply + "\n"


async def test_set_var_access_is_checked_before_the_variable(world):
    core = world[0]
    s = new_session()
    assert ask(core, s, "USERNAME cmdonly", "PASSWORD cmdpass", "SET VAR fake nope.var x") == (
        "OK\nOK\nERR ACCESS-DENIED\n"
    )


async def test_set_var_reaches_the_driver_and_tracking(world):
    core, store, driver = world
    s = admin(core)
    assert ask(core, s, 'SET VAR fake ups.id "a b"') == "OK\n"
    await trio.testing.wait_all_tasks_blocked()
    assert driver.received[-1].kind is CommandKind.SET
    assert driver.received[-1].value == "a b"
    assert store.get("fake").snapshot().value("ups.id") == "a b"
    assert ask(core, s, "SET TRACKING ON", "GET TRACKING") == "OK\nON\n"
    reply = ask(core, s, "SET VAR fake ups.id x")
    tid = re.fullmatch(r"OK TRACKING ([0-9A-F-]{36})\n", reply).group(1)
    assert ask(core, s, f"GET TRACKING {tid}") == "PENDING\n"
    await trio.testing.wait_all_tasks_blocked()
    assert ask(core, s, f"GET TRACKING {tid.lower()}") == "SUCCESS\n"
    assert ask(core, s, "GET TRACKING 00000000-0000-0000-0000-000000000000") == "ERR UNKNOWN\n"


async def test_instcmd_order_and_tracking_outcomes(world):
    core, _, driver = world
    s = new_session()
    assert ask(
        core,
        s,
        "USERNAME cmdonly",
        "PASSWORD cmdpass",
        "INSTCMD fake beeper.disable",
        "INSTCMD fake nope.cmd",
        "INSTCMD nope load.off",
        "INSTCMD nodriver load.off",
        "INSTCMD fake LOAD.OFF 7",
    ) == (
        "OK\nOK\nERR ACCESS-DENIED\nERR CMD-NOT-SUPPORTED\nERR UNKNOWN-UPS\n"
        "ERR DRIVER-NOT-CONNECTED\nOK\n"
    )
    await trio.testing.wait_all_tasks_blocked()
    assert (driver.received[-1].name, driver.received[-1].value) == ("LOAD.OFF", "7")
    for status, text in [
        (CommandStatus.UNKNOWN, "ERR UNKNOWN"),
        (CommandStatus.INVALID_ARGUMENT, "ERR INVALID-ARGUMENT"),
        (CommandStatus.FAILED, "ERR FAILED"),
    ]:
        driver.answer = status
        reply = ask(core, s, "SET TRACKING ON", "INSTCMD fake load.off")
        tid = reply.split()[-1]
        await trio.testing.wait_all_tasks_blocked()
        assert ask(core, s, f"GET TRACKING {tid}") == text + "\n"


async def test_tracking_expires_after_trackingdelay(world, autojump_clock):
    core, _, _ = world
    core.settings = ServerSettings(trackingdelay=10)
    s = admin(core)
    tid = ask(core, s, "SET TRACKING ON", "SET VAR fake ups.id y").split()[-1]
    await trio.sleep(5)
    assert ask(core, s, f"GET TRACKING {tid}") == "SUCCESS\n"
    await trio.sleep(6)
    assert ask(core, s, f"GET TRACKING {tid}") == "ERR UNKNOWN\n"


async def test_stale_after_maxage_and_when_declared(world, autojump_clock):
    core, _store, _ = world
    s = new_session()
    assert ask(core, s, "GET VAR fake ups.status").startswith("VAR")
    await trio.sleep(16)
    for request_line in ["GET VAR fake ups.status", "LIST VAR fake", "GET NUMLOGINS fake"]:
        assert ask(core, s, request_line) == "ERR DATA-STALE\n"
    for request_line, start in [
        ("GET UPSDESC fake", "UPSDESC"),
        ("LIST CLIENT fake", "BEGIN"),
        ("GET VAR fake server.info", "VAR"),
    ]:
        assert ask(core, s, request_line).startswith(start)


async def test_driver_declared_stale(nursery):
    store = StateStore()
    store.add("u")
    driver = ScriptedDriver([Variable(name="ups.status", value="OL")], stale=True)

    async def attach(*, task_status=trio.TASK_STATUS_IGNORED):
        with store.get("u").connect() as link:
            await driver.run(link, task_status=task_status)

    await nursery.start(attach)
    core = ServerCore(store, {}, NoDescriptions())
    assert ask(core, new_session(), "GET VAR u ups.status") == "ERR DATA-STALE\n"


async def test_commands_queued_for_a_vanished_driver_fail():
    store = StateStore()
    entry = store.add("u")
    with entry.connect():
        from nuttrio.state import DriverCommand

        command = DriverCommand(CommandKind.INSTCMD, "x")
        assert entry.submit(command)
    assert command.result.status is CommandStatus.FAILED
    assert not entry.submit(DriverCommand(CommandKind.INSTCMD, "x"))
