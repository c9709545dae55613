"""Differential runs for serial drivers: one simulated UPS, two ptys, two servers.

Port 0 of the simulator is read by Debian's real driver served by the real upsd
(:class:`tests.realnut.RealNut`), port 1 by nuttrio's native driver (nuttrio run through
its command line); both get the same ups.conf section but for ``port``. ``upsc`` of both
must print the same, ``driver.*`` lines aside.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import attrs

from nuttrio.hw.sim_pty import PtySimulator, Session

from .helpers import wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    HOST,
    RealNut,
    RealNutError,
    driver_binary,
    free_port,
    require_real_nut,
    upsc_dump,
    write_nut_config,
)

__all__ = [
    "Pair",
    "differential_pair",
    "minus_k_confdirs",
    "require_driver",
    "run_minus_k",
    "upsc_values",
]

UPS = "ups"


def require_driver(name: str) -> None:
    """Skip unless the real NUT and its driver ``name`` are installed."""
    import pytest

    require_real_nut()
    if driver_binary(name) is None:
        pytest.skip(f"NUT's {name} is not installed (Debian package nut-server)")


def upsc_values(target: str, *, missing_ok: bool = False) -> dict[str, str]:
    """``upsc target`` as a dict, ``driver.*`` lines left out.

    With ``missing_ok``, a failing upsc (data stale, driver not connected) gives ``{}``.
    """
    out: dict[str, str] = {}
    try:
        lines = upsc_dump(target)
    except RealNutError:
        if missing_ok:
            return {}
        raise
    for line in lines:
        name, _, value = line.partition(": ")
        if not name.startswith("driver."):
            out[name] = value
    return out


@attrs.define
class Pair:
    """The two servers reading one simulator."""

    sim: PtySimulator
    real: RealNut
    nuttrio: NuttrioProcess
    nuttrio_port: int

    @property
    def real_target(self) -> str:
        return self.real.target(UPS)

    @property
    def nuttrio_target(self) -> str:
        return f"{UPS}@{HOST}:{self.nuttrio_port}"

    def both(self) -> tuple[dict[str, str], dict[str, str]]:
        """upsc of the real upsd and of nuttrio (driver.* aside)."""
        return upsc_values(self.real_target), upsc_values(self.nuttrio_target)

    def wait_both(self, check: Callable[[dict[str, str]], bool], timeout: float = 10.0) -> None:
        """Wait until ``check`` holds for both dumps."""
        for target in (self.real_target, self.nuttrio_target):
            wait_until(
                lambda t=target: check(upsc_values(t, missing_ok=True)),  # type: ignore[misc]
                timeout,
                f"the condition on {target}",
            )

    def converge(
        self, check: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> dict[str, str]:
        """Wait until both dumps are equal and ``check`` holds for them; return the dump.

        Both drivers poll on their own schedule, so a change reaches them at different
        moments; at the timeout the last two dumps are compared (the test fails on the
        difference).
        """
        deadline = time.monotonic() + timeout
        while True:
            real = upsc_values(self.real_target, missing_ok=True)
            ours = upsc_values(self.nuttrio_target, missing_ok=True)
            if real == ours and real and check(real):
                return real
            if time.monotonic() > deadline:
                assert ours == real
                raise AssertionError(f"the dumps never satisfied the check: {real}")
            time.sleep(0.1)

    def upscmd(self, target: str, *args: str) -> str:
        """Run ``upscmd -u admin -p ... target args`` and return its output."""
        done = subprocess.run(
            ["upscmd", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, target, *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return (done.stdout + done.stderr).strip()

    def upsc_error(self, target: str) -> str:
        """What ``upsc target`` prints on its standard error (empty when it works)."""
        done = subprocess.run(
            ["upsc", target], capture_output=True, text=True, timeout=20, check=False
        )
        return done.stderr.strip()

    def upsrw(self, target: str, assignment: str) -> str:
        """Run ``upsrw -s NAME=VALUE -u admin -p ... target`` and return its output."""
        done = subprocess.run(
            ["upsrw", "-s", assignment, "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, target],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return (done.stdout + done.stderr).strip()

    def upscmd_list(self, target: str) -> str:
        """``upscmd -l target``: the instant commands with their descriptions."""
        done = subprocess.run(
            ["upscmd", "-l", target], capture_output=True, text=True, timeout=20, check=False
        )
        return done.stdout

    def upsrw_list(self, target: str) -> str:
        """``upsrw target``: the writable variables with their types and ranges."""
        done = subprocess.run(
            ["upsrw", target], capture_output=True, text=True, timeout=20, check=False
        )
        return done.stdout

    def received(self, index: int) -> list[str]:
        """What port ``index`` of the simulator was sent (the session's record)."""
        return list(self.sim.session(index).received)


@contextlib.contextmanager
def differential_pair(
    tmp_path: Path,
    new_session: Callable[[], Session],
    section: Mapping[str, str],
) -> Iterator[Pair]:
    """Start the simulator on two ptys, the real upsd + driver on one, nuttrio on the other.

    Args:
        tmp_path: A short directory (driver socket paths must fit in 107 bytes).
        new_session: The simulator's session factory (``model.session``).
        section: The ups.conf keys (``driver`` and options), without ``port``.
    """
    links = [tmp_path / "ttyReal", tmp_path / "ttyOurs"]
    with PtySimulator(new_session, links) as sim:
        real_dir = write_nut_config(
            tmp_path / "real", port=free_port(), ups={UPS: {**section, "port": str(links[0])}}
        )
        port = free_port()
        ours_dir = write_nut_config(
            tmp_path / "ours", port=port, ups={UPS: {**section, "port": str(links[1])}}
        )
        with RealNut(real_dir) as real, NuttrioProcess(["--nut-config", str(ours_dir)]) as ours:
            pair = Pair(sim, real, ours, port)
            wait_until(
                lambda: upsc_values(pair.nuttrio_target, missing_ok=True).get("ups.status"),
                15,
                "nuttrio's first status",
            )
            yield pair


def minus_k_confdirs(
    tmp_path: Path, driver: str, links: list[Path], options: dict[str, str]
) -> list[Path]:
    """One ups.conf directory per pty link ("real", "ours"), the section ``ups`` on it."""
    return [
        write_nut_config(
            tmp_path / name,
            port=free_port(),
            ups={"ups": {"driver": driver, "port": str(link), **options}},
        )
        for name, link in zip(("real", "ours"), links, strict=True)
    ]


def run_minus_k(driver: str, confdir: Path) -> subprocess.CompletedProcess[str]:
    """Run Debian's ``DRIVER -a ups -k`` on ``confdir``'s ups.conf (upsdrvctl shutdown)."""
    binary = driver_binary(driver)
    assert binary is not None
    env = {**os.environ, "NUT_CONFPATH": str(confdir), "NUT_STATEPATH": str(confdir / "state")}
    user = ["-u", "root"] if os.geteuid() == 0 else []
    return subprocess.run(
        [str(binary), "-a", UPS, "-k", *user],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
