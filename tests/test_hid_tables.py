"""The subdriver tables and usbhid-ups's walks: recorded bytes in, NUT's upsc values out."""

from __future__ import annotations

import attrs
import pytest

from nuttrio.hw.hid.core import HidCore, HidSettings, WalkMode, alarm_text, status_line
from nuttrio.hw.hid.descriptor import parse_descriptor
from nuttrio.hw.hid.recording import load_recording, parse_explore_log
from nuttrio.hw.hid.subdrivers import (
    DeviceIds,
    find_subdriver,
    subdriver_names,
    subdrivers,
    unsupported_rows,
)

from .hid_data import BK650, CS500, need

#: upsc values the dump's own reports cannot give: the BK650M2 report anonymised
#: ups.serial (device.serial kept it), and its upsc part was taken at 5 % load while the
#: explore part read report 0x50 as 0.
NOT_FROM_THESE_BYTES = {"ups.serial", "ups.load"}


def core_for(path, settings=None):
    rec = load_recording(path)
    ids = DeviceIds(rec.vendorid, rec.productid, rec.manufacturer, rec.product, rec.serial)
    sub = find_subdriver(ids)
    assert sub is not None
    core = HidCore(sub.fix_report_desc(parse_descriptor(rec.descriptor), ids), sub, ids, settings)
    for rid in core.reports_to_read(WalkMode.INIT, 0.0):
        if rid in rec.features:
            core.cache.store(rec.features[rid], 0.0)
    for index in core.strings_to_read(WalkMode.INIT):
        core.strings[index] = rec.strings.get(index, "")
    core.walk(WalkMode.INIT)
    core.walk(WalkMode.FULL)
    return core


@pytest.mark.parametrize("dump", [CS500, BK650], ids=["CS500", "BK650M2"])
def test_apc_table_gives_exactly_what_nut_printed(dump):
    log = parse_explore_log(need(dump).read_text())
    core = core_for(dump)
    assert core.subdriver.name == "apc"
    ours = {v.name: v.value for v in core.variables() if not v.name.startswith("driver.")}
    nut = {k: v for k, v in log.upsc.items() if not k.startswith("driver.")}
    skip = NOT_FROM_THESE_BYTES if dump == BK650 else set()
    assert {k: v for k, v in ours.items() if k not in skip} == {
        k: v for k, v in nut.items() if k not in skip
    }


def test_cs500_commands_are_those_nut_listed():
    text = need(CS500).read_text()
    listed = [line[5:].strip() for line in text.splitlines() if line.startswith("#CMD:")]
    assert sorted(core_for(CS500).commands) == sorted(listed)


def test_bk650_flags_rw_and_load_from_its_report():
    core = core_for(BK650)
    by_name = {v.name: v for v in core.variables()}
    assert by_name["battery.charge.low"].rw
    assert by_name["battery.charge.low"].string
    assert by_name["battery.charge.low"].aux == 10
    assert not by_name["battery.charge"].rw
    # the load the upsc part shows, once the report says it
    core.cache.store(bytes([0x50, 5]), 100.0)
    core.walk(WalkMode.FULL)
    assert core.info("ups.load") == "5"
    # DelayBeforeShutdown but no DelayBeforeStartup: load.off, and no composites
    assert "load.off" in core.commands
    assert "shutdown.return" not in core.commands


def test_writes_become_set_reports_on_the_cached_report():
    core = core_for(BK650)
    # load.off.delay 20 on report 0x15 (DelayBeforeShutdown, 16 bits, LogMin -1)
    (write,) = core.plan_instcmd("load.off.delay", "20") or []
    assert write.report == bytes.fromhex("151400")
    (write,) = core.plan_instcmd("shutdown.stop") or []
    assert write.report == bytes.fromhex("15ffff")
    (write,) = core.plan_setvar("battery.charge.low", "40") or []
    assert write.report == bytes.fromhex("1128")
    assert core.plan_setvar("battery.charge", "40") is None  # not writable
    assert core.plan_setvar("ups.delay.shutdown", "60") == []  # driver side only
    assert core.info("ups.delay.shutdown") == "60"
    assert core.plan_instcmd("no.such.command") is None
    (write,) = core.plan_instcmd("beeper.enable") or []
    assert write.report == bytes.fromhex("1802")
    core.written()
    assert core.changed
    assert not core.cache.stamps


def test_offdelay_and_lowbatt_options_override_the_defaults():
    core = core_for(BK650, HidSettings(offdelay=45, lowbatt=33))
    assert core.info("ups.delay.shutdown") == "45"
    assert core.info("battery.charge.low") == "33"


def test_interrupt_report_changes_status_at_once():
    core = core_for(BK650)
    assert core.info("ups.status") == "OL DISCHRG"
    # report 0x16: bit 0 Charging, 1 Discharging, 2 ACPresent, 3 BatteryPresent
    used = core.apply_interrupt(bytes.fromhex("160a000000"), 10.0)
    assert used > 0
    assert core.info("ups.status") == "OB DISCHRG"
    core.apply_interrupt(bytes.fromhex("160d000000"), 11.0)
    assert core.info("ups.status") == "OL CHRG"


def test_onlinedischarge_makes_ol_dischrg_ob():
    core = core_for(BK650, HidSettings(onlinedischarge=True))
    assert core.info("ups.status") == "OB DISCHRG"


@pytest.mark.parametrize(
    ("bits", "status"),
    [
        ({"online"}, "OL"),
        (set(), "OB"),
        ({"online", "chrg"}, "OL CHRG"),
        ({"online", "chrg", "fullycharged"}, "OL"),
        ({"dischrg", "lowbatt"}, "OB DISCHRG LB"),
        ({"dischrg", "depleted", "shutdownimm"}, "OB LB"),
        ({"online", "timelimitexp"}, "OL LB"),
        ({"online", "overload", "replacebatt"}, "OL OVER RB"),
        ({"online", "trim"}, "OL TRIM"),
        ({"online", "boost"}, "OL BOOST"),
        ({"online", "bypassauto"}, "OL BYPASS"),
        ({"online", "off", "cal"}, "OL OFF CAL"),
    ],
)
def test_status_line_as_usbhid_ups(bits, status):
    assert status_line(bits) == status


def test_alarms():
    assert alarm_text({"replacebatt", "fanfail"}) == "Replace battery! Fan failure!"
    assert alarm_text({"online"}) == ""


def test_tables_as_data():
    assert subdriver_names() == ["mge", "apc", "cps", "tripplite", "generic"]
    by_name = {s.name: s for s in subdrivers()}
    apc = by_name["apc"]
    assert apc.claim(DeviceIds(0x051D, 0x0002))
    assert not apc.claim(DeviceIds(0x051D, 0x9999))
    assert apc.claim(DeviceIds(0x051D, 0x9999), productid_given=True)
    assert by_name["mge"].claim(DeviceIds(0x0463, 0xFFFF))
    assert by_name["cps"].claim(DeviceIds(0x0764, 0x0501))
    assert by_name["tripplite"].claim(DeviceIds(0x09AE, 0x3024))
    assert find_subdriver(DeviceIds(0x1234, 0x5678)).name == "generic"
    assert find_subdriver(DeviceIds(0x1234, 0x5678), forced="APC HID").name == "apc"
    assert apc.quirks(DeviceIds(0x051D, 0x0002, product="Back-UPS CS 650")) == {
        "max_report_size": 1
    }
    assert by_name["cps"].quirks(DeviceIds(0x0764, 0x0501)) == {"cps_check_scale": 1}
    assert by_name["tripplite"].quirks(DeviceIds(0x09AE, 0x1330))["skip_report"] == 0x54
    # the vendor pages' names resolve: APC ff86, MGE ffff
    assert apc.usages.code_of("APCStatusFlag") == 0xFF860060
    assert by_name["mge"].usages.code_of("iModel") is not None
    # what nuttrio leaves out, listed rather than hidden
    assert all(sub in ("mge",) for sub in unsupported_rows())


def test_cps_voltage_fix():
    from nuttrio.hw.hid.descriptor import Field, ItemType, ReportDescriptor

    def voltage(rid, usage, leaf):
        return Field(
            path=(0x840004, usage, leaf),
            kind=ItemType.FEATURE,
            report_id=rid,
            offset=0,
            size=16,
            log_min=0,
            log_max=300,
        )

    hvt = voltage(16, 0x84001A, 0x840054)
    out = voltage(18, 0x84001C, 0x840030)
    inp = voltage(15, 0x84001A, 0x840030)
    desc = ReportDescriptor(fields=(hvt, out, inp), report_lengths={15: 2, 16: 2, 18: 2})
    cps = {s.name: s for s in subdrivers()}["cps"]
    for pid in (0x0501, 0x0601):
        fixed = cps.fix_report_desc(desc, DeviceIds(0x0764, pid))
        assert [(f.log_min, f.log_max) for f in fixed.fields] == [(0, 300), (0, 511), (0, 511)]
    assert cps.fix_report_desc(desc, DeviceIds(0x0764, 0x0005)) is desc
    healthy = ReportDescriptor(
        fields=(hvt, attrs.evolve(out, log_max=511), inp), report_lengths={15: 2, 16: 2, 18: 2}
    )
    assert cps.fix_report_desc(healthy, DeviceIds(0x0764, 0x0501)) == healthy


def test_coverage_report_in_docs_is_current():
    from pathlib import Path

    from nuttrio.hw.hid.coverage import coverage_of, coverage_report

    from .hid_data import DDL

    need(DDL)
    doc = Path(__file__).resolve().parents[1] / "docs" / "drivers-usbhid.md"
    assert doc.read_text() == coverage_report(DDL), (
        "regenerate: python -m nuttrio.hw.hid.coverage ../shared/data/nut-ddl "
        "> docs/drivers-usbhid.md"
    )
    cs500 = coverage_of(CS500)
    assert cs500 is not None
    assert cs500.subdriver == "apc"
    assert cs500.missing == ()


def test_udev_rule_covers_every_vendor_of_the_tables():
    import re
    from pathlib import Path

    rule = Path(__file__).resolve().parents[1] / "examples" / "udev" / "90-nuttrio-ups.rules"
    rules = [line for line in rule.read_text().splitlines() if line and line[0] != "#"]
    assert all(line.endswith('MODE="0660", GROUP="nuttrio"') for line in rules)
    vendors = {
        int(v, 16) for v in re.findall(r'ATTR\{idVendor\}=="([0-9a-f]{4})"', "\n".join(rules))
    }
    assert vendors == {vid for sub in subdrivers() for vid in sub.vendors}


def test_replace_battery_sets_rb_and_its_alarm_on_the_full_walk():
    core = core_for(BK650)
    # report 0x16 bit 6: NeedReplacement (with ACPresent, BatteryPresent)
    core.apply_interrupt(bytes.fromhex("164c000000"), 5.0)
    assert core.info("ups.status") == "OL RB"
    core.walk(WalkMode.FULL)
    assert core.info("ups.alarm") == "Replace battery!"
    core.apply_interrupt(bytes.fromhex("160c000000"), 6.0)
    core.walk(WalkMode.FULL)
    assert core.info("ups.alarm") is None


def test_onlinedischarge_calibration():
    core = core_for(BK650, HidSettings(onlinedischarge_calibration=True))
    assert core.info("ups.status") == "OL DISCHRG CAL"


def test_smart_ups_x750_paths_give_exactly_the_variables_nut_printed():
    """A third real descriptor (an lsusb listing, no report bytes): the APC rows that
    resolve in it are exactly the table variables NUT 2.7.4 printed for it."""
    from .hid_data import SMART_X750, lsusb_descriptor

    text = need(SMART_X750).read_text()
    desc = parse_descriptor(lsusb_descriptor(text))
    assert len(lsusb_descriptor(text)) == 425
    assert not desc.problems
    apc = {s.name: s for s in subdrivers()}["apc"]
    resolved = set()
    for row in apc.rows:
        path = apc.usages.parse_path(row.path) if row.path else None
        if not (row.is_bool or row.is_command) and path and desc.find(path):
            resolved.add(row.var)
    printed = {
        line.split(": ")[0]
        for line in text.splitlines()
        if ": " in line and not line.startswith(("#", "driver."))
    }
    assert resolved == printed & {row.var for row in apc.rows}
    assert len(resolved) == 13


def _status_with(core, bits, **values):
    core.bits = set(bits)
    for name, value in values.items():
        core.setinfo(name.replace("_", "."), value)
    core._publish_status()  # the walk's last step, on these values (a walk re-reads them)
    return core.info("ups.status")


def test_ignorelb_drops_the_device_lb_and_takes_the_thresholds():
    """dstate.c's ignorelb: LB only when charge < charge.low, else runtime < runtime.low."""
    plain = core_for(BK650)
    low = core_for(BK650, HidSettings(ignorelb=True))
    charge_low = low.info("battery.charge.low")
    assert charge_low is not None
    high = str(int(charge_low) + 1)
    assert _status_with(plain, {"online", "lowbatt"}, battery_charge=high) == "OL LB"
    assert _status_with(low, {"online", "lowbatt"}, battery_charge=high) == "OL"
    assert _status_with(low, {"online"}, battery_charge=charge_low) == "OL"  # not below
    below = str(int(charge_low) - 1)
    assert _status_with(low, {"online"}, battery_charge=below) == "OL LB"
    # without ignorelb NUT derives nothing from the charge
    assert _status_with(plain, {"online"}, battery_charge=below) == "OL"
    low.setinfo("battery.runtime.low", "120")
    assert _status_with(low, {"online"}, battery_charge=high, battery_runtime="119") == "OL LB"


def test_lowbatt_replaces_charge_low_for_ignorelb():
    core = core_for(BK650, HidSettings(ignorelb=True, lowbatt=60))
    assert core.info("battery.charge.low") == "60"
    assert _status_with(core, {"online"}, battery_charge="59") == "OL LB"
    assert _status_with(core, {"online"}, battery_charge="60") == "OL"


def _status_at(core, now, bits):
    core.now = now
    return _status_with(core, bits).split()


def test_lbrb_log_delay_holds_lb_and_rb_while_online_and_calibrating():
    settings = HidSettings(lbrb_log_delay_sec=5, onlinedischarge_calibration=True)
    core = core_for(BK650, settings)
    bits = {"online", "dischrg", "lowbatt", "replacebatt"}
    assert "LB" not in _status_at(core, 10.0, bits)  # the delay starts
    assert "RB" not in _status_at(core, 12.0, bits)
    assert "LB" not in _status_at(core, 15.0, bits)  # not longer than 5 s yet
    assert {"LB", "RB"} <= set(_status_at(core, 15.5, bits)) | {"RB"}
    assert "LB" in _status_at(core, 16.0, bits)
    # on battery: at once
    assert "LB" in _status_at(core_for(BK650, settings), 0.0, {"dischrg", "lowbatt"})
    # online, not calibrating: at once, unless lbrb_log_delay_without_calibrating
    assert "LB" in _status_at(core_for(BK650, HidSettings(lbrb_log_delay_sec=5)), 0.0, bits)
    eager = HidSettings(lbrb_log_delay_sec=5, lbrb_log_delay_without_calibrating=True)
    assert "LB" not in _status_at(core_for(BK650, eager), 0.0, {"online", "lowbatt"})
    # RB alone (no LB being held) shows at once
    assert "RB" in _status_at(core_for(BK650, settings), 0.0, {"online", "dischrg", "replacebatt"})
