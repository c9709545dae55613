"""Run nuttrio as a real process through its command line, for tests with real clients."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"


class NuttrioProcess:
    """``python -m nuttrio [--attach] ...`` as a context manager (``--attach`` unless a role given).

    Waits for the ready line (``nuttrio: serving ...``) on stdout; on exit sends SIGTERM and
    checks that nuttrio stopped cleanly with status 0.

    Args:
        args: Extra command-line arguments (``--nut-config DIR``, ``--listen HOST:PORT``...).
        env: Extra environment variables.
        timeout: Seconds to wait for the ready line.
        cwd: The checkout whose ``nuttrio`` runs (default this one; bench/bench_versions.py
            runs another revision's).
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        cwd: Path | None = None,
    ) -> None:
        roles = {"--attach", "--primary", "--secondary"}
        role = [] if roles & set(args) else ["--attach"]
        self.args = [sys.executable, "-m", "nuttrio", *role, *args]
        # An inherited NUT_CONFPATH would change what nuttrio serves: only ``env`` may set it.
        inherited = {k: v for k, v in os.environ.items() if k != "NUT_CONFPATH"}
        self.env = {**inherited, **(env or {})}
        self.timeout = timeout
        self.cwd = cwd or Path(__file__).resolve().parents[1]
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self.returncode: int | None = None
        self.stderr = ""
        self._log = ""  # stderr read by wait_for_log before the process stopped

    def __enter__(self) -> NuttrioProcess:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                line = self.proc.stdout.readline()
                if line.startswith(("nuttrio: serving", "nuttrio: listening", "nuttrio: managing")):
                    self.ready_line = line.strip()
                    return self
                if not line and self.proc.poll() is not None:
                    break
        self.proc.kill()
        _, err = self.proc.communicate()
        raise RuntimeError(f"nuttrio did not start ({self.proc.returncode}): {err[-3000:]}")

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Read nuttrio's standard error until a line contains ``text``; return that line.

        Raises:
            AssertionError: If no such line comes within ``timeout`` seconds.
        """
        assert self.proc is not None
        assert self.proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(timeout=min(left, 0.1)):
                line = self.proc.stderr.readline()
                self._log += line
                if text in line:
                    return line
                if not line:
                    break
        raise AssertionError(f"no log line with {text!r} in {timeout} s: {self._log[-3000:]}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Stop nuttrio with ``signum`` and return its exit status."""
        assert self.proc is not None
        if self.returncode is None:
            self.proc.send_signal(signum)
            try:
                _, rest = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, rest = self.proc.communicate()
            self.stderr = self._log + rest
            self.returncode = self.proc.returncode
        return self.returncode

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stopped_by_test = self.returncode is not None
        code = self.stop()
        if exc_type is None and not stopped_by_test:
            assert code == 0, f"nuttrio exited with {code}: {self.stderr[-3000:]}"
