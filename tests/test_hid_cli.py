"""``nuttrio hid-record`` and ``nuttrio hid-explore`` (through pyusb on the fake bus)."""

from __future__ import annotations

import json

from nuttrio.cli.main import main
from nuttrio.hw.hid.recording import load_recording, parse_explore_log

from .hid_data import BK650, need


def test_record_a_replayed_device_round_trips(tmp_path, capsys):
    out = tmp_path / "bk650.json"
    assert main(["hid-record", "--replay", str(need(BK650)), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "nuttrio-hid-recording/1"
    assert (doc["vendorid"], doc["productid"]) == ("051d", "0002")
    original = load_recording(BK650)
    again = load_recording(out)
    assert again.descriptor == original.descriptor
    assert again.features == original.features  # every feature report read once
    assert again.strings[4] == "PbAc"
    assert again.serial == "9B2019A14274"


def test_explore_prints_nut_path_lines(capsys):
    assert main(["hid-explore", str(need(BK650))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# 051d:0002 American Power Conversion / BK650M2-CH")
    paths = [line for line in lines if line.startswith("Path: ")]
    assert len(paths) == parse_explore_log(BK650.read_text()).objects == 71
    assert (
        "Path: UPS.PowerSummary.RunTimeToEmpty, Type: Feature, ReportID: 0x0f, Offset: 0, "
        "Size: 16, Value: 3618 (unit s)"
    ) in paths
    assert any("LogMax is less than LogMin" in line for line in lines)


def test_explore_with_vendor_names(capsys):
    assert main(["hid-explore", "--names", "apc", str(need(BK650))]) == 0
    assert "UPS.Input.APCSensitivity" in capsys.readouterr().out


def test_no_device(capsys):
    assert main(["hid-explore", "--replay", str(need(BK650)), "--vendorid", "0764"]) == 1
    assert "no matching USB HID UPS found" in capsys.readouterr().err


def test_record_interrupt_reports_for_some_seconds(tmp_path):
    import attrs

    source = tmp_path / "with-events.json"
    rec = attrs.evolve(
        load_recording(need(BK650)), interrupts=((0.1, bytes.fromhex("160a000000")),)
    )
    source.write_text(rec.to_json())
    out = tmp_path / "again.json"
    assert main(["hid-record", "--replay", str(source), "--seconds", "1", "-o", str(out)]) == 0
    again = load_recording(out)
    assert again.interrupts  # replayed at 0.1 s, then every 1.1 s
    assert all(report == bytes.fromhex("160a000000") for _, report in again.interrupts)
    assert 0.0 < again.interrupts[0][0] < 1.0
