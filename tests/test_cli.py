"""The ``nuttrio`` command, run as a real process: start-up, errors, signals, reload."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from nuttrio.cli import tools
from nuttrio.cli.main import main, parse_listen
from nuttrio.daemon import DaemonOptions
from nuttrio.state import CommandStatus, Variable

from .helpers import ScriptedDriver, wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import free_port, require_real_nut
from .test_example_driver import json_driver

__all__ = ["json_driver"]  # the fixture registering examples/json_file_driver.py


def ask(port: int, data: bytes, *, end: bytes = b"\n", sock: socket.socket | None = None) -> bytes:
    own = sock is None
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(data)
        reply = b""
        while not reply.endswith(end):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply
    finally:
        if own:
            sock.close()


def port_of(ready_line: str) -> int:
    match = re.search(r"127\.0\.0\.1:(\d+)", ready_line)
    assert match, ready_line
    return int(match.group(1))


def write_conf(
    d: Path, ups: str, users: str = "[mon]\n password = pw\n upsmon secondary\n"
) -> Path:
    d.mkdir(exist_ok=True)
    (d / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
    (d / "ups.conf").write_text(ups)
    (d / "upsd.users").write_text(users)
    (d / "a.dev").write_text("ups.status: OL\nbattery.charge: 90\n")
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:3493", ("127.0.0.1", 3493)),
        ("localhost", ("localhost", 3493)),
        ("[::1]:0", ("::1", 0)),
        ("[::1]", ("::1", 3493)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("::1", ("::1", 3493)),
    ],
)
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", ":1", "h:x", "h:70000", "[::1", "[::1]x"])
def test_parse_listen_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen(text)


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "nuttrio", "--help"], capture_output=True, text=True, check=True
    ).stdout
    options = ("--attach", "--nut-config", "--listen", "--max-line", "--version", "--nut-driver")
    for option in (*options, "--external-drivers"):
        assert option in out


def test_default_serves_the_simulated_ups_and_stops_on_sigterm():
    with NuttrioProcess(["--listen", "127.0.0.1:0"]) as proc:
        port = port_of(proc.ready_line)
        assert f"upsc sim@127.0.0.1:{port}" in proc.ready_line
        assert ask(port, b"GET VAR sim ups.status\n") == b'VAR sim ups.status "OL"\n'
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert ask(port, b"VER\n", sock=held).startswith(b"Network UPS Tools upsd 2.8.0")
        assert proc.stop(signal.SIGTERM) == 0
        assert held.recv(100) == b""  # the connection was closed on the way out
        held.close()


def test_signals_repeated_while_stopping_are_absorbed():
    # What `timeout` and systemd do: the group gets SIGTERM, and again, within milliseconds.
    with NuttrioProcess(["--listen", "127.0.0.1:0"]) as proc:
        assert proc.proc is not None
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while proc.proc.poll() is None and time.monotonic() < deadline:
            for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    break
            time.sleep(0.0005)
        assert proc.stop() == 0, proc.stderr


def test_sigusr1_without_a_manager_says_so():
    with NuttrioProcess(["--listen", "127.0.0.1:0"]) as proc:
        port = port_of(proc.ready_line)
        proc.send_signal(signal.SIGUSR1)
        assert ask(port, b"VER\n").startswith(b"Network UPS Tools")  # still serving
        proc.wait_for_log("SIGUSR1 ignored: no manager runs in this process")
        assert proc.stop() == 0


def test_start_line_for_an_ipv6_listener_is_a_valid_upsc_target():
    with NuttrioProcess(["--listen", "[::1]:0"]) as proc:
        match = re.search(r"upsc (sim@\[::1\]:(\d+))$", proc.ready_line)
        assert match, proc.ready_line
        with socket.create_connection(("::1", int(match.group(2))), timeout=5) as sock:
            sock.sendall(b"GET VAR sim ups.status\n")
            assert sock.recv(100) == b'VAR sim ups.status "OL"\n'


@pytest.mark.parametrize("value", ["0", "-5", "x"])
def test_max_line_must_be_positive(value):
    result = run_cli("--max-line", value)
    assert result.returncode == 2
    assert "--max-line" in result.stderr


def test_sigint_stops_cleanly_too():
    with NuttrioProcess(["--listen", "127.0.0.1:0"]) as proc:
        assert proc.stop(signal.SIGINT) == 0


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"ups.conf": '[a]\n driver = dummy-ups\n port = a.dev\n desc = "x#y"\n'}, "ups.conf:4"),
        ({"ups.conf": "[a]\n driver = apc_modbus\n port = auto\n"}, "apc_modbus"),
        ({"ups.conf": "[a]\n driver = dummy-ups\n port = missing.dev\n"}, "missing.dev"),
        ({"upsd.conf": "LISTEN 127.0.0.1 3493\nMAXAGE soon\n"}, "upsd.conf:2"),
        ({"ups.conf": "# none\n"}, "no UPS is defined"),
    ],
)
def test_bad_configuration_is_refused_with_file_and_line(tmp_path, files, message):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    for name, text in files.items():
        (d / name).write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "nuttrio", "--attach", "--nut-config", str(d)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert message in result.stderr


def test_missing_upsd_conf_is_fatal(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "upsd.conf").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "nuttrio", "--nut-config", str(d)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "upsd.conf" in result.stderr


def test_nut_confpath_is_read(tmp_path):
    d = write_conf(tmp_path / "conf", "[fromenv]\n driver = dummy-ups\n port = a.dev\n")
    with NuttrioProcess(["--listen", "127.0.0.1:0"], env={"NUT_CONFPATH": str(d)}) as proc:
        port = port_of(proc.ready_line)
        assert "fromenv" in proc.ready_line
        assert ask(port, b"GET VAR fromenv battery.charge\n") == (
            b'VAR fromenv battery.charge "90"\n'
        )


def test_sighup_reloads_ups_conf_and_users_without_dropping_connections(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    with NuttrioProcess(["--nut-config", str(d), "--listen", "127.0.0.1:0"]) as proc:
        port = port_of(proc.ready_line)
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert ask(port, b"USERNAME mon\nPASSWORD new\n", end=b"OK\nOK\n", sock=held)
        assert ask(port, b"LOGIN a\n", sock=held) == b"ERR ACCESS-DENIED\n"
        (d / "ups.conf").write_text(
            "[a]\n driver = dummy-ups\n port = a.dev\n"
            "[b]\n driver = dummy-ups\n port = a.dev\n desc = added\n"
        )
        (d / "upsd.users").write_text("[mon]\n password = new\n upsmon secondary\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b"UPS b" in ask(port, b"LIST UPS\n", end=b"END LIST UPS\n"), 10, "UPS b")
        assert ask(port, b"LOGIN a\n", sock=held) == b"OK\n"  # same connection, new users
        assert ask(port, b"GET UPSDESC b\n") == b'UPSDESC b "added"\n'
        # A broken file on reload keeps the running configuration.
        (d / "ups.conf").write_text("[a]\n driver = dummy-ups\n")
        proc.send_signal(signal.SIGHUP)
        assert "ups.conf" in proc.wait_for_log("reload failed, keeping the running configuration")
        assert b"UPS b" in ask(port, b"LIST UPS\n", end=b"END LIST UPS\n")
        held.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nuttrio", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


#: upsmon.conf line for tests whose commands write into ``tmp_path`` (root's only): as
#: root, NOTIFYCMD and CMDSCRIPT would otherwise run as the default user ``nut``.
AS_ROOT = "RUN_AS_USER root\n"


def write_upsmon(d: Path, body: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / "upsmon.conf").write_text(body)
    (d / "upsmon.conf").chmod(0o600)
    return d


def test_killpower_check_exit_codes(tmp_path):
    flag = tmp_path / "killpower"
    d = write_upsmon(
        tmp_path / "c",
        f"MONITOR u@localhost 1 m p secondary\nSHUTDOWNCMD true\nPOWERDOWNFLAG {flag}\n",
    )
    assert run_cli("--killpower-check", "--nut-config", str(d)).returncode == 1  # absent
    flag.write_text("something else")
    assert run_cli("--killpower-check", "--nut-config", str(d)).returncode == 1
    flag.write_text("upsmon-shutdown-file")
    assert run_cli("--killpower-check", "--nut-config", str(d)).returncode == 0
    no_flag = write_upsmon(tmp_path / "n", "MONITOR u@localhost 1 m p secondary\n")
    assert run_cli("--killpower-check", "--nut-config", str(no_flag)).returncode == 1


def test_manager_roles_need_upsmon_conf(tmp_path):
    result = run_cli(
        "--secondary", env={k: v for k, v in os.environ.items() if k != "NUT_CONFPATH"}
    )
    assert result.returncode == 2
    assert "upsmon.conf" in result.stderr
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    result = run_cli("--primary", "--nut-config", str(d))
    assert result.returncode == 2
    assert "upsmon.conf" in result.stderr


def test_why_and_notify_test(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    with NuttrioProcess(["--nut-config", str(d), "--listen", "127.0.0.1:0"]) as proc:
        port = port_of(proc.ready_line)
        (d / "a.dev").write_text("ups.status: OB LB\nbattery.charge: 9\n")
        out = tmp_path / "notified"
        script = tmp_path / "notify.sh"
        script.write_text(f'#!/bin/sh\necho "$NOTIFYTYPE $1" >> {out}\n')
        script.chmod(0o755)
        conf = write_upsmon(
            tmp_path / "mon",
            f"MONITOR a@127.0.0.1:{port} 1 mon pw secondary\n"
            f"MONITOR nope@127.0.0.1:{port} 0 mon pw secondary\n"
            f"SHUTDOWNCMD true\nNOTIFYCMD {script}\nNUTTRIO_CHARGE_BELOW 20\n{AS_ROOT}",
        )
        why = run_cli("why", "--nut-config", str(conf))
        assert why.returncode == 0, why.stderr
        lines = why.stdout.splitlines()
        assert lines[0].startswith(f"a@127.0.0.1:{port}: ")
        assert "nope@" in lines[1]
        assert lines[-1].startswith("power supplies fed: ")
        test = run_cli("notify-test", "--nut-config", str(conf))
        assert "syslog: ok" in test.stdout
        assert f"NOTIFYCMD ({script}): ok" in test.stdout
        assert out.read_text().startswith("NOTIFYTEST nuttrio notify-test")


def test_why_explains_a_critical_ups(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "a.dev").write_text("ups.status: OB\nbattery.charge: 9\n")
    with NuttrioProcess(["--nut-config", str(d), "--listen", "127.0.0.1:0"]) as proc:
        port = port_of(proc.ready_line)
        conf = write_upsmon(
            tmp_path / "mon",
            f"MONITOR a@127.0.0.1:{port} 1 mon pw secondary\nSHUTDOWNCMD true\n"
            "NUTTRIO_CHARGE_BELOW 20\n",
        )
        why = run_cli("why", "--nut-config", str(conf))
        assert why.stdout.splitlines() == [
            f"a@127.0.0.1:{port}: CRITICAL: battery.charge 9 % below NUTTRIO_CHARGE_BELOW 20",
            "power supplies fed: 0, MINSUPPLIES: 1; shut down now: yes",
        ]


def test_shutdown_ups_reports_what_the_driver_answers(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    result = run_cli("--shutdown-ups", "a", "--nut-config", str(d))
    # dummy-ups -k says "shutdown not supported" and sends nothing, as NUT's.
    assert result.returncode == 1
    assert result.stdout == ""
    assert "nuttrio: UPS a: shutdown not supported (driver dummy-ups)" in result.stderr
    missing = run_cli("--shutdown-ups", "zz", "--nut-config", str(d))
    assert missing.returncode == 2
    assert "no UPS named 'zz'" in missing.stderr


def test_shutdown_ups_runs_a_nut_driver_with_minus_k(tmp_path):
    require_real_nut()
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "a.dev").write_text("ups.status: OL\n")
    # upsdrvctl shutdown runs ``dummy-ups -a a -k``: it prints this and exits 1.
    result = run_cli("--shutdown-ups", "a", "--nut-driver", "a", "--nut-config", str(d))
    assert result.returncode == 1
    assert "the dummy-ups shutdown sequence" in result.stdout
    assert "UPS a: dummy-ups -k exited with 1: shutdown not supported" in result.stderr


def test_notify_test_through_an_upssched_file(tmp_path):
    out = tmp_path / "cmdscript.out"
    script = tmp_path / "cmdscript.sh"
    script.write_text(f'#!/bin/sh\necho "$1 $NOTIFYTYPE" >> {out}\n')
    script.chmod(0o755)
    sched = tmp_path / "my-upssched.conf"
    sched.write_text(f"CMDSCRIPT {script}\nAT ONBATT * START-TIMER onbatt 30\n")
    conf = write_upsmon(
        tmp_path / "mon", f"MONITOR u@127.0.0.1:9 1 m p secondary\nSHUTDOWNCMD true\n{AS_ROOT}"
    )
    result = run_cli("notify-test", "--nut-config", str(conf), "--upssched", str(sched))
    assert f"upssched CMDSCRIPT ({script}): ok" in result.stdout
    assert out.read_text() == "notify-test NOTIFYTEST\n"


def test_sigusr1_starts_the_shutdown_as_upsmon_c_fsd(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    done = tmp_path / "shutdown"
    (d / "upsd.users").write_text("[admin]\n password = pw\n upsmon primary\n")
    port = free_port()  # the MONITOR line names the listener's port, so it is fixed here
    write_upsmon(
        d,
        f'MONITOR a@localhost:{port} 1 admin pw primary\nSHUTDOWNCMD "touch {done}"\n'
        "FINALDELAY 0\nNOTIFYFLAG SHUTDOWN SYSLOG\n",
    )
    listen = f"127.0.0.1:{port}"
    with NuttrioProcess(["--primary", "--nut-config", str(d), "--listen", listen]) as proc:
        proc.send_signal(signal.SIGUSR1)
        wait_until(done.exists, 10, "the shutdown SIGUSR1 starts")
        assert ask(port, b"GET VAR a ups.status\n") == b'VAR a ups.status "FSD OL"\n'
        # SHUTDOWNEXIT 0: the manager ended after SHUTDOWNCMD (as upsmon exits), so its own
        # login is gone too, while the attachment daemon keeps serving.
        assert ask(port, b"GET NUMLOGINS a\n") == b"NUMLOGINS a 0\n"


def test_a_secondary_lets_its_last_notifications_finish_before_exiting(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "upsd.users").write_text(
        "[admin]\n password = pw\n upsmon primary\n[mon]\n password = pw\n upsmon secondary\n"
    )
    slow = tmp_path / "slow.sh"
    stamps = tmp_path / "stamps"
    slow.write_text(f'#!/bin/sh\nsleep 0.5\necho "$NOTIFYTYPE" >> {stamps}\n')
    slow.chmod(0o755)
    with NuttrioProcess(["--nut-config", str(d), "--listen", "127.0.0.1:0"]) as server:
        port = port_of(server.ready_line)
        mon = write_upsmon(
            tmp_path / "mon",
            f"MONITOR a@127.0.0.1:{port} 1 mon pw secondary\nSHUTDOWNCMD true\n"
            f"NOTIFYCMD {slow}\nNOTIFYFLAG FSD EXEC\nNOTIFYFLAG SHUTDOWN EXEC\n"
            f"POLLFREQ 1\nFINALDELAY 0\n{AS_ROOT}",
        )
        with NuttrioProcess(["--secondary", "--nut-config", str(mon)]) as secondary:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            assert ask(port, b"USERNAME admin\nPASSWORD pw\nFSD a\n", end=b"FSD-SET\n", sock=sock)
            sock.close()
            assert secondary.proc.wait(20) == 0
        # Both slow notifications ran to the end although the shutdown came first.
        assert stamps.read_text().split() == ["FSD", "SHUTDOWN"]


def test_primary_refuses_a_monitor_upsd_users_would_refuse(tmp_path):
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "upsd.users").write_text("[admin]\n password = pw\n upsmon primary\n")
    port = free_port()
    write_upsmon(d, f"MONITOR a@localhost:{port} 1 admin wrong primary\nSHUTDOWNCMD true\n")
    result = run_cli("--primary", "--nut-config", str(d), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"{d / 'upsmon.conf'}:1: MONITOR a@localhost:{port}" in result.stderr
    assert "password of user 'admin'" in result.stderr


def listen_conf(tmp_path: Path, lines: str) -> Path:
    d = write_conf(tmp_path / "conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
    (d / "upsd.conf").write_text(lines)
    return d


def test_two_listen_lines_on_one_address_serve_with_a_warning(tmp_path):
    # NUT's integration suite writes both; localhost resolves to 127.0.0.1 here.
    port = free_port()
    d = listen_conf(tmp_path, f"LISTEN 127.0.0.1 {port}\nLISTEN localhost {port}\n")
    with NuttrioProcess(["--nut-config", str(d)]) as proc:
        assert ask(port, b"GET VAR a ups.status\n") == b'VAR a ups.status "OL"\n'
        assert proc.stop() == 0
    assert f"upsd.conf:2: not listening on localhost port {port}" in proc.stderr


def test_a_listen_line_that_cannot_bind_is_skipped_while_another_works(tmp_path):
    port = free_port()
    d = listen_conf(tmp_path, f"LISTEN 192.0.2.1 {port}\nLISTEN 127.0.0.1 {port}\n")
    with NuttrioProcess(["--nut-config", str(d)]) as proc:
        assert ask(port, b"VER\n").startswith(b"Network UPS Tools")
        assert proc.stop() == 0
    assert f"upsd.conf:1: not listening on 192.0.2.1 port {port}: [Errno 99]" in proc.stderr


def test_no_listener_at_all_is_fatal_with_the_line_and_address(tmp_path):
    d = listen_conf(tmp_path, "LISTEN 192.0.2.1 3493\n")
    result = run_cli("--nut-config", str(d))
    assert result.returncode == 2
    assert "upsd.conf:1: not listening on 192.0.2.1 port 3493: [Errno 99]" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("192.0.2.1:0", "--listen 192.0.2.1:0: not listening on 192.0.2.1 port 0: [Errno 99]"),
        ("no-such-host.invalid:0", "--listen no-such-host.invalid:0: not listening on"),
    ],
)
def test_a_listen_flag_that_cannot_bind_is_fatal(address, message):
    result = run_cli("--listen", "127.0.0.1:0", "--listen", address)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("commands", "answer", "out", "err"),
    [
        (
            ["load.off", "shutdown.return"],
            CommandStatus.SUCCESS,
            "shutdown.return: cut the load after 20 s (ups.delay.shutdown) and restore it "
            "when the power returns",
            "",
        ),
        (["load.off"], CommandStatus.SUCCESS, "load.off: cut the load now", ""),
        (
            ["shutdown.stayoff"],
            CommandStatus.UNKNOWN,
            "shutdown.stayoff: cut the load after 20 s (ups.delay.shutdown) and keep it off",
            "shutdown.stayoff failed: the driver does not handle it",
        ),
    ],
)
def test_shutdown_ups_says_what_each_command_does(
    tmp_path, monkeypatch, capsys, commands, answer, out, err
):
    d = write_conf(tmp_path / "conf", "[a]\n driver = fake-ups\n port = auto\n")
    driver = ScriptedDriver(
        [Variable(name="ups.status", value="OL"), Variable(name="ups.delay.shutdown", value="20")],
        commands,
        answer,
    )
    monkeypatch.setattr(tools, "create_driver", lambda section, confdir: driver)
    options = DaemonOptions(confdir=d)
    if err:
        with pytest.raises(tools.ToolError, match=err):
            trio.run(tools.shutdown_ups, options, "a")
    else:
        assert trio.run(tools.shutdown_ups, options, "a") == 0
    assert capsys.readouterr().out == f"nuttrio: UPS a: {out}\n"
    assert [c.name for c in driver.received] == [out.split(":")[0]]


def test_shutdown_ups_without_any_shutdown_is_not_supported(tmp_path, capsys, json_driver):
    """json-file has no shutdown() and no shutdown command: NUT's words, exit 1."""
    d = write_conf(tmp_path / "conf", "[j]\n driver = json-file\n port = j.json\n")
    (d / "j.json").write_text('{"ups.status": "OL"}')
    assert not hasattr(json_driver.JsonFileUps, "shutdown")
    assert main(["--shutdown-ups", "j", "--nut-config", str(d)]) == 1
    offered = ", ".join(tools.SHUTDOWN_COMMANDS)
    assert capsys.readouterr() == (
        "",
        f"nuttrio: UPS j: shutdown not supported (the driver offers none of {offered})\n",
    )


def test_shutdown_ups_sends_nothing_when_no_shutdown_command_is_offered(tmp_path, monkeypatch):
    d = write_conf(tmp_path / "conf", "[a]\n driver = fake-ups\n port = auto\n")
    driver = ScriptedDriver([Variable(name="ups.status", value="OL")], ["beeper.toggle"])
    monkeypatch.setattr(tools, "create_driver", lambda section, confdir: driver)
    with pytest.raises(tools.ToolError, match=r"^UPS a: shutdown not supported \(the driver"):
        trio.run(tools.shutdown_ups, DaemonOptions(confdir=d), "a")
    assert driver.received == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["why"], "nuttrio why"),
        (["notify-test"], "nuttrio notify-test"),
        (["--killpower-check"], "nuttrio --killpower-check"),
    ],
)
def test_a_command_without_configuration_names_itself(args, named):
    env = {k: v for k, v in os.environ.items() if k != "NUT_CONFPATH"}
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert f"{named} needs a NUT configuration directory with upsmon.conf" in result.stderr
    assert "--attach" not in result.stderr


@pytest.mark.parametrize(
    "command", ["why", "notify-test", "cert", "scan", "hid-record", "hid-explore"]
)
def test_each_subcommand_has_its_own_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: nuttrio {command} ")
    assert "--listen" not in result.stdout  # the daemon's options are not the command's


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("h:x", "the port must be a number 0-65535, not 'x'"),
        ("[::1", "missing ']' after the address"),
    ],
)
def test_a_bad_listen_address_is_a_usage_error(address, reason):
    result = run_cli("--listen", address)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: nuttrio ")
    assert result.stderr.endswith(
        f"nuttrio: error: argument --listen: bad address {address!r}: {reason}\n"
    )


def test_nut_config_help_lists_every_file_read():
    out = " ".join(run_cli("--help").stdout.split())
    for name in ("ups.conf", "upsd.conf", "upsd.users", "upsmon.conf", "upssched.conf", ".dev"):
        assert name in out


def test_options_before_a_subcommand_are_kept(tmp_path):
    conf = write_upsmon(
        tmp_path / "mon", "MONITOR u@127.0.0.1:9 1 m p secondary\nSHUTDOWNCMD true\n"
    )
    result = run_cli("--nut-config", str(conf), "notify-test")
    assert "syslog: ok" in result.stdout, result.stderr


def test_syslog_sends_each_record_to_the_socket_as_one_datagram(tmp_path):
    """``--syslog SOCKET``: one syslog datagram per record (daemon facility), none on stderr."""
    import socket

    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(str(path))
        sink.settimeout(20)
        with NuttrioProcess(["-v", "--syslog", str(path), "--listen", "127.0.0.1:0"]) as proc:
            assert proc.stop(signal.SIGTERM) == 0
            assert "SIGTERM" not in proc.stderr
        record = sink.recv(4096).decode()
    # <30> = facility daemon (3) * 8 + info (6)
    assert re.match(r"<30>nuttrio\[\d+\]: nuttrio INFO: SIGTERM: stopping", record), record


def test_syslog_without_a_socket_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nuttrio", "--syslog", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"--syslog {tmp_path / 'none'}" in result.stderr
