"""The HID parser and codec against NUT 2.8.0's own explore dumps (nut-ddl) and recordings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nuttrio.hw.hid.codec import decode, encode, get_logical, set_logical, to_logical
from nuttrio.hw.hid.descriptor import Field, HIDParseError, ItemType, parse_descriptor
from nuttrio.hw.hid.explore import format_field
from nuttrio.hw.hid.recording import load_recording, parse_explore_log
from nuttrio.hw.hid.usages import STANDARD

from .hid_data import BK650, CS500, ESP32, need


@pytest.mark.parametrize("dump", [CS500, BK650], ids=["CS500", "BK650M2"])
def test_every_path_line_nut_printed_is_reproduced(dump):
    log = parse_explore_log(need(dump).read_text())
    assert len(log.descriptor) == log.declared_size
    desc = parse_descriptor(log.descriptor)
    assert len(desc.fields) == log.objects
    assert not desc.problems
    by_place = {(f.report_id, f.kind.label, f.offset): f for f in desc.fields}
    checked = 0
    for line in log.lines:
        field = by_place[(line.report_id, line.kind, line.offset)]
        assert field.size == line.size
        value = decode(line.report, field)
        ours = format_field(field, value, STANDARD)
        expected = (
            f"Path: {line.path}, Type: {line.kind}, ReportID: 0x{line.report_id:02x}, "
            f"Offset: {line.offset}, Size: {line.size}, Value: {line.value}"
        )
        assert ours == expected
        checked += 1
    assert checked == len(log.lines)
    assert checked == {"CS500": 35, "BK650M2": 90}["CS500" if dump == CS500 else "BK650M2"]


def test_logmax_reread_unsigned_as_nut_warns():
    log = parse_explore_log(need(BK650).read_text())
    desc = parse_descriptor(log.descriptor)
    nut = [w for w in log.warnings if "LogMax is less than LogMin" in w]
    assert len(desc.warnings) == len(nut) == 3
    for ours, theirs in zip(desc.warnings, nut, strict=True):
        assert ours.split("ReportID: ")[1] == theirs.split("ReportID: ")[1]
    rc = desc.find(STANDARD.parse_path("UPS.PowerSummary.RemainingCapacity") or ())
    assert rc is not None
    assert (rc.log_min, rc.log_max) == (0, 255)


def test_report_lengths_count_padding():
    desc = parse_descriptor(parse_explore_log(need(BK650).read_text()).descriptor)
    # 0x16: 9 status bits then 23 padding bits -> 4 data bytes; NUT expected 5 with the id
    assert desc.buffer_length(0x16) == 5
    assert desc.buffer_length(0x0F) == 3


def test_nut_conversion_examples():
    log = parse_explore_log(need(CS500).read_text())
    desc = parse_descriptor(log.descriptor)
    voltage = desc.find(STANDARD.parse_path("UPS.PowerSummary.Voltage") or ())
    assert voltage is not None
    assert voltage.unit == 0x00F0D121
    assert voltage.unit_exp == 5
    assert decode(bytes.fromhex("094e05"), voltage) == pytest.approx(13.58)
    runtime = desc.find(STANDARD.parse_path("UPS.PowerSummary.RunTimeToEmpty") or ())
    assert runtime is not None
    assert decode(bytes.fromhex("0c640000140a"), runtime) == 2580


def test_signed_values_and_round_trip():
    delay = Field(
        path=(0x840057,),
        kind=ItemType.FEATURE,
        report_id=0x15,
        offset=0,
        size=16,
        log_min=-1,
        log_max=32767,
        unit=0x1001,
    )
    assert get_logical(bytes.fromhex("15ffff"), delay) == -1
    assert encode(bytes.fromhex("15ffff"), delay, 20) == bytes.fromhex("151400")
    # garbage above the field's width is thrown away, values are clamped
    wide = Field(
        path=(1,), kind=ItemType.FEATURE, report_id=1, offset=0, size=32, log_min=0, log_max=0xFFFF
    )
    assert get_logical(bytes.fromhex("01000a0880ff"), wide) == 0x0A00
    bit = Field(
        path=(1,), kind=ItemType.INPUT, report_id=0x16, offset=10, size=1, log_min=0, log_max=1
    )
    report = set_logical(bytes.fromhex("160c000000"), bit, 1)
    assert report == bytes.fromhex("160c040000")
    assert get_logical(report, bit) == 1


def test_physical_limits_scale_both_ways():
    field = Field(
        path=(1,),
        kind=ItemType.FEATURE,
        report_id=1,
        offset=0,
        size=8,
        log_min=0,
        log_max=255,
        phys_min=0,
        phys_max=510,
    )
    assert decode(bytes([1, 100]), field) == 200
    assert to_logical(field, 200) == 100


def test_vendor_collection_index_nodes_and_raw_hex_names():
    # UPS { PowerConverter { vendor collection 0x81 { Input.Voltage } } }
    data = bytes.fromhex("05840904a1010916a100091aa1818501093075089501150026ff00b102c0c0c0")
    desc = parse_descriptor(data)
    (field,) = desc.fields
    assert STANDARD.path_string(field.path) == "UPS.PowerConverter.Input.[1].Voltage"
    assert STANDARD.parse_path("UPS.PowerConverter.Input.[1].Voltage") == field.path
    assert STANDARD.path_string((0x840004, 0xFF860060)) == "UPS.ff860060"


@pytest.mark.parametrize("path", ESP32, ids=lambda p: p.name)
def test_esp32_recordings_parse_and_report_truncation(path):
    rec = load_recording(path)
    desc = parse_descriptor(rec.descriptor)
    if "cs500" in path.name:
        assert len(rec.descriptor) == 1024
        assert desc.problems == ("descriptor ends with 2 collection(s) still open",)
    else:
        assert desc.problems == ()
    assert desc.fields


def test_not_a_descriptor():
    with pytest.raises(HIDParseError):
        parse_descriptor(b"\x05\x84\x09\x04")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_cleanly(data):
    try:
        desc = parse_descriptor(data)
    except HIDParseError:
        return
    for field in desc.fields:
        assert 0 <= field.offset < 256
        report = bytes([field.report_id]) + bytes(desc.report_lengths[field.report_id])
        decode(report, field)  # never raises


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(1, 32),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.data(),
)
def test_set_then_get_round_trips_within_limits(offset, size, a, b, data):
    lo, hi = min(a, b), max(a, b)
    # limits a field of this size can hold (signed when negative, as NUT reads them)
    lo = max(lo, -(2 ** (size - 1)) if lo < 0 else 0)
    hi = min(hi, 2 ** (size - 1) - 1 if lo < 0 else 2**size - 1)
    if lo > hi:
        return
    field = Field(
        path=(1,),
        kind=ItemType.FEATURE,
        report_id=7,
        offset=offset,
        size=size,
        log_min=lo,
        log_max=hi,
    )
    value = data.draw(st.integers(lo, hi))
    noise = data.draw(st.binary(min_size=10, max_size=10))
    report = set_logical(bytes([7]) + noise, field, value)
    assert get_logical(report, field) == value
    assert report[0] == 7
