"""Driver supervision: maxretry/retrydelay, restart storms, the other UPSes untouched.

Timers run on Trio's MockClock (autojump): each test covers minutes of restarts at once.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from nuttrio.daemon import DaemonOptions, RestartPolicy, open_daemon
from nuttrio.hw.base import DRIVERS, DriverContext
from nuttrio.nutconf import ConfigError, UpsSection, load_nut_config
from nuttrio.state import DriverLink


@attrs.define
class FlakyDriver:
    """Fails its first ``failures`` runs at once (then runs for good); records start times."""

    failures: int
    starts: list[float]

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.starts.append(trio.current_time())
        if len(self.starts) <= self.failures:
            raise RuntimeError(f"device fell over (run {len(self.starts)})")
        with link.update() as update:
            update.set("ups.status", "OL")
            update.dumped = True
        task_status.started()
        await trio.sleep_forever()


@pytest.fixture
def flaky(monkeypatch):
    """Register driver ``flaky-test``: ``flaky(n)`` makes its UPSes fail their first n runs."""
    starts: dict[str, list[float]] = {}
    failures = {"n": 0}

    def factory(section: UpsSection, context: DriverContext) -> FlakyDriver:
        return FlakyDriver(failures["n"], starts.setdefault(section.name, []))

    monkeypatch.setitem(DRIVERS, "flaky-test", factory)

    def configure(n: int) -> dict[str, list[float]]:
        failures["n"] = n
        return starts

    return configure


def _confdir(tmp_path: Path, ups_conf: str) -> Path:
    (tmp_path / "ok.dev").write_text("ups.status: OL\nbattery.charge: 100\n")
    (tmp_path / "ups.conf").write_text(ups_conf)
    (tmp_path / "upsd.conf").write_text("")
    (tmp_path / "upsd.users").write_text("")
    for path in tmp_path.iterdir():
        path.chmod(0o600)
    return tmp_path


TWO_UPS = """\
{globals}
[bad]
\tdriver = flaky-test
\tport = none
{bad}
[good]
\tdriver = dummy-ups
\tport = ok.dev
"""


def _intervals(starts: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(starts)]


@pytest.mark.parametrize("autojump_clock", [trio.testing.MockClock(autojump_threshold=0)])
async def test_retrydelay_and_maxretry_storm_other_ups_untouched(
    tmp_path, flaky, caplog, autojump_clock
):
    starts = flaky(100)
    confdir = _confdir(tmp_path, TWO_UPS.format(globals="retrydelay = 3", bad="\tmaxretry = 4"))
    caplog.set_level(logging.INFO)
    options = DaemonOptions(confdir=confdir, listen=[("127.0.0.1", 0)])
    async with open_daemon(options) as daemon:
        bad, good = daemon.store.get("bad"), daemon.store.get("good")
        assert bad is not None
        assert good is not None
        await trio.sleep(0.5)  # between restarts (at 0, 3, 6... s)
        assert bad.snapshot().value("driver.state") == "restarting"
        assert not bad.snapshot().connected
        await trio.sleep(40)
        assert _intervals(starts["bad"]) == [3.0] * (len(starts["bad"]) - 1)
        elapsed = trio.current_time() - starts["bad"][0]
        assert len(starts["bad"]) == int(elapsed // 3) + 1 == 14
        assert bad.snapshot().value("driver.state") == "restart-storm"
        storms = [r for r in caplog.records if "restart storm" in r.getMessage()]
        assert len(storms) == 1
        assert "4 failures in a row" in storms[0].getMessage()
        failed = [r for r in caplog.records if r.msg == "driver for UPS %s failed"]
        assert len(failed) == 14  # every failure logged, none hidden
        snap = good.snapshot()
        assert snap.connected
        assert not snap.data_stale
        assert good.statistics().restarts == 0


@pytest.mark.parametrize("autojump_clock", [trio.testing.MockClock(autojump_threshold=0)])
async def test_default_back_off_doubles_and_a_good_run_ends_the_storm(
    tmp_path, flaky, autojump_clock
):
    starts = flaky(6)
    confdir = _confdir(tmp_path, TWO_UPS.format(globals="", bad=""))
    options = DaemonOptions(confdir=confdir, listen=[("127.0.0.1", 0)])
    async with open_daemon(options) as daemon:
        bad = daemon.store.get("bad")
        assert bad is not None
        await trio.sleep(120)
        assert _intervals(starts["bad"]) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
        snap = bad.snapshot()
        assert snap.connected
        assert snap.value("ups.status") == "OL"
        assert snap.value("driver.state") is None  # the driver's own state replaced it
        assert bad.statistics().restarts == 6


def test_restart_settings_from_the_section_or_the_globals(tmp_path):
    confdir = _confdir(
        tmp_path, TWO_UPS.format(globals="maxretry = 2\nretrydelay = 7", bad="\tretrydelay = 1")
    )
    config = load_nut_config(confdir)
    bad, good = config.ups
    assert RestartPolicy.from_section(bad, config.ups_globals) == RestartPolicy(
        delay=1.0, storm_after=2
    )
    assert RestartPolicy.from_section(good, config.ups_globals) == RestartPolicy(
        delay=7.0, storm_after=2
    )
    assert RestartPolicy().delay_after(1) == 1.0
    assert RestartPolicy().delay_after(9) == 30.0


@pytest.mark.parametrize("setting", ["maxretry = many", "retrydelay = -1", "maxretry = 1.5"])
async def test_bad_restart_settings_are_config_errors_with_the_line(tmp_path, flaky, setting):
    confdir = _confdir(tmp_path, TWO_UPS.format(globals="", bad=f"\t{setting}"))
    options = DaemonOptions(confdir=confdir, listen=[("127.0.0.1", 0)])
    with pytest.raises(ConfigError, match=r"ups.conf:2: UPS \[bad\]: (maxretry|retrydelay)"):
        async with open_daemon(options):
            pass
