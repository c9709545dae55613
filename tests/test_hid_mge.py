"""mge-hid.c's model families: names from iProduct/iModel, and the rows they gate."""

from __future__ import annotations

import attrs
import pytest

from nuttrio.hw.hid.subdrivers import (
    EATON_5P,
    MGE_3S,
    MGE_DEFAULT,
    MGE_OFFLINE,
    MGE_PEGASUS,
    DeviceIds,
    mge_model,
    subdrivers,
)

from .hid_data import DDL, need


@attrs.define
class Ctx:
    """The ConvertContext of a device of one family."""

    quirks: dict[str, float] = attrs.field(factory=dict)

    def string(self, index: int) -> str:
        return ""

    def info(self, name: str) -> str | None:
        return None


def _mge():
    return {s.name: s for s in subdrivers()}["mge"]


def _row(var: str, path: str):
    return next(r for r in _mge().rows if r.var == var and r.path == path)


def _dump(name: str) -> dict[str, str]:
    text = need(DDL / name).read_text()
    return dict(
        line.split(": ", 1) for line in text.splitlines() if ": " in line and line[0] != "#"
    )


_PS = "UPS.PowerSummary."
#: Dump, and the iProduct / iModel its model name shows (a table entry, or the two words
#: NUT joined), and the family mge-hid.c gives it.
GOLDEN = [
    ("Eaton/Eaton__5P_650__usbhid-ups__2.7.4__01.dev", "Eaton 5P", "650", EATON_5P),
    ("Eaton/Eaton__5P_650__usbhid-ups__2.7.2__01.dev", "Eaton 5P", "650", EATON_5P),
    (
        "Eaton/Eaton__Protection_Station_650__usbhid-ups__2.6.5__01.dev",
        "Protection Station",
        "650",
        MGE_PEGASUS,
    ),
    (
        "Eaton/Eaton__Ellipse_ECO_1600__usbhid-ups__2.6.0__01.dev",
        "Ellipse ECO",
        "1600",
        MGE_PEGASUS,
    ),
    (
        "MGE_UPS_SYSTEMS/MGE_UPS_SYSTEMS__Protection_Center_675__usbhid-ups__2.4.3__01.dev",
        "PROTECTIONCENTER",
        "675",
        MGE_OFFLINE,
    ),
    (
        "MGE_UPS_SYSTEMS/MGE_UPS_SYSTEMS__Pulsar_Evolution_3000__usbhid-ups__2.6.1__01.dev",
        "Evolution",
        "3000",
        MGE_DEFAULT,
    ),
    (
        "MGE_UPS_SYSTEMS/MGE_UPS_SYSTEMS__Pulsar_Evolution_500__usbhid-ups__2.7.2__01.dev",
        "Evolution",
        "500",
        MGE_DEFAULT,
    ),
    ("Eaton/Eaton__5SC_750__usbhid-ups__2.7.2__01.dev", "Eaton 5SC", "750", MGE_DEFAULT),
]


@pytest.mark.parametrize(("dump", "iproduct", "imodel", "family"), GOLDEN)
def test_model_name_and_family_rows_as_nut_printed(dump, iproduct, imodel, family):
    nut = _dump(dump)
    ids = DeviceIds(0x0463, 0xFFFF, nut["ups.mfr"], iproduct)
    name, got_family = _mge().format_model(ids, imodel) or ("", -1)
    assert (name, got_family) == (nut["ups.model"], family)
    assert name == nut.get("device.model", name)
    assert _mge().identity(ids)["ups.mfr"] == nut["ups.mfr"]
    ctx = Ctx({"mge_type": family, "country": 0})
    volt = _row("battery.voltage", _PS + "Voltage").lookup
    nominal = _row("battery.voltage.nominal", _PS + "ConfigVoltage").lookup
    if "battery.voltage" in nut:
        assert volt.to_nut(float(nut["battery.voltage"]), ctx) == nut["battery.voltage"]
        value = float(nut["battery.voltage.nominal"])
        assert nominal.to_nut(value, ctx) == nut["battery.voltage.nominal"]
    else:
        assert volt.to_nut(13.7, ctx) is None
        assert nominal.to_nut(12, ctx) is None
    threshold = _row("outlet.power", "UPS.OutletSystem.Outlet.[1].ConfigApparentPower").lookup
    if family == MGE_PEGASUS:
        assert threshold.to_nut(float(nut["outlet.power"]), ctx) == nut["outlet.power"]
        assert threshold.enum_values(ctx) == ("10", "25", "60")
    else:
        assert threshold.to_nut(25, ctx) is None
        assert threshold.enum_values(ctx) == ()


def test_unknown_models_join_iproduct_and_imodel_and_are_line_interactive():
    assert mge_model("Eaton 3S", "550") == ("Eaton 3S 550", MGE_DEFAULT)
    assert mge_model("ELLIPSE", "600") == ("Ellipse 600", MGE_OFFLINE)
    assert mge_model("Evolution", "650") == ("Evolution 650", 0x301)
    assert mge_model("3S", "750") == ("3S 750", MGE_3S)


def test_dell_and_no_model_string_keep_iproduct():
    assert _mge().format_model(DeviceIds(0x047C, 0xFFFF, product="Dell UPS"), "650") is None
    assert _mge().format_model(DeviceIds(0x0463, 0xFFFF, product="Eaton 5P"), "") is None
    assert _mge().format_model(DeviceIds(0x0463, 0xFFFF), "650") == ("unknown 650", MGE_DEFAULT)


def test_evolution_650_says_12_volts_and_every_3s_eco_as_nut_masks_it():
    nominal = _row("battery.voltage.nominal", _PS + "ConfigVoltage").lookup
    assert nominal.to_nut(24, Ctx({"mge_type": 0x301})) == "12"
    assert nominal.to_nut(24, Ctx({"mge_type": 0x305})) == "24"
    switch = _row("outlet.2.switchable", "UPS.OutletSystem.Outlet.[3].PresentStatus.Switchable")
    assert switch.lookup.name == "pegasus_yes_no_info"
    # NUT's 0xFF00 mask makes a 3S a Pegasus, in Europe (country 0) too
    assert switch.lookup.to_nut(1, Ctx({"mge_type": MGE_3S, "country": 0})) == "yes"
    assert switch.lookup.to_nut(1, Ctx({"mge_type": MGE_DEFAULT})) is None
    assert switch.lookup.to_hid("yes") == 1


@pytest.mark.parametrize(
    ("family", "first", "offered"),
    [
        (MGE_OFFLINE, 230, ("220", "230", "240")),
        (MGE_DEFAULT, 230, ("200", "208", "220", "230", "240")),
        (MGE_OFFLINE, 208, ("200", "208")),
        (EATON_5P, 208, ("200", "208", "220", "230", "240")),
        (EATON_5P, 120, ("100", "110", "120", "127")),
    ],
)
def test_output_voltage_nominal_choices_follow_the_family(family, first, offered):
    row = next(r for r in _mge().rows if r.var == "output.voltage.nominal")
    ctx = Ctx({"mge_type": family})
    assert row.lookup.to_nut(first, ctx) == str(first)
    assert sorted(row.lookup.enum_values(ctx), key=int) == sorted(offered, key=int)
