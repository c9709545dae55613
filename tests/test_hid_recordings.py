"""The esp32-nut recordings (shared/data/hid): their scenarios through the usbhid-ups core.

Their ``expected_ups_data`` is esp32-nut's own decoding, a hint rather than NUT's output
(see that folder's README), so each disagreement is listed here with NUT's reason.
"""

from __future__ import annotations

import json

import pytest

from nuttrio.hw.hid.core import HidCore, WalkMode
from nuttrio.hw.hid.descriptor import parse_descriptor
from nuttrio.hw.hid.recording import load_recording
from nuttrio.hw.hid.subdrivers import DeviceIds, find_subdriver

from .hid_data import HID, need

EATON = HID / "eaton" / "eaton_3s_vid0463_pidffff.json"
CS500 = HID / "apc" / "apc_backups_cs500_vid051d_pid0002_issue18.json"

#: Where NUT 2.8.0 (so nuttrio) publishes something else, and why.
NUT_DIFFERS = {
    # an ABSENT row: usbhid-ups publishes its offdelay default, not the device's timer
    "ups.delay.shutdown": "20",
    # mge-hid: round(load % * ups.power.nominal * 0.80) = round(0.05 * 700 * 0.8)
    "ups.realpower": "28",
    # mge-hid's format_model: no iModel string recorded, so iProduct + ConfigApparentPower
    "ups.model": "Eaton 3S 700",
    # no UPS.Flow.[1] in this descriptor: mge-hid has no row that gives them
    "input.voltage.nominal": None,
    "input.frequency.nominal": None,
    # not NUT variables (NUT names outlets' state outlet.N.status)
    "outlet.1.switch": None,
    "outlet.2.switch": None,
}


def replay_scenarios(path):
    doc = json.loads(need(path).read_text())
    rec = load_recording(path)
    ids = DeviceIds(rec.vendorid, rec.productid, rec.manufacturer, rec.product, rec.serial)
    sub = find_subdriver(ids)
    core = HidCore(sub.fix_report_desc(parse_descriptor(rec.descriptor), ids), sub, ids)
    for k, scenario in enumerate(doc["scenarios"]):
        for report in scenario["reports"]:
            data = bytes(report["data"])
            if report.get("report_type", report.get("type")) == 3:
                core.cache.store(data, float(k))
            else:
                core.apply_interrupt(data, float(k))
        core.walk(WalkMode.INIT if k == 0 else WalkMode.FULL)
        yield core, scenario["expected_ups_data"]


@pytest.mark.parametrize("path", [EATON, CS500], ids=["eaton_3s", "cs500"])
def test_scenarios_decode_as_nut_would(path):
    compared = 0
    for core, expected in replay_scenarios(path):
        for name, value in expected.items():
            if name == "ups.type" or name.startswith("ups.status."):
                continue  # esp32-nut internals
            want = NUT_DIFFERS.get(name, str(value))
            assert core.info(name) == want, name
            compared += 1
    assert compared == (19 if path == EATON else 1)


def test_eaton_status_from_its_flags():
    for core, expected in replay_scenarios(EATON):
        flags = {k.split(".")[-1]: v for k, v in expected.items() if k.startswith("ups.status.")}
        assert flags["ac_present"] == "1"
        assert core.info("ups.status").split()[0] == "OL"
        assert core.subdriver.name == "mge"
