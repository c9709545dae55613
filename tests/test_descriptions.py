from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from nuttrio.descriptions import DEFAULT_DATAPATH, Descriptions
from nuttrio.protocol.tokenizer import Line, split_text

SYSTEM_CMDVARTAB = Path("/usr/share/nut/cmdvartab")
VARTAB = Path(__file__).parent.parent / "nuttrio" / "data" / "vartab.txt"

# Every name in RFC 9271 Tables 6, 7 and 8 (typical variables and instant commands).
RFC_VARIABLES = [
    "battery.charge",
    "battery.charge.low",
    "battery.runtime",
    "battery.type",
    "device.mfr",
    "device.model",
    "device.serial",
    "device.type",
    "driver.name",
    "driver.parameter.lowbatt",
    "driver.parameter.offdelay",
    "driver.parameter.ondelay",
    "driver.parameter.pollfreq",
    "driver.parameter.pollinterval",
    "driver.parameter.port",
    "driver.parameter.synchronous",
    "driver.parameter.vendorid",
    "driver.version",
    "driver.version.data",
    "driver.version.internal",
    "input.transfer.high",
    "input.transfer.low",
    "outlet.1.desc",
    "outlet.1.id",
    "outlet.1.status",
    "outlet.1.switchable",
    "outlet.2.desc",
    "outlet.2.id",
    "outlet.2.status",
    "outlet.2.switchable",
    "outlet.desc",
    "outlet.id",
    "outlet.power",
    "outlet.switchable",
    "output.frequency.nominal",
    "output.voltage",
    "output.voltage.nominal",
    "ups.beeper.status",
    "ups.delay.shutdown",
    "ups.delay.start",
    "ups.firmware",
    "ups.load",
    "ups.mfr",
    "ups.model",
    "ups.power.nominal",
    "ups.productid",
    "ups.serial",
    "ups.status",
    "ups.temperature",
    "ups.timer.shutdown",
    "ups.timer.start",
    "ups.vendorid",
]
RFC_COMMANDS = [
    "beeper.disable",
    "beeper.enable",
    "beeper.mute",
    "load.off",
    "load.off.delay",
    "load.on",
    "load.on.delay",
    "shutdown.return",
    "shutdown.stayoff",
    "shutdown.stop",
]


def parse(text: str | bytes) -> Descriptions:
    return Descriptions.parse(text)


# -- parsing, as upsd's desc_load() does it ------------------------------------------------


def test_basic_lines() -> None:
    d = parse('VARDESC ups.status "UPS status"\nCMDDESC load.off "Turn it off"\n')
    assert d.var("ups.status") == "UPS status"
    assert d.cmd("load.off") == "Turn it off"
    # Variables and commands are separate tables.
    assert d.cmd("ups.status") is None
    assert d.var("load.off") is None


def test_lookup_is_case_insensitive_and_exact() -> None:
    d = parse('VARDESC Battery.Charge "charge"\nCMDDESC LOAD.OFF "off"\n')
    assert d.var("battery.charge") == "charge"
    assert d.var("BATTERY.CHARGE") == "charge"
    assert d.cmd("load.off") == "off"
    assert d.cmd("Load.Off") == "off"
    # Whole names only: no prefix, suffix or templating.
    assert d.var("battery") is None
    assert d.var("battery.charge.low") is None
    assert d.var("battery.charge ") is None
    # Only ASCII letters fold, like strcasecmp in the C locale (U+212A is KELVIN SIGN).
    k = parse('VARDESC k "x"\n')
    assert k.var("K") == "x"
    assert k.var("\u212a") is None


def test_missing_names_return_none() -> None:
    d = parse('VARDESC a "x"\n')
    assert d.var("b") is None
    assert d.cmd("a") is None
    assert Descriptions().var("ups.status") is None
    assert Descriptions().cmd("load.off") is None


def test_comments_and_blank_lines() -> None:
    d = parse(
        "# a comment line\n"
        "\n"
        "   \t  \n"
        'VARDESC a "text" # trailing comment\n'
        '# VARDESC b "commented out"\n'
        'VARDESC c "has \\# escaped hash"\n'
        "VARDESC d unquoted#comment\n"
    )
    assert d.var("a") == "text"
    assert d.var("b") is None
    assert d.var("c") == "has # escaped hash"
    assert d.var("d") == "unquoted"


def test_quoting_and_escapes() -> None:
    d = parse(
        'VARDESC q "say \\"hi\\" twice"\n'
        'VARDESC bs "back\\\\slash"\n'
        "VARDESC sp a\\ b\n"
        'VARDESC empty ""\n'
        'VARDESC mid ab"cd\n'
        'VARDESC cont "first \\\nsecond"\n'
        'VARDESC "quoted.name" "n"\n'
    )
    assert d.var("q") == 'say "hi" twice'
    assert d.var("bs") == "back\\slash"
    assert d.var("sp") == "a b"
    assert d.var("empty") == ""
    assert d.var("mid") == 'ab"cd'  # a quote inside a word is literal
    assert d.var("cont") == "first second"  # backslash-newline continues the line
    assert d.var("quoted.name") == "n"


def test_whitespace_crlf_and_missing_final_newline() -> None:
    d = parse('VARDESC\ta\t"tabs"\r\nCMDDESC  b   "spaces"\r\nVARDESC c "no newline"')
    assert d.var("a") == "tabs"
    assert d.cmd("b") == "spaces"
    assert d.var("c") == "no newline"


def test_only_the_third_word_is_used() -> None:
    d = parse('VARDESC a several unquoted words\nVARDESC b "quoted" "extra"\n')
    assert d.var("a") == "several"
    assert d.var("b") == "quoted"


def test_equals_sign_is_its_own_word() -> None:
    # parseconf always splits an unquoted '=' off, so the text becomes "=".
    d = parse('VARDESC a="text"\n')
    assert d.var("a") == "="


def test_short_and_unknown_lines_are_skipped() -> None:
    d = parse(
        "VARDESC onlyname\n"
        "VARDESC\n"
        'vardesc lower "keyword is case-sensitive"\n'
        'Cmddesc lower "keyword is case-sensitive"\n'
        'DESC x "unknown keyword"\n'
        'VARDESC ok "kept"\n'
    )
    assert d.var("onlyname") is None
    assert d.var("lower") is None
    assert d.cmd("lower") is None
    assert d.var("x") is None
    assert d.var("ok") == "kept"
    assert dict(d.variables) == {"ok": "kept"}
    assert dict(d.commands) == {}


def test_duplicates_last_one_wins_case_insensitively() -> None:
    d = parse(
        'VARDESC ups.status "first"\n'
        'VARDESC UPS.Status "second"\n'
        'CMDDESC load.off "one"\n'
        'CMDDESC load.off "two"\n'
    )
    assert d.var("ups.status") == "second"
    assert d.cmd("load.off") == "two"
    assert len(d.variables) == 1


def test_hash_inside_quotes_is_a_parse_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="nuttrio.descriptions"):
        d = parse('VARDESC bad "has # inside"\nVARDESC good "fine"\n')
    assert d.var("bad") is None
    assert d.var("good") == "fine"
    assert any("Parse error" in r.getMessage() for r in caplog.records)


def test_non_ascii_and_control_bytes_are_dropped() -> None:
    d = parse(b'VARDESC a "caf\xc3\xa9\tbar\x01"\n')
    assert d.var("a") == "cafbar"
    assert parse('VARDESC b "na\u00efve"\n').var("b") == "nave"


def test_constructor_folds_keys_and_is_read_only() -> None:
    d = Descriptions({"UPS.Status": "s"}, {"Load.Off": "o"})
    assert dict(d.variables) == {"ups.status": "s"}
    assert d.cmd("LOAD.OFF") == "o"
    assert d == Descriptions({"ups.status": "s"}, {"load.off": "o"})
    with pytest.raises(TypeError):
        d.variables["x"] = "y"  # type: ignore[index]
    assert "entries" in repr(d)


# -- files and fallbacks -------------------------------------------------------------------


def test_from_cmdvartab(tmp_path: Path) -> None:
    path = tmp_path / "cmdvartab"
    path.write_bytes(b'VARDESC a "from file"\n')
    assert Descriptions.from_cmdvartab(path).var("a") == "from file"
    assert Descriptions.from_cmdvartab(str(path)).var("a") == "from file"
    with pytest.raises(FileNotFoundError):
        Descriptions.from_cmdvartab(tmp_path / "nope")


def test_load_prefers_datapath(tmp_path: Path) -> None:
    data, system = tmp_path / "data", tmp_path / "system"
    data.mkdir()
    system.mkdir()
    (data / "cmdvartab").write_text('VARDESC a "datapath"\n')
    (system / "cmdvartab").write_text('VARDESC a "system"\n')
    assert Descriptions.load(data, default_datapath=system).var("a") == "datapath"
    assert Descriptions.load(str(data), default_datapath=system).var("a") == "datapath"


def test_load_falls_back_to_system_then_builtin(tmp_path: Path) -> None:
    empty, system = tmp_path / "empty", tmp_path / "system"
    empty.mkdir()
    system.mkdir()
    (system / "cmdvartab").write_text('VARDESC a "system"\n')
    assert Descriptions.load(empty, default_datapath=system).var("a") == "system"
    assert Descriptions.load(None, default_datapath=system).var("a") == "system"
    assert Descriptions.load(empty, default_datapath=tmp_path / "nope") is Descriptions.builtin()
    assert Descriptions.load(None, default_datapath=None) is Descriptions.builtin()


def test_default_datapath_is_debian_datadir() -> None:
    assert Path("/usr/share/nut") == DEFAULT_DATAPATH


# -- the built-in table --------------------------------------------------------------------


def test_builtin_loads_and_has_common_names() -> None:
    b = Descriptions.builtin()
    assert b is Descriptions.builtin()  # cached
    for name in ("ups.status", "battery.charge", "battery.runtime", "input.voltage"):
        assert b.var(name), name
    for name in ("load.off", "load.on", "shutdown.return", "test.battery.start"):
        assert b.cmd(name), name
    assert b.var("UPS.STATUS") == b.var("ups.status")
    assert b.var("no.such.variable") is None


@pytest.mark.parametrize("name", RFC_VARIABLES)
def test_builtin_covers_rfc_variables(name: str) -> None:
    assert Descriptions.builtin().var(name)


@pytest.mark.parametrize("name", RFC_COMMANDS)
def test_builtin_covers_rfc_commands(name: str) -> None:
    assert Descriptions.builtin().cmd(name)


def test_builtin_file_is_clean() -> None:
    # Every non-comment line is a three-word VARDESC/CMDDESC line with no duplicate names,
    # and every text is safe to send unescaped on the wire.
    seen: set[tuple[str, str]] = set()
    for line in split_text(VARTAB.read_bytes()):
        assert isinstance(line, Line), line
        kind, name, text = line.words
        assert kind in ("VARDESC", "CMDDESC"), line
        assert (kind, name.lower()) not in seen, name
        seen.add((kind, name.lower()))
        assert text, name
        assert re.fullmatch(r"[ -~]+", text), name
        assert not set(text) & set('"#\\'), name
        assert len(text) < 100, name
    assert len(seen) == len(Descriptions.builtin().variables) + len(Descriptions.builtin().commands)


# -- the installed NUT table ---------------------------------------------------------------


@pytest.mark.skipif(not SYSTEM_CMDVARTAB.is_file(), reason="NUT's cmdvartab is not installed")
def test_load_without_datapath_reads_system_cmdvartab() -> None:
    loaded = Descriptions.load(None)
    assert loaded == Descriptions.from_cmdvartab(SYSTEM_CMDVARTAB)
    simple = re.compile(r'(VARDESC|CMDDESC) (\S+) "([^"\\#]*)"\s*$')
    count = 0
    for raw in SYSTEM_CMDVARTAB.read_text(encoding="ascii").splitlines():
        m = simple.match(raw)
        if m is None:
            continue
        count += 1
        lookup = loaded.var if m[1] == "VARDESC" else loaded.cmd
        assert lookup(m[2]) == m[3], raw
        assert lookup(m[2].upper()) == m[3], raw
    assert count > 100
    assert loaded.var("ups.status") == "UPS status"
