"""Helpers of the tests that run NUT's driver binaries through nuttrio's bridge."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from nuttrio.client import NutClient, NutError
from nuttrio.daemon import Daemon, DaemonOptions
from nuttrio.hw.nutdriver import NutDriverBridge

from .helpers import until as until
from .realnut import require_real_nut, write_dev_file, write_nut_config


def conf(tmp_path: Path, ups: Mapping[str, Mapping[str, str | int]], globals_: str = "") -> Path:
    """A NUT directory whose drivers run as the current user (``user`` in ups.conf)."""
    require_real_nut()
    confdir = write_nut_config(tmp_path / "conf", port=3493, ups=ups)
    upsconf = confdir / "ups.conf"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
    upsconf.write_text(f"user = {user}\n{globals_}" + upsconf.read_text())
    return confdir


def options(confdir: Path, **kw: object) -> DaemonOptions:
    return DaemonOptions(confdir=confdir, listen=[("127.0.0.1", 0)], **kw)  # type: ignore[arg-type]


def bridge(daemon: Daemon, name: str) -> NutDriverBridge:
    driver = daemon.driver(name)
    assert isinstance(driver, NutDriverBridge)
    return driver


async def error(nut: NutClient, ups: str) -> str | None:
    try:
        await nut.get_var(ups, "ups.status")
    except NutError as exc:
        return exc.code
    return None


def one_ups(tmp_path: Path, **keys: str) -> Path:
    dev = write_dev_file(tmp_path / "u.dev", {"ups.status": "OL", "battery.charge": "100"})
    return conf(tmp_path, {"u": {"port": str(dev), **keys}})
