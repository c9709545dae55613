"""The in-process upssched: AT rules on Trio timers, exact virtual times, CMDSCRIPT env."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from nuttrio.mgmt.process import command_words, run_command
from nuttrio.mgmt.upssched import TimerInfo, Upssched, UpsschedStatistics
from nuttrio.nutconf import load_upssched_conf

from .helpers import FakeRunner, recorder, records

SCRIPT = "/usr/local/bin/upssched-cmd"
U1 = "ups1@localhost"
U2 = "ups2@localhost"


def sched_conf(tmp_path: Path, rules: str, cmdscript: str = SCRIPT):
    path = tmp_path / "upssched.conf"
    path.write_text(
        f"CMDSCRIPT {cmdscript}\nPIPEFN /run/x.pipe\nLOCKFN /run/x.lock\n{rules}", encoding="utf-8"
    )
    return load_upssched_conf(path)


async def started(nursery, tmp_path, rules, **kw):
    runner = kw.pop("runner", None) or FakeRunner(kw.pop("durations", None))
    sched = Upssched(sched_conf(tmp_path, rules), runner=runner, **kw)
    await nursery.start(sched.run)
    return sched, runner


def env(ups, ntype, msg):
    return {"UPSNAME": ups, "NOTIFYTYPE": ntype, "NOTIFYMSG": msg}


# -- START / CANCEL --------------------------------------------------------------------------


async def test_timer_fires_cmdscript_with_its_name_at_the_exact_time(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(nursery, tmp_path, "AT ONBATT * START-TIMER onbatt 30\n")
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "UPS ups1@localhost on battery")
    assert [(t.name, t.remaining) for t in sched.timers()] == [("onbatt", 30)]
    await trio.sleep(29.5)
    assert runner.calls == []
    await trio.sleep(100)
    [call] = runner.calls
    assert call.start - t0 == 30
    assert call.argv == (SCRIPT, "onbatt")
    assert call.env == env(U1, "ONBATT", "UPS ups1@localhost on battery")
    assert call.time_limit == 30.0
    assert sched.timers() == []
    assert sched.statistics() == UpsschedStatistics(
        timers=0, queued=0, succeeded=1, failed=0, dropped=0
    )


async def test_cancel_timer_stops_it(nursery, tmp_path, autojump_clock):
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT ONBATT * START-TIMER onbatt 30\nAT ONLINE * CANCEL-TIMER onbatt\n",
    )
    sched.handle("ONBATT", U1, "")
    await trio.sleep(10)
    sched.handle("ONLINE", U1, "")
    assert sched.timers() == []
    await trio.sleep(1000)
    assert runner.calls == []


async def test_cancel_timer_with_command_runs_it_only_when_no_timer_was_running(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT ONBATT * START-TIMER onbatt 30\nAT ONLINE * CANCEL-TIMER onbatt online-again\n",
    )
    t0 = trio.current_time()
    # Power returns before the timer fired: cancelled, no command.
    sched.handle("ONBATT", U1, "on battery")
    await trio.sleep(10)
    sched.handle("ONLINE", U1, "on line")
    await trio.sleep(100)
    assert runner.calls == []
    # Power returns after the timer fired: the command runs at once.
    sched.handle("ONBATT", U1, "on battery")
    await trio.sleep(40)
    sched.handle("ONLINE", U1, "on line")
    await sched.drain()
    assert [(c.start - t0, c.argv[-1]) for c in runner.calls] == [
        (140, "onbatt"),
        (150, "online-again"),
    ]
    assert runner.calls[1].env == env(U1, "ONLINE", "on line")


async def test_cancel_timer_cancels_every_timer_of_that_name(nursery, tmp_path, autojump_clock):
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT ONBATT * START-TIMER t 30\nAT LOWBATT * START-TIMER-SHARED t 30\n"
        "AT ONLINE ups1@localhost CANCEL-TIMER t\n",
    )
    sched.handle("ONBATT", U1, "")
    sched.handle("ONBATT", U2, "")
    sched.handle("LOWBATT", U2, "")
    assert len(sched.timers()) == 3
    sched.handle("ONLINE", U1, "")
    assert sched.timers() == []
    await trio.sleep(100)
    assert runner.calls == []


async def test_starting_a_running_timer_again_keeps_it_no_duplicate(
    nursery, tmp_path, autojump_clock
):
    # upssched 2.8.0-2.8.5 add a second, independent timer here.
    sched, runner = await started(nursery, tmp_path, "AT ONBATT * START-TIMER onbatt 30\n")
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "first")
    await trio.sleep(10)
    sched.handle("ONBATT", U1, "second")
    [timer] = sched.timers()
    assert timer.deadline - t0 == 30
    assert timer.messages == ("first",)
    await trio.sleep(100)
    assert [(c.start - t0, c.env["NOTIFYMSG"]) for c in runner.calls] == [(30, "first")]


async def test_same_timer_name_for_two_upses_is_two_timers(nursery, tmp_path, autojump_clock):
    sched, runner = await started(nursery, tmp_path, "AT ONBATT * START-TIMER onbatt 30\n")
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "m1")
    await trio.sleep(5)
    sched.handle("ONBATT", U2, "m2")
    assert [(t.upsnames, t.deadline - t0) for t in sched.timers()] == [((U1,), 30), ((U2,), 35)]
    await trio.sleep(100)
    assert [(c.start - t0, c.env["UPSNAME"]) for c in runner.calls] == [(30, U1), (35, U2)]


# -- shared timers -----------------------------------------------------------------------------

SHARED = (
    "AT ONBATT * START-TIMER-SHARED anyonbatt 60\nAT ONLINE * CANCEL-TIMER-MATCHED anyonbatt back\n"
)


async def test_shared_timer_fires_once_with_every_ups_that_asked(nursery, tmp_path, autojump_clock):
    sched, runner = await started(nursery, tmp_path, SHARED)
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "UPS ups1 on battery")
    await trio.sleep(10)
    sched.handle("ONBATT", U2, "UPS ups2 on battery")
    sched.handle("ONBATT", U1, "UPS ups1 on battery")  # asked again: nothing new
    assert sched.timers() == [
        TimerInfo(
            name="anyonbatt",
            deadline=t0 + 60,
            remaining=50,
            shared=True,
            upsnames=(U1, U2),
            notifytypes=("ONBATT",),
            messages=("UPS ups1 on battery", "UPS ups2 on battery"),
        )
    ]
    await trio.sleep(100)
    [call] = runner.calls
    assert call.start - t0 == 60
    assert call.argv == (SCRIPT, "anyonbatt")
    # As upssched 2.8.5: names and types comma-joined, messages joined with ".\t".
    assert call.env == env(f"{U1},{U2}", "ONBATT", "UPS ups1 on battery.\tUPS ups2 on battery")


async def test_cancel_matched_forgets_one_ups_and_cancels_when_none_is_left(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(nursery, tmp_path, SHARED)
    sched.handle("ONBATT", U1, "m1")
    sched.handle("ONBATT", U2, "m2")
    sched.handle("ONLINE", U1, "")
    [timer] = sched.timers()
    assert timer.upsnames == (U2,)
    assert timer.messages == ("m2",)
    sched.handle("ONLINE", U2, "")
    assert sched.timers() == []
    await trio.sleep(1000)
    assert runner.calls == []  # and no "back": each UPS was part of the timer


async def test_shared_timer_env_after_a_ups_left(nursery, tmp_path, autojump_clock):
    sched, runner = await started(nursery, tmp_path, SHARED)
    sched.handle("ONBATT", U1, "m1")
    sched.handle("ONBATT", U2, "m2")
    sched.handle("ONLINE", U1, "")
    await trio.sleep(100)
    assert [c.env for c in runner.calls] == [env(U2, "ONBATT", "m2")]


async def test_cancel_matched_with_command_when_the_ups_had_no_timer(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(nursery, tmp_path, SHARED)
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "m1")
    sched.handle("ONLINE", U2, "ups2 on line")  # ups2 never asked: runs "back" now
    await sched.drain()
    assert [(c.start - t0, c.argv[-1], c.env["UPSNAME"]) for c in runner.calls] == [(0, "back", U2)]
    assert [t.upsnames for t in sched.timers()] == [(U1,)]


async def test_cancel_matched_on_plain_timers_cancels_only_that_upses(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT ONBATT * START-TIMER onbatt 30\nAT ONLINE * CANCEL-TIMER-MATCHED onbatt\n",
    )
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "")
    sched.handle("ONBATT", U2, "")
    sched.handle("ONLINE", U1, "")
    assert [t.upsnames for t in sched.timers()] == [(U2,)]
    await trio.sleep(100)
    assert [(c.start - t0, c.env["UPSNAME"]) for c in runner.calls] == [(30, U2)]


# -- EXECUTE, matching, order ------------------------------------------------------------------


async def test_execute_runs_now_with_the_notification_env(nursery, tmp_path, autojump_clock):
    sched, runner = await started(nursery, tmp_path, 'AT REPLBATT * EXECUTE "replace battery"\n')
    t0 = trio.current_time()
    sched.handle("REPLBATT", U1, "UPS ups1@localhost battery needs to be replaced")
    await sched.drain()
    [call] = runner.calls
    assert call.start == t0
    # One argument, even with a space (upssched 2.8.5's system() made it two words).
    assert call.argv == (SCRIPT, "replace battery")
    assert call.env == env(U1, "REPLBATT", "UPS ups1@localhost battery needs to be replaced")


async def test_rules_apply_in_file_order_type_in_any_case_ups_exact_or_star(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT onbatt * EXECUTE a\n"
        "AT ONBATT ups1@localhost EXECUTE b\n"
        "AT ONBATT ups1 EXECUTE never\n"
        "AT ONLINE * EXECUTE never\n"
        "AT ONBATT * EXECUTE c\n",
    )
    sched.handle("ONBATT", U1, "")
    sched.handle("onbatt", U2, "")
    sched.handle("SHUTDOWN", "", "")
    await sched.drain()
    assert runner.words() == ["a", "b", "c", "a", "c"]


async def test_a_notification_about_no_ups_matches_only_star_rules(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(
        nursery, tmp_path, "AT SHUTDOWN ups1@localhost EXECUTE no\nAT SHUTDOWN * EXECUTE yes\n"
    )
    sched.handle("SHUTDOWN", "", "Auto logout and shutdown proceeding")
    await sched.drain()
    assert runner.words() == ["yes"]
    assert runner.calls[0].env == env("", "SHUTDOWN", "Auto logout and shutdown proceeding")


async def test_a_slow_cmdscript_does_not_delay_timer_expiry(nursery, tmp_path, autojump_clock):
    # One worker: commands run in order; timers still expire on time meanwhile.
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT ONBATT * EXECUTE slow\nAT ONBATT * START-TIMER t 10\n",
        durations={"slow": 25},
    )
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "")
    await trio.sleep(10.5)
    assert sched.timers() == []  # expired at 10 while "slow" was running
    assert sched.statistics().queued == 1
    await trio.sleep(100)
    assert [(c.start - t0, c.end - t0, c.argv[-1]) for c in runner.calls] == [
        (0, 25, "slow"),
        (25, 25, "t"),
    ]


async def test_a_hanging_cmdscript_is_stopped_after_command_timeout(
    nursery, tmp_path, autojump_clock
):
    sched, runner = await started(
        nursery,
        tmp_path,
        "AT ONBATT * EXECUTE hang\nAT ONBATT * EXECUTE next\n",
        durations={"hang": 1000},
        command_timeout=30,
    )
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "")
    await sched.drain()
    assert [(c.start - t0, c.argv[-1]) for c in runner.calls] == [(0, "hang"), (30, "next")]
    stats = sched.statistics()
    assert (stats.succeeded, stats.failed) == (1, 1)


async def test_timers_are_listed_soonest_first_with_their_deadlines(
    nursery, tmp_path, autojump_clock
):
    sched, _ = await started(
        nursery,
        tmp_path,
        "AT ONBATT * START-TIMER long 300\nAT ONBATT * START-TIMER short 30\n"
        "AT LOWBATT * START-TIMER-SHARED low 60\n",
    )
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "ob")
    await trio.sleep(5)
    sched.handle("LOWBATT", U1, "lb")
    assert [(t.name, t.deadline - t0, t.remaining, t.shared) for t in sched.timers()] == [
        ("short", 30, 25, False),
        ("low", 65, 60, True),
        ("long", 300, 295, False),
    ]
    assert sched.statistics().timers == 3


async def test_no_busy_loop_while_a_timer_is_pending(nursery, tmp_path, autojump_clock):
    sched, runner = await started(nursery, tmp_path, "AT ONBATT * START-TIMER t 3600\n")

    class Steps(trio.abc.Instrument):
        count = 0

        def before_task_step(self, task):
            self.count += 1

    steps = Steps()
    sched.handle("ONBATT", U1, "")
    trio.lowlevel.add_instrument(steps)
    try:
        await trio.sleep(3599)
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert steps.count < 10  # upssched 2.8.0's daemon looped at 83 % CPU here
    await trio.sleep(2)
    assert runner.words() == ["t"]


async def test_handle_before_run_counts_from_the_call(tmp_path, autojump_clock):
    runner = FakeRunner()
    sched = Upssched(sched_conf(tmp_path, "AT ONBATT * START-TIMER t 30\n"), runner=runner)
    t0 = trio.current_time()
    sched.handle("ONBATT", U1, "")
    await trio.sleep(10)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    assert [c.start - t0 for c in runner.calls] == [30]


async def test_command_queue_overflow_drops_the_oldest(tmp_path, autojump_clock, caplog):
    runner = FakeRunner()
    rules = "".join(f"AT ONBATT * EXECUTE c{i}\n" for i in range(5))
    sched = Upssched(sched_conf(tmp_path, rules), runner=runner, queue_size=3)
    sched.handle("ONBATT", U1, "")
    assert sched.statistics() == UpsschedStatistics(
        timers=0, queued=3, succeeded=0, failed=0, dropped=2
    )
    assert "command queue full (3): dropped CMDSCRIPT c0" in caplog.text
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        await sched.drain()
        nursery.cancel_scope.cancel()
    assert runner.words() == ["c2", "c3", "c4"]


async def test_run_twice_is_refused(nursery, tmp_path):
    sched, _ = await started(nursery, tmp_path, "AT ONBATT * EXECUTE x\n")
    with pytest.raises(RuntimeError, match="already running"):
        await sched.run()


def test_bad_arguments_are_refused(tmp_path):
    conf = sched_conf(tmp_path, "")
    with pytest.raises(ValueError, match="command_timeout"):
        Upssched(conf, command_timeout=0)
    with pytest.raises(ValueError, match="queue_size"):
        Upssched(conf, queue_size=0)


async def test_no_cmdscript_logs_instead_of_running(tmp_path, autojump_clock, caplog):
    path = tmp_path / "upssched.conf"
    path.write_text("PIPEFN /run/x\n", encoding="utf-8")
    sched = Upssched(load_upssched_conf(path), runner=FakeRunner())
    assert await sched.run_cmdscript("x") is None


# -- real processes ------------------------------------------------------------------------------


async def test_real_cmdscript_gets_argument_and_environment(nursery, tmp_path, monkeypatch):
    monkeypatch.setenv("INHERITED", "yes")
    monkeypatch.setenv("UPSNAME", "stale value from the manager's own environment")
    script, out = recorder(tmp_path)
    conf = sched_conf(
        tmp_path,
        'AT ONBATT * START-TIMER-SHARED onbatt 0\nAT ONLINE * EXECUTE "power back; $HOME"\n',
        cmdscript=str(script),
    )
    sched = Upssched(conf, command_timeout=20)
    await nursery.start(sched.run)
    sched.handle("ONBATT", U1, "UPS ups1@localhost on battery")
    sched.handle("ONBATT", U2, "UPS ups2@localhost on battery")
    await trio.testing.wait_all_tasks_blocked()  # the 0-s timer expired and is queued
    sched.handle("ONLINE", U1, "UPS ups1@localhost on line power")
    await sched.drain()
    assert records(out) == [
        {
            "argv": ["onbatt"],
            "env": {
                "UPSNAME": f"{U1},{U2}",
                "NOTIFYTYPE": "ONBATT",
                "NOTIFYMSG": "UPS ups1@localhost on battery.\tUPS ups2@localhost on battery",
                "INHERITED": "yes",
            },
            "stdin": "",
        },
        {
            "argv": ["power back; $HOME"],  # no shell: one literal argument
            "env": {
                "UPSNAME": U1,
                "NOTIFYTYPE": "ONLINE",
                "NOTIFYMSG": "UPS ups1@localhost on line power",
                "INHERITED": "yes",
            },
            "stdin": "",
        },
    ]
    assert sched.statistics().succeeded == 2


async def test_run_command_reports_how_commands_end(tmp_path):
    limit = 20
    ok = await run_command(["true"], env={"PATH": "/usr/bin:/bin"}, time_limit=limit)
    assert (ok.ok, ok.describe()) == (True, "ok")
    bad = await run_command(["sh", "-c", "exit 3"], env={"PATH": "/usr/bin:/bin"}, time_limit=limit)
    assert (bad.ok, bad.returncode, bad.describe()) == (False, 3, "exit status 3")
    killed = await run_command(["sh", "-c", "kill -9 $$"], env={}, time_limit=limit)
    assert killed.describe() == "killed by signal 9 (SIGKILL)"
    missing = await run_command([str(tmp_path / "nope")], env={}, time_limit=limit)
    assert missing.describe() == f"could not run: No such file or directory: {tmp_path / 'nope'}"
    assert not missing.ok


async def test_run_command_kills_the_process_group_on_timeout(tmp_path):
    pidfile = tmp_path / "pid"
    script = tmp_path / "hang.sh"
    script.write_text(f'#!/bin/sh\necho $$ > "{pidfile}"\nsleep 30\necho never\n')
    script.chmod(0o755)
    start = trio.current_time()
    result = await run_command([str(script)], env={"PATH": "/usr/bin:/bin"}, time_limit=0.5)
    assert trio.current_time() - start < 10
    assert result.timed_out
    assert result.describe() == "timed out after 0.5 s, killed"
    # The shell and its sleep are both dead (at most zombies waiting for init to reap them).
    assert living_members(int(pidfile.read_text())) == []


def living_members(pgid: int) -> list[str]:
    if not Path("/proc/self/stat").exists():  # pragma: no cover - not Linux
        pytest.skip("needs /proc")
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in "ZX" and not kill_pending(stat.parent):
            found.append(text)
    return found


def kill_pending(proc: Path) -> bool:
    """Whether SIGKILL is already queued for the process (it dies when next scheduled)."""
    try:
        status = (proc / "status").read_text()
    except OSError:
        return True  # gone
    pending = 0
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            pending |= int(line.split()[1], 16)
    return bool(pending & (1 << (9 - 1)))


def test_command_words(tmp_path):
    spaced = tmp_path / "my scripts" / "cmd"
    spaced.parent.mkdir()
    spaced.write_text("#!/bin/sh\n")
    assert command_words(str(spaced)) == [str(spaced)]
    assert command_words("/usr/bin/cmd -v 'two words'") == ["/usr/bin/cmd", "-v", "two words"]
    assert command_words("unbalanced 'quote") == ["unbalanced", "'quote"]
