"""Notifications: messages, flags, NOTIFYCMD argv/env/order/timeouts, the queue, notify-test."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
import trio.testing

from nuttrio.mgmt.notify import (
    TEST_MESSAGE,
    Notifier,
    NotifierStatistics,
    format_message,
)
from nuttrio.nutconf import load_upsmon_conf, load_upssched_conf

from .helpers import FakeRunner, recorder, records

FIXTURES = Path(__file__).parent / "fixtures" / "notify"
U1 = "ups1@localhost"


def upsmon(tmp_path: Path, extra: str = ""):
    path = tmp_path / "upsmon.conf"
    path.write_text(
        f"MONITOR {U1} 1 mon secret primary\nSHUTDOWNCMD /bin/true\n"
        f"POWERDOWNFLAG /etc/killpower\n{extra}",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return load_upsmon_conf(path)


# -- messages and flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "system", "detail", "expected"),
    [
        ("UPS %s on battery", U1, "", "UPS ups1@localhost on battery"),
        (
            "UPS %s: one or more active alarms: [%s]",
            U1,
            "Replace battery!",
            "UPS ups1@localhost: one or more active alarms: [Replace battery!]",
        ),
        ("UPS %s at 100%% load", U1, "", "UPS ups1@localhost at 100% load"),
        ("Auto logout and shutdown proceeding", None, "", "Auto logout and shutdown proceeding"),
        ("shutdown of %s", None, "", "shutdown of "),
        ("%s and %s and %s", "a", "b", "a and b and "),
        ("trailing %", U1, "", "trailing %"),
        ("UPS %s only one", U1, "ignored detail", "UPS ups1@localhost only one"),
    ],
)
def test_format_message(template, system, detail, expected):
    assert format_message(template, system, detail) == expected


def test_messages_use_notifymsg_or_the_stock_text(tmp_path):
    conf = upsmon(
        tmp_path,
        'NOTIFYMSG ONBATT "%s lost mains (100%% sure)"\nNOTIFYMSG OTHER "%s: odd tokens %s"\n',
    )
    n = Notifier(conf, use_syslog=False)
    assert n.message_for("ONBATT", U1) == "ups1@localhost lost mains (100% sure)"
    assert n.message_for("OTHER", U1, "WEIRD") == "ups1@localhost: odd tokens WEIRD"
    assert n.message_for("ALARM", U1, "Overheat") == (
        "UPS ups1@localhost: one or more active alarms: [Overheat]"
    )
    assert n.message_for("SHUTDOWN", None) == "Auto logout and shutdown proceeding"


def test_a_type_missing_from_the_table_is_syslog_only(tmp_path):
    n = Notifier(upsmon(tmp_path), use_syslog=False)
    assert n.message_for("XYZZY", U1) == "UPS ups1@localhost: XYZZY"
    assert n.flags_for("XYZZY") == frozenset({"SYSLOG"})


async def test_flags_decide_what_is_done(tmp_path, caplog):
    conf = upsmon(
        tmp_path,
        "NOTIFYCMD /bin/notify\n"
        "NOTIFYFLAG ONBATT IGNORE\n"
        "NOTIFYFLAG ONLINE SYSLOG\n"
        "NOTIFYFLAG LOWBATT EXEC\n"
        "NOTIFYFLAG COMMOK SYSLOG+WALL+EXEC\n",
    )
    runner = FakeRunner()
    n = Notifier(conf, use_syslog=False, runner=runner, wall_command=("wall",))
    caplog.set_level(logging.DEBUG, logger="nuttrio.notify")

    n.send("ONBATT", U1)
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert n.statistics().queued == 0

    caplog.clear()
    n.send("ONLINE", U1)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("nuttrio.notify", "WARNING", "UPS ups1@localhost on line power")
    ]
    assert n.statistics().queued == 0

    caplog.clear()
    n.send("LOWBATT", U1)
    assert caplog.records == []  # EXEC only: no syslog
    assert n.statistics().queued == 1

    n.send("COMMOK", U1)  # default-style: wall and exec queued, in that order
    n.send("FSD", U1)  # stock flags SYSLOG+WALL
    assert n.statistics() == NotifierStatistics(queued=4, sent=0, failed=0, dropped=0)

    async with trio.open_nursery() as nursery:
        await nursery.start(n.run)
        await n.drain()
        nursery.cancel_scope.cancel()
    assert [(c.argv[0], c.env["NOTIFYTYPE"], c.stdin) for c in runner.calls] == [
        ("/bin/notify", "LOWBATT", b""),
        ("wall", None, b"Communications with UPS ups1@localhost established\n"),
        ("/bin/notify", "COMMOK", b""),
        ("wall", None, b"UPS ups1@localhost: forced shutdown in progress\n"),
    ]
    assert n.statistics() == NotifierStatistics(queued=0, sent=4, failed=0, dropped=0)


def test_syslog_goes_to_the_system_log_too(tmp_path, monkeypatch):
    import syslog

    seen = []
    monkeypatch.setattr(syslog, "syslog", lambda *args: seen.append(args))
    n = Notifier(upsmon(tmp_path))
    n.send("ONBATT", U1)
    assert seen == [(syslog.LOG_DAEMON | syslog.LOG_NOTICE, "UPS ups1@localhost on battery")]


# -- NOTIFYCMD: argv, environment, order, failures ---------------------------------------------


async def test_notifycmd_argv_and_environment(tmp_path, nursery, monkeypatch):
    monkeypatch.setenv("INHERITED", "kept")
    monkeypatch.setenv("UPSNAME", "overwritten")
    script, out = recorder(tmp_path)
    conf = upsmon(
        tmp_path,
        f"NOTIFYCMD {script} --from-upsmon\n"
        'NOTIFYMSG ONBATT "UPS %s on \\"battery\\" $HOME `id`"\n'
        "NOTIFYFLAG ONBATT EXEC\nNOTIFYFLAG SHUTDOWN EXEC\nNOTIFYFLAG ALARM EXEC\n",
    )
    n = Notifier(conf, use_syslog=False)
    await nursery.start(n.run)
    n.send("ONBATT", U1)
    n.send("ALARM", U1, "Overheat")
    n.send("SHUTDOWN", None)
    await n.drain()
    base = {"NOTIFYMSG": None, "INHERITED": "kept"}
    assert records(out) == [
        {
            # No shell: quotes, $ and backquotes reach the command literally.
            "argv": ["--from-upsmon", 'UPS ups1@localhost on "battery" $HOME `id`'],
            "env": {"UPSNAME": U1, "NOTIFYTYPE": "ONBATT", **base},
            "stdin": "",
        },
        {
            "argv": ["--from-upsmon", "UPS ups1@localhost: one or more active alarms: [Overheat]"],
            "env": {"UPSNAME": U1, "NOTIFYTYPE": "ALARM", **base},
            "stdin": "",
        },
        {
            "argv": ["--from-upsmon", "Auto logout and shutdown proceeding"],
            "env": {"UPSNAME": "", "NOTIFYTYPE": "SHUTDOWN", **base},
            "stdin": "",
        },
    ]
    assert n.statistics() == NotifierStatistics(queued=0, sent=3, failed=0, dropped=0)


async def test_wall_and_notifycmd_run_strictly_in_order(tmp_path, nursery):
    script, out = recorder(tmp_path)
    wall, wall_out = recorder(tmp_path, "wall.py")
    # Both write to one file, so the file shows the global order.
    wall_out.symlink_to(out)
    conf = upsmon(
        tmp_path,
        f"NOTIFYCMD {script}\n"
        + "".join(f"NOTIFYFLAG {t} WALL+EXEC\n" for t in ("ONBATT", "LOWBATT", "ONLINE")),
    )
    n = Notifier(conf, use_syslog=False, wall_command=[str(wall)])
    await nursery.start(n.run)
    for ntype in ("ONBATT", "LOWBATT", "ONLINE", "ONBATT", "ONLINE"):
        n.send(ntype, U1)
    await n.drain()
    seen = [(r["env"]["NOTIFYTYPE"], r["stdin"] != "") for r in records(out)]
    # upsmon 2.8.0 forks per notification: its LOWBATT script was seen to run before ONBATT.
    assert seen == [
        (None, True),
        ("ONBATT", False),
        (None, True),
        ("LOWBATT", False),
        (None, True),
        ("ONLINE", False),
        (None, True),
        ("ONBATT", False),
        (None, True),
        ("ONLINE", False),
    ]
    assert records(out)[0]["stdin"] == "UPS ups1@localhost on battery\n"


async def test_a_hanging_notifycmd_is_killed_after_command_timeout(tmp_path, nursery, caplog):
    # Real processes do not follow the mock clock: a real, short timeout.
    script, out = recorder(
        tmp_path,
        before="import time\nif os.environ['NOTIFYTYPE'] == 'ONBATT': time.sleep(30)\n",
    )
    conf = upsmon(tmp_path, f"NOTIFYCMD {script}\nNOTIFYFLAG ONBATT EXEC\nNOTIFYFLAG ONLINE EXEC\n")
    n = Notifier(conf, use_syslog=False, command_timeout=0.5)
    await nursery.start(n.run)
    start = trio.current_time()
    n.send("ONBATT", U1)
    n.send("ONLINE", U1)
    await n.drain()
    assert trio.current_time() - start < 10
    assert [r["env"]["NOTIFYTYPE"] for r in records(out)] == ["ONLINE"]
    assert n.statistics() == NotifierStatistics(queued=0, sent=1, failed=1, dropped=0)
    assert "NOTIFYCMD for ONBATT: timed out after 0.5 s, killed" in caplog.text


async def test_failing_crashing_and_missing_notifycmds_never_stop_the_runner(
    tmp_path, nursery, caplog
):
    script, out = recorder(
        tmp_path,
        before=(
            "t = os.environ['NOTIFYTYPE']\n"
            "if t == 'ONBATT': sys.exit(3)\n"
            "if t == 'LOWBATT': os.kill(os.getpid(), 9)\n"
            "if t == 'FSD': raise RuntimeError('script bug')\n"
        ),
    )
    flags = "".join(f"NOTIFYFLAG {t} EXEC\n" for t in ("ONBATT", "LOWBATT", "FSD", "ONLINE"))
    n = Notifier(upsmon(tmp_path, f"NOTIFYCMD {script}\n{flags}"), use_syslog=False)
    await nursery.start(n.run)
    for ntype in ("ONBATT", "LOWBATT", "FSD", "ONLINE"):
        n.send(ntype, U1)
    await n.drain()
    assert [r["env"]["NOTIFYTYPE"] for r in records(out)] == ["ONLINE"]
    assert n.statistics() == NotifierStatistics(queued=0, sent=1, failed=3, dropped=0)
    assert "NOTIFYCMD for ONBATT: exit status 3" in caplog.text
    assert "NOTIFYCMD for LOWBATT: killed by signal 9 (SIGKILL)" in caplog.text
    assert "NOTIFYCMD for FSD: exit status 1" in caplog.text

    missing = Notifier(
        upsmon(tmp_path, f"NOTIFYCMD {tmp_path / 'missing'}\nNOTIFYFLAG ONBATT EXEC\n"),
        use_syslog=False,
    )
    await nursery.start(missing.run)
    missing.send("ONBATT", U1)
    missing.send("ONBATT", U1)
    await missing.drain()
    assert missing.statistics() == NotifierStatistics(queued=0, sent=0, failed=2, dropped=0)
    assert f"could not run: No such file or directory: {tmp_path / 'missing'}" in caplog.text


async def test_exec_runs_in_order_on_the_mock_clock(tmp_path, nursery, autojump_clock):
    conf = upsmon(
        tmp_path, "NOTIFYCMD /bin/notify\nNOTIFYFLAG ONBATT EXEC\nNOTIFYFLAG ONLINE EXEC\n"
    )
    msg_ob = "UPS ups1@localhost on battery"
    runner = FakeRunner(durations={msg_ob: 7})
    n = Notifier(conf, use_syslog=False, runner=runner)
    await nursery.start(n.run)
    t0 = trio.current_time()
    n.send("ONBATT", U1)
    n.send("ONLINE", U1)
    n.send("ONBATT", U1)
    await n.drain()
    assert [(c.start - t0, c.end - t0, c.env["NOTIFYTYPE"]) for c in runner.calls] == [
        (0, 7, "ONBATT"),
        (7, 7, "ONLINE"),
        (7, 14, "ONBATT"),
    ]


# -- the queue, wall() ---------------------------------------------------------------------------


async def test_queue_overflow_drops_the_oldest_and_never_blocks(tmp_path, caplog):
    conf = upsmon(tmp_path, "NOTIFYCMD /bin/notify\nNOTIFYFLAG ONBATT EXEC\n")
    runner = FakeRunner()
    n = Notifier(conf, use_syslog=False, runner=runner, queue_size=3)
    for i in range(5):
        n.send("ONBATT", f"ups{i}")
    assert n.statistics() == NotifierStatistics(queued=3, sent=0, failed=0, dropped=2)
    assert caplog.text.count("notification queue full (3): dropped NOTIFYCMD") == 2
    assert "'UPS ups0 on battery'" in caplog.text
    async with trio.open_nursery() as nursery:
        await nursery.start(n.run)
        await n.drain()
        nursery.cancel_scope.cancel()
    assert [c.env["UPSNAME"] for c in runner.calls] == ["ups2", "ups3", "ups4"]
    assert n.statistics() == NotifierStatistics(queued=0, sent=3, failed=0, dropped=2)


async def test_wall_is_unconditional_and_in_order(tmp_path, nursery, autojump_clock):
    conf = upsmon(tmp_path, "NOTIFYCMD /bin/notify\nNOTIFYFLAG ONBATT EXEC\n")
    runner = FakeRunner(durations={"UPS ups1@localhost on battery": 3})
    n = Notifier(conf, use_syslog=False, runner=runner, wall_command=("wall", "-n"))
    await nursery.start(n.run)
    t0 = trio.current_time()
    n.send("ONBATT", U1)
    result = await n.wall("Executing automatic power-fail shutdown")
    assert result is not None
    assert result.ok
    assert trio.current_time() - t0 == 3
    assert [(c.argv, c.stdin) for c in runner.calls] == [
        (("/bin/notify", "UPS ups1@localhost on battery"), b""),
        (("wall", "-n"), b"Executing automatic power-fail shutdown\n"),
    ]


async def test_a_dropped_wall_does_not_leave_its_caller_waiting(tmp_path, autojump_clock):
    n = Notifier(upsmon(tmp_path), use_syslog=False, runner=FakeRunner(), queue_size=1)
    async with trio.open_nursery() as nursery:
        results = []

        async def wall():
            results.append(await n.wall("first"))

        nursery.start_soon(wall)
        await trio.testing.wait_all_tasks_blocked()
        n.send("ONBATT", U1)  # WALL: pushes the waiting wall out of the one-slot queue
    assert results == [None]
    assert n.statistics().dropped == 1


async def test_without_wall_command_nothing_is_walled(tmp_path, autojump_clock):
    n = Notifier(upsmon(tmp_path), use_syslog=False, runner=FakeRunner(), wall_command=())
    n.send("ONBATT", U1)
    assert n.statistics().queued == 0
    assert await n.wall("x") is None


# -- upssched in-process -------------------------------------------------------------------------


async def test_notifycmd_upssched_goes_to_the_in_process_upssched(nursery, autojump_clock):
    conf = load_upsmon_conf(FIXTURES / "upsmon.conf")
    sched_conf = load_upssched_conf(FIXTURES / "upssched.conf")
    runner = FakeRunner()
    n = Notifier(conf, upssched=sched_conf, use_syslog=False, runner=runner)
    await nursery.start(n.run)
    assert n.upssched is not None
    t0 = trio.current_time()
    n.send("ONBATT", U1)  # WALL queued; EXEC handed over at once
    assert [(t.name, t.deadline - t0) for t in n.upssched.timers()] == [("early-shutdown", 300)]
    await trio.sleep(400)
    assert [(c.start - t0, c.argv) for c in runner.calls] == [
        (0, ("wall",)),
        (300, ("/usr/local/bin/upssched-cmd", "early-shutdown")),
    ]
    assert runner.calls[1].env == {
        "UPSNAME": U1,
        "NOTIFYTYPE": "ONBATT",
        "NOTIFYMSG": "UPS ups1@localhost on battery",
    }
    n.send("ONLINE", U1)  # the timer already fired: CANCEL-TIMER's command runs
    n.send("REPLBATT", U1)
    await n.drain()
    await n.upssched.drain()
    # Two workers (the notifier's and upssched's): order is kept within each.
    assert [c.argv[-1] for c in runner.calls[2:] if c.argv[0] != "wall"] == [
        "power-back",
        "replace-battery",
    ]
    assert [c.stdin for c in runner.calls[2:] if c.argv[0] == "wall"] == [
        b"UPS ups1@localhost on line power\n"
    ]
    assert n.statistics().sent == 1 + 3 + 1  # one wall, three hand-overs, one more wall


def test_notifycmd_upssched_without_its_config_is_refused(tmp_path):
    conf = upsmon(tmp_path, "NOTIFYCMD /usr/sbin/upssched\n")
    with pytest.raises(ValueError, match="upssched"):
        Notifier(conf)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="command_timeout"):
        Notifier(upsmon(tmp_path), command_timeout=-1)
    with pytest.raises(ValueError, match="queue_size"):
        Notifier(upsmon(tmp_path), queue_size=0)


async def test_run_twice_is_refused(tmp_path, nursery):
    n = Notifier(upsmon(tmp_path), use_syslog=False)
    await nursery.start(n.run)
    with pytest.raises(RuntimeError, match="already running"):
        await n.run()


# -- nuttrio notify-test -------------------------------------------------------------------------


async def test_notify_test_uses_every_sink_whatever_the_flags(tmp_path, caplog):
    script, out = recorder(tmp_path)
    wall, wall_out = recorder(tmp_path, "wall.py")
    conf = upsmon(
        tmp_path,
        f"NOTIFYCMD {script}\n" + "".join(f"NOTIFYFLAG {t} IGNORE\n" for t in ("ONBATT",)),
    )
    n = Notifier(conf, use_syslog=False, wall_command=[str(wall)])
    lines = await n.test()
    assert lines == [
        "syslog: ok (Python logging only; system log: disabled)",
        f"wall ({wall}): ok",
        f"NOTIFYCMD ({script}): ok",
    ]
    assert TEST_MESSAGE in caplog.text
    assert records(wall_out) == [
        {
            "argv": [],
            "env": {"UPSNAME": None, "NOTIFYTYPE": None, "NOTIFYMSG": None, "INHERITED": None},
            "stdin": TEST_MESSAGE + "\n",
        }
    ]
    assert records(out) == [
        {
            "argv": [TEST_MESSAGE],
            "env": {
                "UPSNAME": "",
                "NOTIFYTYPE": "NOTIFYTEST",
                "NOTIFYMSG": None,
                "INHERITED": None,
            },
            "stdin": "",
        }
    ]
    assert n.statistics() == NotifierStatistics(queued=0, sent=0, failed=0, dropped=0)


async def test_notify_test_reports_failures_and_missing_sinks(tmp_path, monkeypatch):
    import syslog

    monkeypatch.setattr(syslog, "syslog", lambda *args: None)
    failing = Notifier(
        upsmon(tmp_path, f"NOTIFYCMD {tmp_path / 'absent'}\n"),
        wall_command=("sh", "-c", "exit 2"),
    )
    assert await failing.test() == [
        "syslog: ok",
        "wall (sh -c 'exit 2'): exit status 2",
        f"NOTIFYCMD ({tmp_path / 'absent'}): could not run: No such file or directory: "
        f"{tmp_path / 'absent'}",
    ]
    bare = Notifier(upsmon(tmp_path), use_syslog=False, wall_command=())
    assert await bare.test() == [
        "syslog: ok (Python logging only; system log: disabled)",
        "wall: not configured",
        "NOTIFYCMD: not configured",
    ]
    slow = Notifier(
        upsmon(tmp_path), use_syslog=False, wall_command=("sleep", "30"), command_timeout=0.5
    )
    assert (await slow.test())[1] == "wall (sleep 30): timed out after 0.5 s, killed"


async def test_notify_test_runs_upssched_cmdscript(tmp_path):
    script, out = recorder(tmp_path)
    sched_path = tmp_path / "upssched.conf"
    sched_path.write_text(f"CMDSCRIPT {script}\nAT ONBATT * START-TIMER t 30\n")
    n = Notifier(
        upsmon(tmp_path, "NOTIFYCMD upssched\n"),
        upssched=load_upssched_conf(sched_path),
        use_syslog=False,
        wall_command=(),
    )
    lines = await n.test()
    assert lines[2] == f"upssched CMDSCRIPT ({script}): ok"
    assert records(out) == [
        {
            "argv": ["notify-test"],
            "env": {
                "UPSNAME": "",
                "NOTIFYTYPE": "NOTIFYTEST",
                "NOTIFYMSG": TEST_MESSAGE,
                "INHERITED": None,
            },
            "stdin": "",
        }
    ]
    sched_path.write_text("PIPEFN /x\n")
    n = Notifier(
        upsmon(tmp_path, "NOTIFYCMD upssched\n"),
        upssched=load_upssched_conf(sched_path),
        use_syslog=False,
        wall_command=(),
    )
    assert (await n.test())[2] == "upssched CMDSCRIPT: not configured"
