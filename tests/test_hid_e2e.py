"""nuttrio serving a replayed USB HID UPS (``port = replay:FILE``) to NUT's own clients."""

from __future__ import annotations

import subprocess

import pytest

from nuttrio.hw.hid.recording import parse_explore_log

from .hid_data import BK650, CS500, need
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    free_port,
    upsc_binary,
    upsc_dump_many,
    write_nut_config,
)

pytestmark = pytest.mark.realnut


def test_upsc_and_upscmd_against_replayed_devices(tmp_path):
    if upsc_binary() is None:
        pytest.skip("upsc is not installed (package nut-client)")
    port = free_port()
    confdir = write_nut_config(
        tmp_path / "conf",
        port=port,
        ups={
            "cs500": {"driver": "usbhid-ups", "port": f"replay:{need(CS500)}"},
            "bk650": {"driver": "usbhid-ups", "port": f"replay:{need(BK650)}", "offdelay": 60},
        },
    )
    with NuttrioProcess(["--nut-config", str(confdir), "--listen", f"127.0.0.1:{port}"]):
        targets = {name: f"{name}@127.0.0.1:{port}" for name in ("cs500", "bk650")}
        dumps = upsc_dump_many(list(targets.values()))
        cmds = subprocess.run(
            ["upscmd", "-l", targets["cs500"]],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        done = subprocess.run(
            [
                "upscmd",
                "-u",
                ADMIN_USER,
                "-p",
                ADMIN_PASSWORD,
                "-w",
                targets["bk650"],
                "beeper.enable",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    for name, path, skip in (("cs500", CS500, set()), ("bk650", BK650, {"ups.serial", "ups.load"})):
        ours = dict(line.split(": ", 1) for line in dumps[targets[name]])
        nut = parse_explore_log(path.read_text()).upsc
        for key, value in nut.items():
            if key.startswith("driver.") or key in skip:
                continue
            expected = "60" if (name, key) == ("bk650", "ups.delay.shutdown") else value
            assert ours.get(key) == expected, (name, key)
        assert ours["driver.name"] == "usbhid-ups"
    for command in ("shutdown.reboot", "test.panel.start", "test.panel.stop"):
        assert command in cmds
    assert done.returncode == 0, done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
