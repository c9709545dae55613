"""The command line of the web server: --web, the no-config demo, the start line."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest
import trio

from nuttrio.cli import main as cli
from nuttrio.web import DEFAULT_WEB_PORT

from .helpers import run_example
from .nuttrio_proc import NuttrioProcess

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def options_of(monkeypatch):
    """Run ``nuttrio ARGS`` up to trio.run and return the DaemonOptions it would run."""
    seen = []
    monkeypatch.delenv("NUT_CONFPATH", raising=False)
    monkeypatch.setattr(trio, "run", lambda fn, options, *rest: seen.append(options))

    def run(*args: str):
        assert cli.main(list(args)) == 0
        return seen[-1]

    return run


def test_the_no_config_demo_serves_the_dashboard_on_loopback(options_of):
    for args in ((), ("--attach",)):
        options = options_of(*args)
        assert options.web == (("127.0.0.1", DEFAULT_WEB_PORT),)
        assert options.web_optional
    # Anything more than the demo: off unless asked.
    assert options_of("--listen", "127.0.0.1:0").web == ()


def test_web_addresses_are_repeatable_with_the_default_port(options_of):
    options = options_of("--web", "0.0.0.0", "--web", "[::1]:9000", "--web", "127.0.0.1:0")
    assert options.web == (("0.0.0.0", DEFAULT_WEB_PORT), ("::1", 9000), ("127.0.0.1", 0))
    assert not options.web_optional
    assert options_of("--web", "127.0.0.1", "--web-tls").web_tls


def test_bad_web_address_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--web", "[::1"])
    assert info.value.code == 2
    assert "bad address '[::1'" in capsys.readouterr().err


def test_start_line_names_the_dashboard():
    with NuttrioProcess(["--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"]) as proc:
        found = re.search(
            r"; dashboard: http://127\.0\.0\.1:(\d+)/; query it with", proc.ready_line
        )
        assert found, proc.ready_line
        url = f"http://127.0.0.1:{found[1]}/api/v1/ups"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert json.load(reply) == {"sim": "nuttrio simulated UPS"}


def test_the_web_embedding_example_runs():
    out = run_example("web_in_trio_app.py", timeout=30)
    assert "GET /api/v1/ups/garage: {'ups.status': 'OL', 'battery.charge': '97'}" in out
    assert "stream pushed: [{'flag': 'OB', 'text': 'on battery'}" in out
    assert 'network_ups_tools_ups_status{flag="OB",ups="garage"} 1.0' in out


def test_a_secondary_serves_the_verdict(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = dead.getsockname()[1]
    (conf / "upsmon.conf").write_text(
        f"MONITOR ups@127.0.0.1:{port} 1 mon secret secondary\nSHUTDOWNCMD true\nRUN_AS_USER root\n"
    )
    (conf / "upsmon.conf").chmod(0o600)
    args = ["--secondary", "--nut-config", str(conf), "--web", "127.0.0.1:0"]
    with dead, NuttrioProcess(args) as proc:
        found = re.search(
            r"managing \(secondary\) .*; dashboard: http://127\.0\.0\.1:(\d+)/", proc.ready_line
        )
        assert found, proc.ready_line
        url = f"http://127.0.0.1:{found[1]}/api/v1/verdict"
        with urllib.request.urlopen(url, timeout=5) as reply:
            verdict = json.load(reply)
        assert [v["system"] for v in verdict["ups"]] == [f"ups@127.0.0.1:{port}"]
        assert verdict["minsupplies"] == 1
