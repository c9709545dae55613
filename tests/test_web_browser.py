"""The dashboard in a real headless chromium (Debian's chromium and chromium-driver, Selenium).

The page must change within one second of an OB flip made through the NUT protocol, and a
logged-in upsd.users account runs an instant command from it. A screenshot is saved under
$NUTTRIO_ARTIFACTS (or the test's tmp dir). Skipped, with the reason, without chromium.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio

import nuttrio
from nuttrio.client import open_nut_client
from nuttrio.web import WebSettings

from .test_web import free_port, write_confdir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # pragma: no cover - CI installs the test extra
    webdriver = None

if webdriver is None or CHROMIUM is None or CHROMEDRIVER is None:
    reason = (
        "needs chromium, chromium-driver (apt) and selenium (pip): "
        + ", ".join(
            name
            for name, there in (
                ("selenium", webdriver),
                ("chromium", CHROMIUM),
                ("chromedriver", CHROMEDRIVER),
            )
            if there is None
        )
        + " missing"
    )
    print(f"test_web_browser skipped: {reason}")
    pytest.skip(reason, allow_module_level=True)


def open_browser(profile: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1100,1400",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)


def wait_for_text(browser, selector: str, text: str, timeout: float) -> float:
    """Seconds until the element's text contains ``text`` (polled every 10 ms)."""
    began = time.monotonic()
    seen = ""
    while time.monotonic() - began < timeout:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        seen = found[0].text if found else ""
        if text in seen:
            return time.monotonic() - began
        time.sleep(0.01)
    raise AssertionError(f"{selector} never showed {text!r} in {timeout} s (last: {seen!r})")


def wait_until(check: Callable[[], bool], timeout: float) -> None:
    """Return once ``check()`` is true (polled every 10 ms); fail after ``timeout`` s."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"never true in {timeout} s"
        time.sleep(0.01)


@pytest.fixture
async def browser(tmp_path):
    driver = await trio.to_thread.run_sync(open_browser, tmp_path / "profile")
    try:
        yield driver
    finally:
        await trio.to_thread.run_sync(driver.quit)


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where the screenshot goes: $NUTTRIO_ARTIFACTS (CI keeps it) or the tmp dir."""
    path = Path(os.environ.get("NUTTRIO_ARTIFACTS", tmp_path))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def test_dashboard_follows_the_ups_and_runs_a_command(tmp_path, browser, artifacts, caplog):
    caplog.set_level(logging.INFO, logger="nuttrio.audit")
    options = nuttrio.DaemonOptions(
        confdir=write_confdir(tmp_path / "conf"),
        listen=(("127.0.0.1", 0),),
        web=(("127.0.0.1", free_port()),),
    )
    run = trio.to_thread.run_sync
    async with nuttrio.open_daemon(options) as daemon:
        host, port = daemon.web_addresses[0]
        await run(browser.get, f"http://{host}:{port}/")
        await run(wait_for_text, browser, "#live", "live", 10)
        await run(wait_for_text, browser, "#ups-a .status", "on line power (OL)", 5)
        assert "90 %" in await run(lambda: browser.find_element(By.ID, "ups-a").text)

        nut_host, nut_port = daemon.addresses[0]
        async with open_nut_client(nut_host, nut_port) as client:
            await client.username("admin")
            await client.password("pw")
            began = time.monotonic()
            await client.set_var("a", "ups.status", "OB DISCHRG")
            await run(wait_for_text, browser, "#ups-a .status", "on battery, discharging", 1.0)
            elapsed = time.monotonic() - began
        print(f"OB flip to the page: {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0
        await run(wait_for_text, browser, "#events", "a: status: on battery, discharging", 1.0)
        # The supervisor's driver.state shows on the card and in the event log.
        daemon.store.get("a").set_driver_state("restart-storm")
        await run(wait_for_text, browser, "#ups-a .status", "(driver restart storm)", 2)
        await run(wait_for_text, browser, "#events", "a: driver restart storm", 2)
        daemon.store.get("a").set_driver_state(None)
        await run(wait_for_text, browser, "#ups-a .status", "(OB DISCHRG)", 2)
        await run(wait_until, lambda: "storm" not in browser.find_element(By.ID, "ups-a").text, 2)

        def log_in_and_run() -> None:
            # With the keyboard only: Tab to the user field, Tab, Enter submits; Enter on
            # the Run button runs the command.
            assert not browser.find_element(By.CSS_SELECTOR, "#ups-a .actions").is_displayed()
            keys = ActionChains(browser)
            keys.send_keys(Keys.TAB, "admin", Keys.TAB, "pw", Keys.ENTER).perform()
            wait_for_text(browser, "#user", "Logged in as admin", 5)
            browser.find_element(By.CSS_SELECTOR, "#ups-a .run").send_keys(Keys.ENTER)
            wait_for_text(browser, "#ups-a .result", "load.off: UNKNOWN", 5)

        await run(log_in_and_run)
        assert any(
            r.getMessage()
            == "user=admin peer=127.0.0.1 ups=a request='INSTCMD a load.off' result=UNKNOWN"
            " tracking=- via=web"
            for r in caplog.records
        )
        shot = artifacts / "dashboard.png"
        await run(browser.save_screenshot, str(shot))
        print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # The page reconnects by itself when nuttrio comes back: here as a primary, whose
    # manager's verdict the page then shows.
    await run(wait_for_text, browser, "#live", "reconnecting", 5)
    confdir = options.confdir
    users = (confdir / "upsd.users").read_text()
    (confdir / "upsd.users").write_text(
        users.replace("instcmds = all", "instcmds = all\n upsmon primary")
    )
    nut_port = free_port()
    (confdir / "upsmon.conf").write_text(
        f"MONITOR a@127.0.0.1:{nut_port} 1 admin pw primary\nSHUTDOWNCMD true\n"
    )
    (confdir / "upsmon.conf").chmod(0o600)
    primary = attrs.evolve(
        options,
        listen=(("127.0.0.1", nut_port),),
        role=nuttrio.Role.PRIMARY,
        web_settings=WebSettings(history_hours=0.5),
    )
    async with nuttrio.open_daemon(primary):
        await run(wait_for_text, browser, "#live", "live", 15)
        await run(wait_for_text, browser, "#ups-a .status", "on line power (OL)", 5)
        # The chart shows what this process's --web-history keeps.
        assert await run(browser.execute_script, "return chartSpan") == 1800
        # The new process has no sessions: the page asks for a login again.
        await run(wait_for_text, browser, "#login", "Log in", 5)
        await run(
            wait_for_text,
            browser,
            "#verdict",
            "No shutdown now: 1 power supplies fed, MINSUPPLIES 1",
            5,
        )
        await run(wait_for_text, browser, "#verdict", f"a@127.0.0.1:{nut_port}: ok", 5)

        def phone() -> bool:
            browser.set_window_size(390, 844)
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth > window.innerWidth"
            )
            browser.save_screenshot(str(artifacts / "dashboard-phone.png"))
            return wide

        assert not await run(phone), "the page is wider than a phone's screen"

        def dark() -> str:
            browser.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
            )
            browser.save_screenshot(str(artifacts / "dashboard-dark.png"))
            return browser.execute_script("return getComputedStyle(document.body).backgroundColor")

        assert await run(dark) == "rgb(13, 17, 23)"  # the dark palette's background
