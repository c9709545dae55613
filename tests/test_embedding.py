"""The embedding API: nuttrio inside another Trio program, and the example that shows it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import nuttrio

from .helpers import run_example
from .nuttrio_proc import NuttrioProcess

REPO = Path(__file__).resolve().parents[1]


def test_confdir_and_upssched_take_any_path_like(tmp_path):
    options = nuttrio.DaemonOptions(confdir="etc/nut", upssched=str(tmp_path / "s.conf"))
    assert options.confdir == Path("etc/nut")
    assert options.upssched == tmp_path / "s.conf"
    assert nuttrio.DaemonOptions(confdir=tmp_path).confdir == tmp_path
    assert nuttrio.DaemonOptions().confdir is None


async def test_a_str_confdir_runs_the_daemon(tmp_path):
    (tmp_path / "ups.conf").write_text("[a]\n driver = dummy-ups\n port = a.dev\n")
    (tmp_path / "upsd.conf").write_text("LISTEN 127.0.0.1 3493\n")
    (tmp_path / "upsd.users").write_text("")
    (tmp_path / "a.dev").write_text("ups.status: OB\n")
    options = nuttrio.DaemonOptions(confdir=str(tmp_path), listen=[("127.0.0.1", 0)])
    async with nuttrio.open_daemon(options) as daemon:
        assert daemon.store.get("a").snapshot().status == "OB"


async def test_serve_starts_in_a_nursery(nursery):
    """``await nursery.start(nuttrio.serve, options)`` returns once serving, with the Daemon.

    The fixture's nursery is cancelled when the test ends, which stops it.
    """
    import trio

    daemon = await nursery.start(nuttrio.serve, nuttrio.DaemonOptions(listen=[("127.0.0.1", 0)]))
    host, port = daemon.addresses[0]
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(b"GET VAR sim ups.status\n")
        assert await stream.receive_some(100) == b'VAR sim ups.status "OL"\n'
    assert nuttrio.serve is nuttrio.run_daemon


async def test_a_configuration_error_from_open_daemon_is_the_error_itself(tmp_path):
    (tmp_path / "ups.conf").write_text("[a]\n driver = dummy-ups\n port = a.dev\n")
    (tmp_path / "upsd.conf").write_text("MAXAGE soon\n")
    (tmp_path / "upsd.users").write_text("")
    with pytest.raises(nuttrio.ConfigError, match=r"upsd\.conf:1"):
        async with nuttrio.open_daemon(nuttrio.DaemonOptions(confdir=tmp_path)):
            pytest.fail("the daemon started")


def test_config_error_is_exported_lazily():
    from nuttrio.nutconf import ConfigError

    assert nuttrio.ConfigError is ConfigError
    assert "ConfigError" in nuttrio.__all__
    code = "import sys, nuttrio.protocol; assert 'nuttrio.config' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_web_settings_are_exported_beside_the_daemon_options():
    from nuttrio.web import WebSettings

    assert nuttrio.WebSettings is WebSettings
    options = nuttrio.DaemonOptions(web_settings=nuttrio.WebSettings(history_hours=1))
    assert options.web_settings.history_hours == 1


def test_the_embedding_example_shows_a_status_change():
    lines = run_example("embed_in_trio_app.py").splitlines()
    assert lines[0].startswith("serving on 127.0.0.1:")
    assert lines[1:] == [
        "store:    ups.status is now 'OL'",
        'protocol: VAR sim ups.status "OL"',
        "store:    ups.status is now 'OB DISCHRG'",
        'protocol: VAR sim ups.status "OB DISCHRG"',
    ]


async def test_the_managers_notifications_are_an_async_iterator(tmp_path):
    """``daemon.notifications()``: each notification as NOTIFYCMD would get it, pushed."""
    import trio

    from nuttrio.state import CommandKind, DriverCommand

    from .test_mgmt_local import confdir, port_of

    d = confdir(tmp_path, "u@localhost:{port} 1 admin adminpass primary")
    options = nuttrio.DaemonOptions(confdir=d, role=nuttrio.Role.PRIMARY)
    async with nuttrio.open_daemon(options) as daemon, daemon.notifications() as notes:
        command = DriverCommand(CommandKind.SET, "ups.status", "OB")
        assert daemon.store.get("u").submit(command)
        with trio.fail_after(20):
            note = await notes.__anext__()
    assert isinstance(note, nuttrio.Notification)
    assert (note.type, note.system) == ("ONBATT", f"u@localhost:{port_of(d)}")
    assert daemon.published.dropped == 0


def test_the_primary_example_prints_the_onbatt_notification():
    out = run_example("primary_in_trio_app.py")
    assert re.search(r"^manager: ONBATT demo@127\.0\.0\.1:\d+$", out, re.M), out


_WEB_STACK = ("h11", "prometheus_client", "trio_websocket", "wsproto", "nuttrio.web.app")

_SERVE_AND_LIST_MODULES = """
import sys, trio, nuttrio
from pathlib import Path

async def main(web):
    options = nuttrio.DaemonOptions(
        confdir=Path(sys.argv[1]), listen=[("127.0.0.1", 0)], web=web
    )
    async with nuttrio.open_daemon(options) as daemon:
        assert daemon.listeners
    print(sorted(m for m in {stack!r} if m in sys.modules))

trio.run(main, [("127.0.0.1", 0)] if sys.argv[2] == "web" else [])
"""


@pytest.mark.parametrize(("web", "loaded"), [("", []), ("web", sorted(_WEB_STACK))])
def test_a_daemon_without_web_never_loads_the_web_stack(tmp_path, web, loaded):
    """The web stack (~4 MiB resident) is imported only when a web server is asked for."""
    (tmp_path / "u.dev").write_text("ups.status: OL\n")
    (tmp_path / "ups.conf").write_text("[u]\n\tdriver = dummy-ups\n\tport = u.dev\n")
    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "upsd.users").write_text("")
    script = _SERVE_AND_LIST_MODULES.format(stack=_WEB_STACK)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), web],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=NuttrioProcess([]).env,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stdout.strip()) == (0, str(loaded)), out.stderr


def test_the_python_object_example_serves_it_beside_the_simulator():
    assert run_example("python_object_as_ups.py").splitlines() == [
        "LIST UPS: ['bank', 'sim']",
        "battery.charge: 87",
        "beeper.mute: SUCCESS",
        "ups.beeper.status: muted",
        "after remove_ups: ['sim']",
    ]


async def test_an_added_ups_is_supervised_and_outlives_a_reload(tmp_path):
    """``daemon.add_ups``: served as ups.conf's UPSes are, kept by a reload, last in LIST UPS;
    a name already served is refused, and a ups.conf section of its name is ignored."""
    import trio

    from nuttrio.client import NutError, open_nut_client
    from nuttrio.state import DriverLink

    runs = []
    restarted = trio.Event()

    class Flaky:
        async def run(self, link: DriverLink, *, task_status=trio.TASK_STATUS_IGNORED):
            runs.append(trio.current_time())
            with link.update() as update:
                update.set("ups.status", "OL")
                update.dumped = True
            task_status.started()
            if len(runs) == 1:
                raise RuntimeError("the first run fails")  # the supervisor restarts it
            restarted.set()
            await trio.sleep_forever()

    (tmp_path / "u.dev").write_text("ups.status: OL\n")
    (tmp_path / "ups.conf").write_text("[u]\n\tdriver = dummy-ups\n\tport = u.dev\n")
    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "upsd.users").write_text("")
    options = nuttrio.DaemonOptions(confdir=tmp_path, listen=[("127.0.0.1", 0)])
    async with nuttrio.open_daemon(options) as daemon:
        entry = await daemon.add_ups("py", Flaky(), desc="the program's")
        with pytest.raises(ValueError, match="already served"):
            await daemon.add_ups("U", Flaky())
        host, port = daemon.addresses[0]
        async with open_nut_client(host, port) as nut:
            listed = await nut.list_ups()
            assert (list(listed), listed["py"]) == (["u", "py"], "the program's")
            with trio.fail_after(10):
                await restarted.wait()  # the restart after its back-off
            assert await nut.get_var("py", "ups.status") == "OL"
            section = "\tdriver = dummy-ups\n\tport = u.dev\n"
            (tmp_path / "ups.conf").write_text(f"[u]\n{section}[py]\n{section}")
            await daemon.reload()  # ups.conf's [py] is ignored: the program's UPS stays
            assert daemon.driver("py") is not None
            assert daemon.store.get("py") is entry
            assert list(await nut.list_ups()) == ["u", "py"]
            with pytest.raises(KeyError):
                await daemon.remove_ups("u")  # ups.conf's, not the program's
            await daemon.remove_ups("py")
            with pytest.raises(NutError, match="UNKNOWN-UPS"):
                await nut.get_var("py", "ups.status")
