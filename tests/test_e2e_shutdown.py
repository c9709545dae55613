"""The Shutdown Story end to end: real processes on 127.0.0.1, SHUTDOWNCMD writing a file.

a) nuttrio --primary + two nuttrio --secondary + Debian's upsmon as a third secondary;
b) a secondary cut off while OB shuts down after DEADTIME, one cut off while OL does not;
c) nuttrio --secondary against the real upsd + dummy-ups, on OB LB and on FSD;
d) the real upsmon as primary against nuttrio --attach: its FSD reaches a nuttrio secondary.

Timings are shortened (POLLFREQ 1, FINALDELAY 1, ...) so the whole story takes seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from .helpers import wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    RealNut,
    free_port,
    nut_request,
    require_real_nut,
    run_real_upsmon,
    upsmon_binary,
    write_nut_config,
)

pytestmark = pytest.mark.realnut

USERS = """\
[admin]
    password = adminpass
    actions = SET FSD
    instcmds = ALL
    upsmon primary
[mon]
    password = monpass
    upsmon secondary
"""

TIMINGS = "POLLFREQ 1\nPOLLFREQALERT 1\nFINALDELAY 1\nHOSTSYNC 10\nDEADTIME 3\n"


def write_dev(path: Path, status: str) -> None:
    """Rewrite a dummy-ups file; bump its mtime a whole second so the driver re-reads it."""
    old = path.stat().st_mtime if path.exists() else time.time() - 10
    path.write_text(f"ups.status: {status}\nbattery.charge: 50\n")
    os.utime(path, (old + 1, old + 1))


def upsmon_conf(
    d: Path, monitor: str, name: str, order: Path, extra: str = "", *, flag: bool = False
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "upsmon.conf"
    lines = [
        f"MONITOR {monitor}",
        f'SHUTDOWNCMD "echo {name} $(date +%s.%N) >> {order}"',
        TIMINGS,
        # No terminals to spam: notifications go to syslog only.
        *(
            f"NOTIFYFLAG {t} SYSLOG"
            for t in (
                "ONLINE",
                "ONBATT",
                "LOWBATT",
                "FSD",
                "COMMOK",
                "COMMBAD",
                "SHUTDOWN",
                "NOCOMM",
            )
        ),
        extra,
    ]
    if flag:
        lines.append(f"POWERDOWNFLAG {d}/killpower")
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    return d


def attach_conf(d: Path, port: int, ups: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, status in ups.items():
        write_dev(d / f"{name}.dev", status)
    (d / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    (d / "ups.conf").write_text(
        "".join(f"[{n}]\n driver = dummy-ups\n port = {n}.dev\n pollinterval = 1\n" for n in ups)
    )
    (d / "upsd.users").write_text(USERS)
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


def ask(port: int, line: str) -> str:
    """One request line to the server on ``port``; its reply line."""
    return nut_request(port, line.encode() + b"\n").decode().strip()


def shutdowns(order: Path) -> list[tuple[str, float]]:
    if not order.exists():
        return []
    out = []
    for line in order.read_text().splitlines():
        name, stamp = line.split()
        out.append((name, float(stamp)))
    return out


@contextmanager
def real_upsmon(confdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Debian's upsmon (see realnut.run_real_upsmon); the test skips if it is missing."""
    if upsmon_binary() is None:
        pytest.skip("real upsmon not installed (CI installs nut-client)")
    with run_real_upsmon(confdir) as proc:
        yield proc


def secondary(confdir: Path) -> NuttrioProcess:
    return NuttrioProcess(["--secondary", "--nut-config", str(confdir)])


def test_a_primary_waits_for_every_secondary_then_shuts_down_last(tmp_path):
    require_real_nut()
    port, order = free_port(), tmp_path / "order"
    prim = attach_conf(tmp_path / "prim", port, {"ups": "OL"})
    upsmon_conf(
        prim, f"ups@localhost:{port} 1 admin adminpass primary", "primary", order, flag=True
    )
    sec = f"ups@127.0.0.1:{port} 1 mon monpass secondary"
    sec_a = upsmon_conf(tmp_path / "a", sec, "secondaryA", order)
    sec_b = upsmon_conf(tmp_path / "b", sec, "secondaryB", order)
    sec_c = upsmon_conf(tmp_path / "c", sec, "upsmon", order)
    with ExitStack() as stack:
        primary = stack.enter_context(
            NuttrioProcess(
                ["--primary", "--nut-config", str(prim), "--listen", f"127.0.0.1:{port}"]
            )
        )
        a = stack.enter_context(secondary(sec_a))
        b = stack.enter_context(secondary(sec_b))
        upsmon = stack.enter_context(real_upsmon(sec_c))
        wait_until(lambda: ask(port, "GET NUMLOGINS ups") == "NUMLOGINS ups 4", 20, "4 logins")
        write_dev(prim / "ups.dev", "OB")
        wait_until(
            lambda: ask(port, "GET VAR ups ups.status") == 'VAR ups ups.status "OB"', 10, "OB"
        )
        write_dev(prim / "ups.dev", "OB LB")
        wait_until(lambda: any(n == "primary" for n, _ in shutdowns(order)), 40, "the primary")
        done = dict(shutdowns(order))
        assert set(done) == {"secondaryA", "secondaryB", "upsmon", "primary"}
        assert all(done[s] < done["primary"] for s in ("secondaryA", "secondaryB", "upsmon"))
        # The secondaries exit after their SHUTDOWNCMD (SHUTDOWNEXIT 0); the primary keeps
        # serving (the system's shutdown stops it) and wrote the power-down flag.
        assert a.proc.wait(10) == 0
        assert b.proc.wait(10) == 0
        assert upsmon.wait(10) == 0
        assert (prim / "killpower").read_text() == "upsmon-shutdown-file"
        assert primary.proc.poll() is None
        killpower = subprocess.run(
            [*primary.args[:3], "--killpower-check", "--nut-config", str(prim)], check=False
        )
        assert killpower.returncode == 0


def test_b_cut_off_while_on_battery_shuts_down_while_online_does_not(tmp_path):
    port, order = free_port(), tmp_path / "order"
    server_dir = attach_conf(tmp_path / "srv", port, {"ob": "OB", "ol": "OL"})
    s_ob = upsmon_conf(
        tmp_path / "sob", f"ob@127.0.0.1:{port} 1 mon monpass secondary", "ob", order
    )
    # NOCOMMWARNTIME past DEADTIME: the online secondary's NOCOMM says that it has been
    # without its server longer than DEADTIME, and so has made its decision.
    s_ol = upsmon_conf(
        tmp_path / "sol",
        f"ol@127.0.0.1:{port} 1 mon monpass secondary",
        "ol",
        order,
        "NOCOMMWARNTIME 5",
    )
    with ExitStack() as stack:
        server = stack.enter_context(NuttrioProcess(["--attach", "--nut-config", str(server_dir)]))
        on_batt = stack.enter_context(secondary(s_ob))
        on_line = stack.enter_context(secondary(s_ol))
        wait_until(lambda: ask(port, "GET NUMLOGINS ob") == "NUMLOGINS ob 1", 10, "ob login")
        wait_until(lambda: ask(port, "GET NUMLOGINS ol") == "NUMLOGINS ol 1", 10, "ol login")
        # Each has read its UPS's status: ob says so (ONBATT, SYSLOG: its log); ol read
        # OL in the same exchange as its LOGIN (GET VAR follows LOGIN at once).
        on_batt.wait_for_log("on battery")
        cut = time.time()
        server.stop(signal.SIGKILL)
        wait_until(lambda: shutdowns(order), 15, "the on-battery secondary")
        (name, stamp), *rest = shutdowns(order)
        assert name == "ob"
        assert 3 <= stamp - cut <= 3 + 1 + 3  # DEADTIME 3 + FINALDELAY 1 + polling
        assert on_batt.proc.wait(10) == 0
        on_line.wait_for_log(f"UPS ol@127.0.0.1:{port} is unavailable", timeout=15)  # NOCOMM
        # NOCOMMWARNTIME 5 after its last good poll, at most POLLFREQ 1 before the cut:
        # past DEADTIME 3, and still no shutdown of the online one.
        assert time.time() - cut >= 4
        assert rest == []
        assert [n for n, _ in shutdowns(order)] == ["ob"]
        assert on_line.proc.poll() is None


def test_c_nuttrio_secondary_against_the_real_upsd(tmp_path):
    require_real_nut()
    order = tmp_path / "order"
    confdir = tmp_path / "nut"
    confdir.mkdir()
    for name in ("oblb", "fsd"):
        (confdir / f"{name}.dev").write_text("ups.status: OL\n")
    port = free_port()
    write_nut_config(
        confdir,
        port=port,
        ups={"oblb": {"port": "oblb.dev"}, "fsd": {"port": "fsd.dev"}},
        users=USERS,
    )
    s1 = upsmon_conf(
        tmp_path / "s1", f"oblb@127.0.0.1:{port} 1 mon monpass secondary", "oblb", order
    )
    s2 = upsmon_conf(tmp_path / "s2", f"fsd@127.0.0.1:{port} 1 mon monpass secondary", "fsd", order)
    with RealNut(confdir), secondary(s1) as first, secondary(s2) as second:
        wait_until(lambda: ask(port, "GET NUMLOGINS oblb") == "NUMLOGINS oblb 1", 10, "login 1")
        wait_until(lambda: ask(port, "GET NUMLOGINS fsd") == "NUMLOGINS fsd 1", 10, "login 2")
        start = time.time()
        write_dev(confdir / "oblb.dev", "OB LB")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"USERNAME admin\nPASSWORD adminpass\nFSD fsd\n")
            data = b""
            while data.count(b"\n") < 3:
                data += s.recv(100)
            assert data == b"OK\nOK\nOK FSD-SET\n"
        wait_until(lambda: len(shutdowns(order)) == 2, 30, "both secondaries")
        done = dict(shutdowns(order))
        # FSD: next poll + FINALDELAY; OB LB without a primary: HOSTSYNC (10) + FINALDELAY.
        assert done["fsd"] - start < 5
        assert done["oblb"] - start >= 10
        assert first.proc.wait(10) == 0
        assert second.proc.wait(10) == 0
        wait_until(lambda: ask(port, "GET NUMLOGINS fsd") == "NUMLOGINS fsd 0", 10, "logout")


def test_d_real_upsmon_primary_fsd_reaches_a_nuttrio_secondary(tmp_path):
    require_real_nut()
    port, order = free_port(), tmp_path / "order"
    server_dir = attach_conf(tmp_path / "srv", port, {"ups": "OL"})
    prim = upsmon_conf(
        tmp_path / "prim", f"ups@127.0.0.1:{port} 1 admin adminpass primary", "upsmon", order
    )
    sec = upsmon_conf(
        tmp_path / "sec", f"ups@127.0.0.1:{port} 1 mon monpass secondary", "nuttrio", order
    )
    with (
        NuttrioProcess(["--attach", "--nut-config", str(server_dir)]),
        secondary(sec) as nut_secondary,
        real_upsmon(prim) as upsmon,
    ):
        wait_until(lambda: ask(port, "GET NUMLOGINS ups") == "NUMLOGINS ups 2", 20, "2 logins")
        write_dev(server_dir / "ups.dev", "OB LB")
        wait_until(lambda: len(shutdowns(order)) == 2, 40, "both hosts")
        done = dict(shutdowns(order))
        assert done["nuttrio"] < done["upsmon"]
        assert ask(port, "GET VAR ups ups.status") == 'VAR ups ups.status "FSD OB LB"'
        assert nut_secondary.proc.wait(10) == 0
        assert upsmon.wait(10) == 0
