"""The one-file build: tools/build_pyz.py makes nuttrio.pyz, which runs without site-packages."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import attrs
import pytest

from .test_web import write_primary_confdir

ROOT = Path(__file__).resolve().parents[1]


@attrs.frozen
class Built:
    pyz: Path
    stderr: str


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """nuttrio.pyz, built once for the module's tests."""
    pyz = tmp_path_factory.mktemp("pyz") / "nuttrio.pyz"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_pyz.py"), "-o", str(pyz)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Built(pyz, done.stderr)


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def _run_pyz(pyz: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start the zipapp with only the standard library (-S -I: no site-packages, no
    PYTHONPATH) and the zip file; its stdout and stderr are pipes."""
    return subprocess.Popen(
        [sys.executable, "-S", "-I", str(pyz), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def test_zipapp_builds_and_serves_on_its_own(tmp_path, built):
    pyz = built.pyz
    assert pyz.stat().st_size < 8_000_000
    # -S -I: no site-packages, no PYTHONPATH: only the standard library and the zip file.
    proc = _run_pyz(pyz, tmp_path, "--attach", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0")
    try:
        line = proc.stdout.readline()
        found = re.search(r"on 127\.0\.0\.1:(\d+); dashboard: http://127\.0\.0\.1:(\d+)/", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        nut_port, web_port = int(found[1]), int(found[2])
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/v1/ups", timeout=5) as r:
            assert json.load(r) == {"sim": "nuttrio simulated UPS"}
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=5) as r:
            assert b"/static/app.js" in r.read()  # the package data is in the zip
        with socket.create_connection(("127.0.0.1", nut_port), timeout=5) as sock:
            sock.sendall(b"GET VAR sim ups.status\n")
            assert sock.recv(100) == b'VAR sim ups.status "OL"\n'
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    # cryptography is compiled, so the zip leaves it out: `nuttrio cert` says what it needs.
    assert "cryptography left out" in built.stderr
    cert = subprocess.run(
        [sys.executable, "-S", "-I", str(pyz), "cert", "--host", "box", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert cert.returncode == 1
    assert "needs the 'cryptography' package" in cert.stderr


def test_zipapp_primary_monitors_its_ups(tmp_path, built):
    """``./nuttrio.pyz --primary``: the attachment daemon and the manager, from the zip."""
    confdir, nut_port = write_primary_confdir(tmp_path / "conf")
    proc = _run_pyz(
        built.pyz, tmp_path, "--primary", "--nut-config", str(confdir),
        "--listen", f"127.0.0.1:{nut_port}", "--web", "127.0.0.1:0",
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.search(r"serving a on .*dashboard: http://127\.0\.0\.1:(\d+)/", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        web_port = int(found[1])
        verdict = get_json(web_port, "/api/v1/verdict")
        assert [(v["system"], v["critical"]) for v in verdict["ups"]] == [
            (f"a@127.0.0.1:{nut_port}", False)
        ]
        assert (verdict["fed"], verdict["minsupplies"], verdict["shutdown_now"]) == (1, 1, False)
        with socket.create_connection(("127.0.0.1", nut_port), timeout=5) as sock:
            for request in (b"USERNAME admin\n", b"PASSWORD pw\n", b"SET VAR a ups.status OB\n"):
                sock.sendall(request)
                assert sock.recv(100) == b"OK\n"
        # The manager saw the UPS go on battery: its notification is in the event log.
        deadline = time.monotonic() + 10
        while not [e for e in get_json(web_port, "/api/v1/events") if e["kind"] == "notify"]:
            assert time.monotonic() < deadline, "no notification from the manager in 10 s"
            time.sleep(0.05)
        notices = [e for e in get_json(web_port, "/api/v1/events") if e["kind"] == "notify"]
        assert notices[0]["ups"] == f"a@127.0.0.1:{nut_port}"
        assert notices[0]["message"].startswith("ONBATT")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
