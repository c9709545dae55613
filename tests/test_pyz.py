"""The one-file build: tools/build_pyz.py makes nuttrio.pyz, which runs without site-packages."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_zipapp_builds_and_serves_on_its_own(tmp_path):
    pyz = tmp_path / "nuttrio.pyz"
    built = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_pyz.py"), "-o", str(pyz)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert pyz.stat().st_size < 8_000_000
    # -S -I: no site-packages, no PYTHONPATH: only the standard library and the zip file.
    args = [sys.executable, "-S", "-I", str(pyz), "--attach", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [*args, "--web", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
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
