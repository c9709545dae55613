"""Tests for nuttrio.nutconf's shared helpers and what every file reader has in common.

The C functions (atoi, strtol) are compared with the C library itself; the tokenizer's
configuration mode with NUT's own behaviour (parseconf reads a quoted word on past the end
of its line; test_config.py shows the real upsd doing it).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuttrio.mgmt import machine
from nuttrio.nutconf import (
    NOTIFY_TYPES,
    STATUS_NOTIFY_TYPES,
    ConfigError,
    ConfigWarning,
    load_nut_config,
    load_ups_conf,
    load_upsd_conf,
    load_upsd_users,
    load_upsmon_conf,
    load_upssched_conf,
    split_host_port,
)
from nuttrio.nutconf.common import (
    UPSD_BOOLEANS,
    UPSMON_BOOLEANS,
    atoi,
    fold,
    parse_bool,
    shell_syntax,
    strtol,
    upper,
)
from nuttrio.nutconf.confdir import DEFAULT_STATEPATH
from nuttrio.protocol.tokenizer import Line, LineError, split_text

_LIBC = ctypes.CDLL(None)
_LIBC.atoi.argtypes = [ctypes.c_char_p]
_LIBC.atoi.restype = ctypes.c_int
_LIBC.strtol.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_LIBC.strtol.restype = ctypes.c_long

MON = "MONITOR ups@localhost 1 monuser pass primary\nPOWERDOWNFLAG /run/killpower\n"
SCHED = "CMDSCRIPT /bin/true\nPIPEFN /run/p\nLOCKFN /run/l\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------
# C numbers: the same as the C library


_C_TEXT = st.one_of(
    st.text(alphabet=" \t+-0123456789x", max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.builds(
        lambda pad, n, tail: f"{pad}{n}{tail}",
        st.sampled_from(["", " ", "\t\n "]),
        st.integers(),
        st.sampled_from(["", "s", " 5", ".5"]),
    ),
)


@given(_C_TEXT)
def test_atoi_is_glibc_atoi(text: str) -> None:
    assert atoi(text) == _LIBC.atoi(text.encode())


@given(_C_TEXT)
def test_strtol_is_glibc_strtol(text: str) -> None:
    assert strtol(text) == _LIBC.strtol(text.encode(), None, 10)


@pytest.mark.parametrize(
    ("text", "value"),
    [("12abc", 12), ("abc", 0), ("-", 0), ("+7", 7), (" \t-3", -3), ("2147483648", -2147483648)],
)
def test_atoi_edges(text: str, value: int) -> None:
    assert atoi(text) == value


# ---------------------------------------------------------------------------------------
# Names, booleans, addresses, messages


def test_fold_and_upper_touch_ascii_letters_only() -> None:
    assert fold("ÄBC-ß_x") == "Äbc-ß_x"
    assert upper("äbc-ß_X") == "äBC-ß_X"


@pytest.mark.parametrize(
    ("word", "upsd", "upsmon"),
    [
        ("YES", True, True),
        ("off", False, False),
        ("1", True, None),
        ("0", False, None),
        ("maybe", None, None),
    ],
)
def test_each_program_keeps_its_boolean_words(
    word: str, upsd: bool | None, upsmon: bool | None
) -> None:
    assert parse_bool(word, UPSD_BOOLEANS) is upsd
    assert parse_bool(word, UPSMON_BOOLEANS) is upsmon


def test_boolean_prefixes_for_upsd_environment() -> None:
    assert parse_bool("yes please", UPSD_BOOLEANS) is None
    assert parse_bool("yes please", UPSD_BOOLEANS, prefix=True) is True
    assert parse_bool("Off-ish", UPSD_BOOLEANS, prefix=True) is False


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("h", {}, ("h", 3493)),
        ("h:1", {}, ("h", 1)),
        ("[::1]:5", {}, ("::1", 5)),
        ("[::1]", {"default_port": 7}, ("::1", 7)),
        ("::1", {"bare_ipv6": True}, ("::1", 3493)),
        ("h:0", {"port_zero": True}, ("h", 0)),
    ],
)
def test_split_host_port(text: str, kwargs: dict[str, bool | int], expected: object) -> None:
    assert split_host_port(text, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("::1", "brackets"),
        ("h:0", "1-65535"),
        (":1", "no host before ':'"),
        ("", "no host"),
        ("[::1", "missing ']'"),
        ("[]:1", "empty address"),
        ("[::1]x", "unexpected 'x'"),
    ],
)
def test_split_host_port_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[")):
        split_host_port(text)


def test_config_warning_text_is_the_logged_line() -> None:
    assert str(ConfigWarning(Path("/e/u.conf"), 4, "oops")) == "/e/u.conf:4: oops"
    assert str(ConfigWarning(Path("/e/u.conf"), None, "oops")) == "/e/u.conf: oops"


# ---------------------------------------------------------------------------------------
# The tokenizer: NUT's rule and nuttrio's


def test_parseconf_reads_a_quoted_word_past_the_end_of_its_line() -> None:
    # NUT's behaviour, kept for the protocol and for .dev files: the LF is dropped.
    (line,) = split_text(b'password = "adminpass\nactions = SET\n[next]\n')
    assert isinstance(line, Line)
    assert line.words == ("password", "=", "adminpassactions = SET[next]")


@pytest.mark.parametrize(
    ("text", "lineno"),
    [
        (b'a = 1\npassword = "adminpass\nactions = SET\n', 2),
        (b'a = 1\nx = "open at the end', 2),
        (b'x = "ok"\ny = "two \\\nlines"\nz = "open\n', 4),
    ],
)
def test_config_mode_reports_a_missing_closing_quote_where_it_began(
    text: bytes, lineno: int
) -> None:
    errors = [i for i in split_text(text, quotes_end_at_eol=True) if isinstance(i, LineError)]
    assert [(e.lineno, e.message.split(" (")[0]) for e in errors] == [
        (lineno, "missing closing quote")
    ]


_CONF_BYTES = st.lists(st.sampled_from([b"a", b" ", b'"', b"\\", b"#", b"=", b"\n", b"\t"]))


@given(_CONF_BYTES.map(b"".join))
def test_config_mode_changes_only_lines_with_an_unclosed_quote(text: bytes) -> None:
    strict = split_text(text, quotes_end_at_eol=True)
    if not any(isinstance(item, LineError) and "closing quote" in item.message for item in strict):
        assert strict == split_text(text)


def test_config_mode_keeps_the_lines_after_the_bad_one() -> None:
    items = split_text(b'p = "x\nq = y\n', quotes_end_at_eol=True)
    assert isinstance(items[0], LineError)
    assert items[1] == Line(("q", "=", "y"), 2)


_LOADERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "upsd.conf": ('STATEPATH "/run/nut\n', lambda p: load_upsd_conf(p, env={})),
    "ups.conf": ('[u]\ndriver = dummy-ups\nport = "u.dev\n', load_ups_conf),
    "upsd.users": ('[a]\npassword = "adminpass\nactions = SET\n', load_upsd_users),
    "upsmon.conf": (MON + 'SHUTDOWNCMD "/sbin/shutdown -h +0\n# a comment\n', load_upsmon_conf),
    "upssched.conf": ('CMDSCRIPT "/bin/true\nPIPEFN /run/p\n', load_upssched_conf),
}


@pytest.mark.parametrize("name", sorted(_LOADERS))
def test_every_file_says_missing_closing_quote_with_its_line(tmp_path: Path, name: str) -> None:
    text, load = _LOADERS[name]
    path = write(tmp_path / name, text)
    lineno = next(i for i, line in enumerate(text.splitlines(), 1) if line.count('"') == 1)
    with pytest.raises(ConfigError, match="missing closing quote") as exc:
        load(path)
    assert (exc.value.path, exc.value.lineno) == (path, lineno)
    assert str(exc.value).startswith(f"{path}:{lineno}: parse error: missing closing quote")


# ---------------------------------------------------------------------------------------
# Loader tables: an unknown directive is a warning at its line


@pytest.mark.parametrize(
    ("name", "text", "lineno", "load"),
    [
        ("upsd.conf", "MAXAGE 5\nMAXAEG 5\n", 2, lambda p: load_upsd_conf(p, env={})),
        ("upsmon.conf", MON + "POLFREQ 5\n", 3, load_upsmon_conf),
        ("upssched.conf", SCHED + "cmdscript x\n", 4, load_upssched_conf),
    ],
)
def test_unknown_directive_warns_at_its_line(
    tmp_path: Path, name: str, text: str, lineno: int, load: Callable[[Path], object]
) -> None:
    path = write(tmp_path / name, text)
    warnings = load(path).warnings  # type: ignore[attr-defined]
    invalid = [w for w in warnings if "invalid directive" in w.message]
    assert [(w.path, w.lineno) for w in invalid] == [(path, lineno)]


# ---------------------------------------------------------------------------------------
# issue 12: a misspelled ups.conf key; NOTIFYCMD with shell syntax


def test_misspelled_driver_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "ups.conf", "[u]\n  drvier = dummy-ups\n  port = u.dev\n")
    with pytest.raises(ConfigError) as exc:
        load_ups_conf(path, warnings=[])
    assert exc.value.lineno == 2
    assert "'drvier' on line 2 looks like a misspelling of 'driver'" in str(exc.value)
    assert str(exc.value).startswith(f"{path}:2: UPS [u] has no driver")


def test_misspelled_port_and_driver_both_named(tmp_path: Path) -> None:
    path = write(tmp_path / "ups.conf", "[u]\ndesc = x\nprot = a\ndriverr = b\n")
    with pytest.raises(ConfigError) as exc:
        load_ups_conf(path, warnings=[])
    assert exc.value.lineno == 3
    assert "'driverr' on line 4" in str(exc.value)
    assert "'prot' on line 3" in str(exc.value)


def test_missing_driver_without_a_lookalike_names_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "ups.conf", "# x\n[u]\nport = a\npollinterval = 2\n")
    with pytest.raises(ConfigError, match=r"has no driver \(upsd would ignore") as exc:
        load_ups_conf(path, warnings=[])
    assert exc.value.lineno == 2


def test_unknown_ups_conf_key_alone_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "ups.conf", "[u]\ndriver = d\nport = p\nvendorid = 0463\n")
    (section,), _ = load_ups_conf(path, warnings=[])
    assert section.options["vendorid"] == "0463"


@pytest.mark.parametrize("op", [">>", "|", ";", "&&", "$"])
def test_notifycmd_with_shell_syntax_warns_at_its_line(tmp_path: Path, op: str) -> None:
    text = MON + f'SHUTDOWNCMD "/bin/true"\nNOTIFYCMD "/bin/echo x {op} f"\n'
    path = write(tmp_path / "upsmon.conf", text)
    shell = [w for w in load_upsmon_conf(path).warnings if "shell syntax" in w.message]
    assert [(w.path, w.lineno) for w in shell] == [(path, 4)]
    assert "runs NOTIFYCMD without a shell" in shell[0].message


def test_shutdowncmd_runs_through_a_shell_so_no_warning(tmp_path: Path) -> None:
    text = MON + 'SHUTDOWNCMD "/sbin/shutdown -h +0 > /dev/null; sync"\nNOTIFYCMD /bin/n\n'
    cfg = load_upsmon_conf(write(tmp_path / "upsmon.conf", text))
    assert not [w for w in cfg.warnings if "shell" in w.message]


def test_cmdscript_with_shell_syntax_warns(tmp_path: Path) -> None:
    path = write(tmp_path / "upssched.conf", 'CMDSCRIPT "/bin/cmd $X"\nPIPEFN /p\nLOCKFN /l\n')
    (warning,) = load_upssched_conf(path).warnings
    assert (warning.path, warning.lineno) == (path, 1)
    assert "shell syntax ($)" in warning.message


def test_shell_syntax_finds_operators() -> None:
    assert shell_syntax("/bin/echo hi") == []
    assert shell_syntax("a > b | c; d && $e") == [">", "|", ";", "&", "$"]


# ---------------------------------------------------------------------------------------
# nut.conf, STATEPATH, notify types


def _confdir(tmp_path: Path, upsd_conf: str = "", nut_conf: str | None = None) -> Path:
    confdir = tmp_path / "conf"
    confdir.mkdir(parents=True)
    write(confdir / "upsd.conf", upsd_conf)
    write(confdir / "ups.conf", "[u]\ndriver = dummy-ups\nport = u.dev\n")
    write(confdir / "upsd.users", "[mon]\npassword = pw\nupsmon secondary\n")
    if nut_conf is not None:
        write(confdir / "nut.conf", nut_conf)
    return confdir


def test_nut_conf_mode_is_read(tmp_path: Path) -> None:
    config = load_nut_config(_confdir(tmp_path, nut_conf='# NUT\nMODE="netserver"\n'), env={})
    assert config.nut.mode == "netserver"
    assert config.nut.settings == {"MODE": "netserver"}


def test_no_nut_conf_means_no_mode(tmp_path: Path) -> None:
    assert load_nut_config(_confdir(tmp_path), env={}).nut.mode is None


def test_mode_none_is_logged_once_and_not_obeyed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="nuttrio.config"):
        config = load_nut_config(_confdir(tmp_path, nut_conf="MODE=none\n"), env={})
    assert config.ups  # the UPSes are still served
    lines = [r.getMessage() for r in caplog.records if "MODE=none" in r.getMessage()]
    assert len(lines) == 1
    assert "nuttrio runs as its command line says" in lines[0]


def test_unknown_mode_and_bad_line_warn(tmp_path: Path) -> None:
    config = load_nut_config(_confdir(tmp_path, nut_conf="MODE=sometimes\nexport MODE\n"), env={})
    texts = [w.message for w in config.warnings]
    assert any("unknown MODE 'sometimes'" in t for t in texts)
    assert any("not a KEY=value line" in t for t in texts)


def test_statepath_reaches_nut_config(tmp_path: Path) -> None:
    assert load_nut_config(_confdir(tmp_path), env={}).statepath == DEFAULT_STATEPATH
    config = load_nut_config(_confdir(tmp_path / "b", "STATEPATH /var/state/ups\n"), env={})
    assert config.statepath == Path("/var/state/ups")
    env = {"NUT_STATEPATH": "/env/state"}
    assert load_nut_config(_confdir(tmp_path / "c"), env=env).statepath == Path("/env/state")


def test_ups_globals_stay_in_nut_config(tmp_path: Path) -> None:
    confdir = _confdir(tmp_path)
    write(confdir / "ups.conf", "pollinterval = 3\nmaxretry=2\n[u]\ndriver = d\nport = p\n")
    assert dict(load_nut_config(confdir, env={}).ups_globals) == {
        "pollinterval": "3",
        "maxretry": "2",
    }


def test_notify_types_are_defined_once() -> None:
    assert machine._TRANSITIONS is STATUS_NOTIFY_TYPES
    for appear, vanish in STATUS_NOTIFY_TYPES.values():
        assert appear in NOTIFY_TYPES
        assert vanish in NOTIFY_TYPES
