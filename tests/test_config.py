"""Tests for nuttrio.nutconf: upsd.conf, ups.conf and upsd.users as upsd 2.8.0 reads them."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from nuttrio.nutconf import (
    DEFAULT_CONFDIR,
    DEFAULT_LISTEN,
    DEFAULT_PORT,
    ConfigError,
    ConfigWarning,
    Listen,
    NutConfig,
    UpsdConfig,
    UpsSection,
    User,
    default_confdir,
    load_nut_config,
    load_ups_conf,
    load_upsd_conf,
    load_upsd_users,
    reload_nut_config,
)
from nuttrio.protocol.tokenizer import split_text

FIXTURES = Path(__file__).parent / "fixtures" / "config"
NO_ENV: dict[str, str] = {}


def as_text(warnings: Iterable[ConfigWarning]) -> tuple[str, ...]:
    """The warnings as they are logged."""
    return tuple(str(w) for w in warnings)


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a fixture directory, readable by its owner only (as upsd wants)."""
    target = dest / name
    shutil.copytree(FIXTURES / name, target)
    target.chmod(0o700)
    for item in target.iterdir():
        item.chmod(0o600)
    return target


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def make_confdir(
    tmp_path: Path,
    *,
    upsd_conf: str | None = "",
    ups_conf: str | None = "[u]\ndriver = dummy-ups\nport = u.dev\n",
    users: str | None = "[mon]\npassword = pw\nupsmon secondary\n",
) -> Path:
    confdir = tmp_path / "conf"
    confdir.mkdir()
    for name, text in (("upsd.conf", upsd_conf), ("ups.conf", ups_conf), ("upsd.users", users)):
        if text is not None:
            write(confdir / name, text)
    return confdir


def assert_error_at(exc: pytest.ExceptionInfo[ConfigError], path: Path, lineno: int) -> None:
    assert exc.value.path == path
    assert exc.value.lineno == lineno
    assert str(exc.value).startswith(f"{path}:{lineno}: ")


# ---------------------------------------------------------------------------------------
# upsd.conf


def upsd_conf(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> UpsdConfig:
    return load_upsd_conf(write(tmp_path / "upsd.conf", text), env=NO_ENV if env is None else env)


def test_upsd_conf_fixture(tmp_path: Path) -> None:
    conf = load_upsd_conf(copy_fixture("full", tmp_path) / "upsd.conf", env=NO_ENV)
    assert conf == UpsdConfig(
        listen=(Listen("127.0.0.1", 3493),),
        maxage=25,
        maxconn=64,
        trackingdelay=120,
        allow_no_device=False,
        statepath=None,
        datapath=Path("/usr/share/nut"),
        certfile=None,
        disable_weak_ssl=True,
        debug_min=0,
        warnings=(),
    )


def test_upsd_conf_defaults(tmp_path: Path) -> None:
    conf = upsd_conf(tmp_path, "# nothing\n")
    assert conf == UpsdConfig()
    assert conf.listen == DEFAULT_LISTEN == (Listen("127.0.0.1", 3493), Listen("::1", 3493))
    assert (conf.maxage, conf.maxconn, conf.trackingdelay) == (15, None, 3600)
    assert conf.allow_no_device is False
    assert conf.statepath is conf.datapath is conf.certfile is None


def test_listen_forms(tmp_path: Path) -> None:
    conf = upsd_conf(tmp_path, "LISTEN 0.0.0.0\nLISTEN ::1 4000\nLISTEN localhost 03493\n")
    assert conf.listen == (
        Listen("0.0.0.0", DEFAULT_PORT),
        Listen("::1", 4000),
        Listen("localhost", 3493),
    )


def test_listen_service_name(tmp_path: Path) -> None:
    try:
        nut_port = socket.getservbyname("nut", "tcp")
    except OSError:
        pytest.skip("no 'nut' entry in /etc/services")
    assert upsd_conf(tmp_path, "LISTEN 127.0.0.1 nut\n").listen == (Listen("127.0.0.1", nut_port),)


def test_listen_repeated_is_a_warning(tmp_path: Path) -> None:
    conf = upsd_conf(tmp_path, "LISTEN 127.0.0.1\nLISTEN 127.0.0.1 3493\n")
    assert conf.listen == (Listen("127.0.0.1", 3493),)
    assert as_text(conf.warnings) == (
        f"{tmp_path / 'upsd.conf'}:2: LISTEN 127.0.0.1 3493 repeated; ignored",
    )


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("LISTEN 127.0.0.1 0", "1-65535"),  # upsd binds a random port
        ("LISTEN 127.0.0.1 70000", "1-65535"),  # upsd silently listens on 4464
        ("LISTEN 127.0.0.1 no-such-service-xyz", "not a number or a known TCP service"),
        ("LISTEN", "LISTEN needs a value"),
        ("LISTEN 127.0.0.1 3493 extra", "LISTEN takes an address and an optional port"),
        ("MAXAGE abc", "MAXAGE needs a whole number, not 'abc'"),
        ("MAXAGE 15s", "MAXAGE needs a whole number"),  # upsd reads 15
        ("MAXAGE -1", "MAXAGE needs a whole number"),
        ("MAXAGE", "MAXAGE needs a value"),
        ("MAXAGE 10 20", "MAXAGE takes one value"),
        ("TRACKINGDELAY soon", "TRACKINGDELAY needs a whole number"),
        ("MAXCONN 0", "MAXCONN must be at least 1"),
        ("MAXCONN many", "MAXCONN needs a whole number"),
        ("ALLOW_NO_DEVICE maybe", "ALLOW_NO_DEVICE needs a number or a boolean"),
        ("DISABLE_WEAK_SSL 2", "DISABLE_WEAK_SSL needs a boolean"),
        ("DEBUG_MIN -1", "DEBUG_MIN needs a whole number"),
        ("STATEPATH", "STATEPATH needs a value"),
        ('STATEPATH "/run/#nut"', "parse error"),
    ],
)
def test_upsd_conf_bad_values(tmp_path: Path, line: str, words: str) -> None:
    path = write(tmp_path / "upsd.conf", f"# comment\n\nMAXAGE 10\n{line}\nMAXAGE 20\n")
    with pytest.raises(ConfigError) as exc:
        load_upsd_conf(path, env=NO_ENV)
    assert_error_at(exc, path, 4)
    assert words in str(exc.value)


def test_directives_are_case_sensitive(tmp_path: Path) -> None:
    conf = upsd_conf(tmp_path, "MAXAGE 20\nmaxage 10\nListen 1.2.3.4\nFOO bar\n")
    assert conf.maxage == 20
    assert conf.listen == DEFAULT_LISTEN
    path = tmp_path / "upsd.conf"
    assert as_text(conf.warnings) == (
        f"{path}:2: invalid directive 'maxage 10' (directive names are case-sensitive: "
        "MAXAGE); ignored",
        f"{path}:3: invalid directive 'Listen 1.2.3.4' (directive names are case-sensitive: "
        "LISTEN); ignored",
        f"{path}:4: invalid directive 'FOO bar'; ignored",
    )


def test_debug_min_any_case(tmp_path: Path) -> None:
    assert upsd_conf(tmp_path, "Debug_Min 3\n").debug_min == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("2", True),
        ("0", False),
        ("00", False),
        ("Yes", True),
        ("TRUE", True),
        ("on", True),
        ("no", False),
        ("False", False),
        ("OFF", False),
    ],
)
def test_allow_no_device_values(tmp_path: Path, value: str, expected: bool) -> None:
    assert upsd_conf(tmp_path, f"ALLOW_NO_DEVICE {value}\n").allow_no_device is expected


@pytest.mark.parametrize(
    ("conf_value", "env_value", "expected"),
    [
        ("false", "true", True),
        ("false", "Yes please", True),  # upsd compares prefixes
        ("false", "1", True),
        ("false", "10", True),
        ("false", "ON", True),
        ("true", "0", False),
        ("true", "no", False),
        ("true", "off", False),
        ("true", "FALSE", False),
        ("true", "maybe", True),  # not a boolean: upsd.conf's value stays
        ("false", "", False),
        ("true", "", True),
    ],
)
def test_allow_no_device_env_overrides(
    tmp_path: Path, conf_value: str, env_value: str, expected: bool
) -> None:
    conf = upsd_conf(tmp_path, f"ALLOW_NO_DEVICE {conf_value}\n", {"ALLOW_NO_DEVICE": env_value})
    assert conf.allow_no_device is expected


def test_statepath_env_and_directive(tmp_path: Path) -> None:
    assert upsd_conf(tmp_path, "").statepath is None
    assert upsd_conf(tmp_path, "", {"NUT_STATEPATH": ""}).statepath is None
    assert upsd_conf(tmp_path, "", {"NUT_STATEPATH": "/env/state"}).statepath == Path("/env/state")
    conf = upsd_conf(tmp_path, "STATEPATH /conf/state\n", {"NUT_STATEPATH": "/env/state"})
    assert conf.statepath == Path("/conf/state")


def test_datapath_has_no_env_var(tmp_path: Path) -> None:
    assert upsd_conf(tmp_path, "", {"NUT_DATAPATH": "/x"}).datapath is None
    assert upsd_conf(tmp_path, "DATAPATH /data\n").datapath == Path("/data")


def test_tls_directives(tmp_path: Path) -> None:
    conf = upsd_conf(
        tmp_path,
        'CERTFILE /etc/nut/upsd.pem\nCERTPATH /etc/nut/cert-db\nCERTIDENT "my nut" pass\n'
        "CERTREQUEST 1\nDISABLE_WEAK_SSL on\n",
    )
    assert conf.certfile == Path("/etc/nut/upsd.pem")
    assert conf.disable_weak_ssl is True
    assert conf.certpath == Path("/etc/nut/cert-db")
    assert conf.certident == ("my nut", "pass")
    assert conf.certrequest == 1
    assert conf.lines["CERTFILE"] == 1
    assert conf.lines["CERTREQUEST"] == 4
    assert conf.warnings == ()
    # Once a certificate is configured, plaintext is for loopback only.
    assert [str(n) for n in conf.plaintext_networks() or ()] == ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("word", "level"), [("0", 0), ("no", 0), ("REQUEST", 1), ("2", 2), ("Require", 2)]
)
def test_certrequest_numbers_and_words(tmp_path: Path, word: str, level: int) -> None:
    assert upsd_conf(tmp_path, f"CERTREQUEST {word}\n").certrequest == level


def test_certrequest_bad_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"upsd.conf:1: CERTREQUEST needs 0 \(NO\)"):
        upsd_conf(tmp_path, "CERTREQUEST maybe\n")


def test_plaintext_from(tmp_path: Path) -> None:
    assert upsd_conf(tmp_path, "").plaintext_networks() is None  # no TLS: everyone, as upsd
    conf = upsd_conf(
        tmp_path, "NUTTRIO_PLAINTEXT_FROM 127.0.0.1/32 10.1.2.3/24\nNUTTRIO_PLAINTEXT_FROM ::1\n"
    )
    assert [str(n) for n in conf.plaintext_networks() or ()] == [
        "127.0.0.1/32",
        "10.1.2.0/24",
        "::1/128",
    ]
    assert upsd_conf(tmp_path, "NUTTRIO_PLAINTEXT_FROM none\n").plaintext_networks() == ()
    with pytest.raises(ConfigError, match=r"upsd.conf:1: NUTTRIO_PLAINTEXT_FROM: 'lan'"):
        upsd_conf(tmp_path, "NUTTRIO_PLAINTEXT_FROM lan\n")
    with pytest.raises(ConfigError, match="needs one or more networks"):
        upsd_conf(tmp_path, "NUTTRIO_PLAINTEXT_FROM\n")


def test_maxconn_per_peer(tmp_path: Path) -> None:
    assert upsd_conf(tmp_path, "").maxconn_per_peer == 32
    assert upsd_conf(tmp_path, "NUTTRIO_MAXCONN_PER_PEER 4\n").maxconn_per_peer == 4
    with pytest.raises(ConfigError, match="at least 1"):
        upsd_conf(tmp_path, "NUTTRIO_MAXCONN_PER_PEER 0\n")


def test_obsolete_acl_directives_warn(tmp_path: Path) -> None:
    conf = upsd_conf(tmp_path, "ACL all 0.0.0.0/0\nACCEPT all\nREJECT all\nMAXAGE 9\n")
    assert conf.maxage == 9
    assert len(as_text(conf.warnings)) == 3
    assert all("no longer supported (use LISTEN)" in w for w in as_text(conf.warnings))
    assert as_text(conf.warnings)[0].startswith(f"{tmp_path / 'upsd.conf'}:1: ACL ")


def test_world_readable_warning(tmp_path: Path) -> None:
    path = write(tmp_path / "upsd.conf", "")
    path.chmod(0o644)
    assert as_text(load_upsd_conf(path, env=NO_ENV).warnings) == (
        f"{path}: file is world readable",
    )


def test_upsd_conf_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("cannot read upsd.conf")) as exc:
        load_upsd_conf(tmp_path / "upsd.conf", env=NO_ENV)
    assert exc.value.path == tmp_path / "upsd.conf"
    assert str(tmp_path / "upsd.conf") in str(exc.value)


# ---------------------------------------------------------------------------------------
# upsd.users


def users_from(tmp_path: Path, text: str) -> tuple[dict[str, User], list[str]]:
    warnings: list[ConfigWarning] = []
    users = load_upsd_users(write(tmp_path / "upsd.users", text), warnings=warnings)
    return users, list(as_text(warnings))


def test_users_fixture(tmp_path: Path) -> None:
    warnings: list[ConfigWarning] = []
    users = load_upsd_users(copy_fixture("full", tmp_path) / "upsd.users", warnings=warnings)
    assert warnings == []
    assert list(users) == ["admin", "monuser", "operator", "my user", "legacy", "setter", "nopass"]
    assert users["admin"] == User(
        "admin",
        "s3cr3t pass",
        frozenset({"set", "fsd", "login", "master"}),
        frozenset({"test.battery.start.quick", "load.off", "load.on"}),
    )
    assert users["monuser"] == User("monuser", "monpass", frozenset({"login"}))
    assert users["operator"] == User("operator", "Op", frozenset({"login"}), frozenset({"all"}))
    assert users["my user"] == User("my user", "x y", frozenset({"login"}))
    assert users["legacy"].actions == {"login", "master", "fsd"}
    assert users["nopass"].password is None


def test_allows_actions() -> None:
    admin = User("admin", "Secret", frozenset({"login", "master", "fsd", "SET"}))
    assert admin.allows("LOGIN", "Secret")
    assert admin.allows("login", "Secret")
    assert admin.allows("Set", "Secret")
    assert admin.allows("FSD", "Secret")
    assert not admin.allows("LOGIN", "secret")  # passwords are case-sensitive
    assert not admin.allows("LOGIN", None)
    assert not admin.allows("LOGIN", "")
    assert not admin.allows("INSTCMD", "Secret")


@pytest.mark.parametrize("granted", ["master", "primary", "MASTER", "Primary"])
def test_primary_and_master_are_one_permission(granted: str) -> None:
    user = User("u", "p", frozenset({granted}))
    assert user.allows("PRIMARY", "p")
    assert user.allows("MASTER", "p")
    assert not user.allows("LOGIN", "p")


def test_user_without_password_is_allowed_nothing() -> None:
    user = User("u", None, frozenset({"login"}), frozenset({"all"}))
    assert not user.allows("LOGIN", None)
    assert not user.allows("LOGIN", "")
    assert not user.allows_instcmd("load.off", None)


def test_empty_password_is_a_password() -> None:
    assert User("u", "", frozenset({"login"})).allows("login", "")


def test_allows_instcmd() -> None:
    user = User("u", "pw", instcmds=frozenset({"Load.Off", "test.battery.start"}))
    assert user.allows_instcmd("load.off", "pw")
    assert user.allows_instcmd("LOAD.OFF", "pw")
    assert not user.allows_instcmd("load.on", "pw")
    assert not user.allows_instcmd("load.off", "PW")
    everything = User("u", "pw", instcmds=frozenset({"ALL"}))
    assert everything.allows_instcmd("anything.at.all", "pw")
    assert not everything.allows_instcmd("anything.at.all", None)


def test_users_key_forms_and_accumulation(tmp_path: Path) -> None:
    users, warnings = users_from(
        tmp_path,
        "[a]\n"
        "PassWord=pa\n"
        "ACTIONS = set\n"
        "actions=fsd login\n"
        "instcmds = load.off\n"
        "InstCmds = Load.On load.off\n"
        '[b]\n"password=pb" \n'
        '"actions=set" fsd\n',
    )
    assert warnings == []
    assert users["a"] == User(
        "a", "pa", frozenset({"set", "fsd", "login"}), frozenset({"load.off", "load.on"})
    )
    assert users["b"] == User("b", "pb", frozenset({"set", "fsd"}))


@pytest.mark.parametrize(
    ("line", "actions"),
    [
        ("upsmon primary", {"login", "master", "fsd"}),
        ("upsmon master", {"login", "master", "fsd"}),
        ("UPSMON Primary", {"login", "master", "fsd"}),
        ("upsmon = primary", {"login", "master", "fsd"}),  # upsd also logs "Unknown upsmon type ="
        ("upsmon=primary", {"login", "master", "fsd"}),
        ("upsmon secondary", {"login"}),
        ("upsmon slave", {"login"}),
        ("upsmon = secondary", {"login"}),
    ],
)
def test_upsmon_types(tmp_path: Path, line: str, actions: set[str]) -> None:
    users, warnings = users_from(tmp_path, f"[u]\npassword = p\n{line}\n")
    assert users["u"].actions == actions
    assert warnings == []


def test_user_names_are_case_sensitive(tmp_path: Path) -> None:
    users, _ = users_from(tmp_path, "[Bob]\npassword = 1\n[bob]\npassword = 2\n")
    assert users["Bob"].password == "1"
    assert users["bob"].password == "2"


@pytest.mark.parametrize(
    ("text", "lineno", "words"),
    [
        # upsd ignores the header and gives the section's settings to [b]
        (
            "[a]\npassword = pa\n[b]\npassword = pb\n[a]\nupsmon primary\n",
            5,
            "user [a] is already defined on line 1",
        ),
        (
            "[a]\npassword = one\npassword = two\n",
            3,
            "second password for user a (the first is on line 2",
        ),
        ("[a]\npassword = two words\n", 2, "password of user a has 2 words"),
        ("[a]\npassword = p\nupsmon mastr\n", 3, "unknown upsmon type 'mastr'"),
        ("[a]\npassword = p\nupsmon = boss\n", 3, "unknown upsmon type 'boss'"),
        ("[a]\npassword secret\n", 2, "cannot understand 'password secret'"),
        ("[a]\npassword =\n", 2, "cannot understand 'password ='"),
        ("[a]\nupsmon primary extra\n", 2, "cannot understand"),
        ("[a]\nactions\n", 2, "cannot understand 'actions'"),
        ("[d] password = pd\n", 1, "unexpected text after section header [d]"),
        ("[]\npassword = p\n", 1, "empty user name"),
        ("[my user]\npassword = p\n", 1, "malformed section header '[my'"),
        ('[a]\npassword = "p#"\n', 2, "parse error"),
    ],
)
def test_users_errors(tmp_path: Path, text: str, lineno: int, words: str) -> None:
    path = write(tmp_path / "upsd.users", text)
    with pytest.raises(ConfigError) as exc:
        load_upsd_users(path, warnings=[])
    assert_error_at(exc, path, lineno)
    assert words in str(exc.value)


def test_users_warnings(tmp_path: Path) -> None:
    users, warnings = users_from(
        tmp_path,
        "password = global\n"
        "upsmon primary\n"
        "user = old\n"
        "[a]\n"
        "password = p\n"
        "allowfrom = localhost\n"
        "frob = 1\n"
        "actions = login sett\n",
    )
    assert users == {"a": User("a", "p", frozenset({"login", "sett"}))}
    path = tmp_path / "upsd.users"
    assert warnings == [
        f"{path}:1: password outside any [user] section; ignored",
        f"{path}:2: upsmon outside any [user] section; ignored",
        f"{path}:3: old-format 'user' line; ignored",
        f"{path}:6: allowfrom in upsd.users is no longer used; ignored",
        f"{path}:7: unknown user setting 'frob'; ignored",
        f"{path}:8: unknown action 'sett' for user a (known: fsd, login, master, primary, set)",
    ]


def test_users_warnings_are_logged_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "upsd.users", "[a]\nallowfrom = x\n")
    with caplog.at_level(logging.WARNING, logger="nuttrio.config"):
        load_upsd_users(path)
    assert f"{path}:2: allowfrom in upsd.users is no longer used" in caplog.text


def test_users_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("cannot read upsd.users")) as exc:
        load_upsd_users(tmp_path / "upsd.users")
    assert exc.value.path == tmp_path / "upsd.users"


def test_users_empty_file(tmp_path: Path) -> None:
    assert users_from(tmp_path, "# nobody\n") == ({}, [])


# ---------------------------------------------------------------------------------------
# ups.conf


def ups_from(tmp_path: Path, text: str) -> tuple[tuple[UpsSection, ...], dict[str, str], list[str]]:
    warnings: list[ConfigWarning] = []
    sections, globals_ = load_ups_conf(write(tmp_path / "ups.conf", text), warnings=warnings)
    return sections, globals_, list(as_text(warnings))


def test_ups_conf_fixture(tmp_path: Path) -> None:
    path = copy_fixture("full", tmp_path) / "ups.conf"
    warnings: list[ConfigWarning] = []
    sections, globals_ = load_ups_conf(path, warnings=warnings)
    assert warnings == []
    assert globals_ == {"maxretry": "3", "pollinterval": "5", "nowait": ""}
    main, backup = sections
    assert (main.name, main.driver, main.port) == ("main-ups", "dummy-ups", "main.dev")
    assert main.desc == 'Rack "A" UPS, room 1'
    assert dict(main.options) == {
        "driver": "dummy-ups",
        "port": "main.dev",
        "desc": 'Rack "A" UPS, room 1',
        "seclevel": "authPriv",
        "synchronous": "yes",
        "nolock": "",
    }
    assert (main.path, main.lineno) == (path, 6)
    assert (backup.name, backup.port, backup.desc, backup.lineno) == (
        "Backup",
        "backup.seq",
        "Backup # 2",
        14,
    )
    assert backup.options["pollfreq"] == "30"


def test_ups_conf_no_desc(tmp_path: Path) -> None:
    (section,), globals_, _ = ups_from(tmp_path, "[u]\ndriver=d\nport=p\n")
    assert section.desc is None
    assert globals_ == {}


def test_ups_conf_options_are_read_only(tmp_path: Path) -> None:
    (section,), _, _ = ups_from(tmp_path, "[u]\ndriver=d\nport=p\n")
    with pytest.raises(TypeError):
        section.options["driver"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "lineno", "words"),
    [
        ("[u]\nport = p\n", 1, "UPS [u] has no driver"),
        ("[u]\ndriver = d\n", 1, "UPS [u] has no port"),
        ("[ok]\ndriver=d\nport=p\n\n[u]\ndesc = x\n", 5, "UPS [u] has no driver and no port"),
        ("[u]\n", 1, "has no driver and no port"),
        (
            "[u]\ndriver = d\nport = p\n[v]\ndriver = d\nport = q\n[u]\nport = r\n",
            7,
            "UPS [u] is already defined as [u] on line 1",
        ),
        (
            "[ups]\ndriver = d\nport = p\n[UPS]\ndriver = d\nport = q\n",
            4,
            "UPS [UPS] is already defined as [ups] on line 1",
        ),
        ("[u]\nDriver = d\nport = p\n", 2, "write 'driver', not 'Driver'"),
        ("[u]\ndriver = d\nPORT = p\n", 3, "write 'port', not 'PORT'"),
        ("[u]\nport = p\ndriver\n", 3, "driver needs a value"),
        ("[u]\ndriver = d\nport = p\ndesc\n", 4, "desc needs a value"),
        ("[u]\ndriver dummy-ups\nport = p\n", 2, "cannot understand 'driver dummy-ups'"),
        ("[u]\ndriver : d\n", 2, "cannot understand"),
        ("[u] driver = d\n", 1, "unexpected text after section header [u]"),
        ("[]\ndriver = d\nport = p\n", 1, "empty UPS name"),
        ('[u]\ndriver = d\nport = p\ndesc = "Rack #1"\n', 4, "parse error"),
    ],
)
def test_ups_conf_errors(tmp_path: Path, text: str, lineno: int, words: str) -> None:
    path = write(tmp_path / "ups.conf", text)
    with pytest.raises(ConfigError) as exc:
        load_ups_conf(path, warnings=[])
    assert_error_at(exc, path, lineno)
    assert words in str(exc.value)


def test_ups_conf_multiword_value_keeps_first_word(tmp_path: Path) -> None:
    (section,), _, warnings = ups_from(tmp_path, "[u]\ndriver = d\nport = p\ndesc = Main UPS\n")
    assert section.desc == "Main"
    assert warnings == [
        f"{tmp_path / 'ups.conf'}:4: desc has several words, only 'Main' is used; "
        "quote a value that contains spaces"
    ]


def test_ups_conf_repeated_key_last_wins(tmp_path: Path) -> None:
    (section,), _, warnings = ups_from(
        tmp_path, "[u]\ndriver = d\nport = p\nport = q\nOpt = 1\nopt = 2\n"
    )
    assert section.port == "q"
    assert section.options["opt"] == "2"
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{tmp_path / 'ups.conf'}:4: port repeated in [u]")


def test_ups_conf_quoted_names(tmp_path: Path) -> None:
    (section,), _, _ = ups_from(tmp_path, '"[my ups]"\ndriver = d\nport = "/dev/tty S0"\n')
    assert (section.name, section.port) == ("my ups", "/dev/tty S0")


def test_ups_conf_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("cannot read ups.conf")):
        load_ups_conf(tmp_path / "ups.conf")


# ---------------------------------------------------------------------------------------
# The whole directory


def test_load_nut_config_fixture(tmp_path: Path) -> None:
    confdir = copy_fixture("full", tmp_path)
    config = load_nut_config(confdir, env=NO_ENV)
    assert config.confdir == confdir
    assert as_text(config.warnings) == ()
    assert config.upsd.maxage == 25
    assert [s.name for s in config.ups] == ["main-ups", "Backup"]
    assert config.ups_globals["maxretry"] == "3"
    assert config.users["monuser"].allows("login", "monpass")
    with pytest.raises(TypeError):
        config.users["x"] = config.users["monuser"]  # type: ignore[index]


def test_load_nut_config_minimal(tmp_path: Path) -> None:
    config = load_nut_config(copy_fixture("minimal", tmp_path), env=NO_ENV)
    assert config.upsd.listen == DEFAULT_LISTEN
    assert [(s.name, s.driver, s.port) for s in config.ups] == [("ups", "dummy-ups", "ups.dev")]
    assert list(config.users) == ["mon"]


def test_fixture_world_readable_files_warn() -> None:
    # The checked-in files are usually 0644; upsd warns about upsd.conf and upsd.users.
    config = load_nut_config(FIXTURES / "minimal", env=NO_ENV)
    for name in ("upsd.conf", "upsd.users"):
        path = FIXTURES / "minimal" / name
        if path.stat().st_mode & 0o005:
            assert f"{path}: file is world readable" in as_text(config.warnings)


def test_default_confdir() -> None:
    assert default_confdir({}) == DEFAULT_CONFDIR == Path("/etc/nut")
    assert default_confdir({"NUT_CONFPATH": ""}) == DEFAULT_CONFDIR
    assert default_confdir({"NUT_CONFPATH": "/srv/nut"}) == Path("/srv/nut")


def test_load_nut_config_uses_nut_confpath(tmp_path: Path) -> None:
    confdir = copy_fixture("minimal", tmp_path)
    config = load_nut_config(env={"NUT_CONFPATH": str(confdir)})
    assert config.confdir == confdir


def test_load_nut_config_reads_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    confdir = copy_fixture("no-ups", tmp_path)
    monkeypatch.setenv("NUT_CONFPATH", str(confdir))
    monkeypatch.setenv("ALLOW_NO_DEVICE", "yes")
    assert load_nut_config().ups == ()


@pytest.mark.parametrize("missing", ["upsd.conf", "ups.conf", "upsd.users"])
def test_missing_file_is_fatal(tmp_path: Path, missing: str) -> None:
    confdir = copy_fixture("minimal", tmp_path)
    (confdir / missing).unlink()
    with pytest.raises(ConfigError, match=f"cannot read {re.escape(missing)}") as exc:
        load_nut_config(confdir, env=NO_ENV)
    assert exc.value.path == confdir / missing
    assert str(exc.value).startswith(f"{confdir / missing}: ")


def test_upsd_conf_is_checked_first(tmp_path: Path) -> None:
    confdir = make_confdir(tmp_path, upsd_conf=None, ups_conf=None, users=None)
    with pytest.raises(ConfigError, match=re.escape("upsd.conf")):
        load_nut_config(confdir, env=NO_ENV)


def test_no_ups_is_fatal(tmp_path: Path) -> None:
    confdir = copy_fixture("no-ups", tmp_path)
    with pytest.raises(ConfigError, match="no UPS is defined") as exc:
        load_nut_config(confdir, env=NO_ENV)
    assert exc.value.path == confdir / "ups.conf"
    assert "ALLOW_NO_DEVICE" in str(exc.value)


def test_no_ups_allowed_by_upsd_conf(tmp_path: Path) -> None:
    confdir = copy_fixture("no-ups", tmp_path)
    with (confdir / "upsd.conf").open("a") as f:
        f.write("ALLOW_NO_DEVICE 1\n")
    config = load_nut_config(confdir, env=NO_ENV)
    assert config.ups == ()
    assert config.ups_globals == {"maxretry": "3"}
    assert any("no UPS is defined" in w for w in as_text(config.warnings))


def test_no_ups_allowed_by_env(tmp_path: Path) -> None:
    confdir = copy_fixture("no-ups", tmp_path)
    assert load_nut_config(confdir, env={"ALLOW_NO_DEVICE": "true"}).ups == ()
    with (confdir / "upsd.conf").open("a") as f:
        f.write("ALLOW_NO_DEVICE yes\n")
    with pytest.raises(ConfigError, match="no UPS"):
        load_nut_config(confdir, env={"ALLOW_NO_DEVICE": "off"})


def test_no_ups_when_every_section_is_incomplete_names_the_section(tmp_path: Path) -> None:
    confdir = make_confdir(tmp_path, ups_conf="[u]\ndesc = x\n")
    with pytest.raises(ConfigError, match=r"UPS \[u\] has no driver"):
        load_nut_config(confdir, env=NO_ENV)


def test_warnings_are_collected_from_all_files(tmp_path: Path) -> None:
    confdir = make_confdir(
        tmp_path,
        upsd_conf="FOO 1\n",
        ups_conf="[u]\ndriver = d\nport = p\ndesc = two words\n",
        users="[a]\npassword = p\nallowfrom = x\n",
    )
    warnings = as_text(load_nut_config(confdir, env=NO_ENV).warnings)
    assert [w.split(": ")[0] for w in warnings] == [
        f"{confdir / 'upsd.conf'}:1",
        f"{confdir / 'ups.conf'}:4",
        f"{confdir / 'upsd.users'}:3",
    ]


def test_reload(tmp_path: Path) -> None:
    confdir = copy_fixture("minimal", tmp_path)
    old = load_nut_config(confdir, env=NO_ENV)
    write(confdir / "upsd.conf", "LISTEN 127.0.0.1 4000\nMAXAGE 30\n")
    write(confdir / "ups.conf", "[new]\ndriver = dummy-ups\nport = n.dev\n")
    write(confdir / "upsd.users", "[admin]\npassword = a\nactions = set\n")
    new = reload_nut_config(old, env=NO_ENV)
    assert new.confdir == confdir
    assert new.upsd.listen == old.upsd.listen == DEFAULT_LISTEN  # LISTEN needs a restart
    assert new.upsd.maxage == 30
    assert [s.name for s in new.ups] == ["new"]
    assert list(new.users) == ["admin"]
    assert any("LISTEN changed" in w for w in as_text(new.warnings))


def test_reload_without_ups_is_only_a_warning(tmp_path: Path) -> None:
    confdir = copy_fixture("minimal", tmp_path)
    old = load_nut_config(confdir, env=NO_ENV)
    write(confdir / "ups.conf", "# all gone\n")
    new = reload_nut_config(old, env=NO_ENV)
    assert new.ups == ()
    assert any("no UPS is defined" in w for w in as_text(new.warnings))
    assert not any("LISTEN changed" in w for w in as_text(new.warnings))


@pytest.mark.parametrize(
    ("name", "text"),
    [("ups.conf", "[u]\ndriver = d\n"), ("upsd.users", "[a]\n[a]\n"), ("upsd.conf", "MAXAGE x\n")],
)
def test_reload_error_raises(tmp_path: Path, name: str, text: str) -> None:
    confdir = copy_fixture("minimal", tmp_path)
    old = load_nut_config(confdir, env=NO_ENV)
    write(confdir / name, text)
    with pytest.raises(ConfigError) as exc:
        reload_nut_config(old, env=NO_ENV)
    assert exc.value.path == confdir / name


def test_reload_missing_users_raises(tmp_path: Path) -> None:
    confdir = copy_fixture("minimal", tmp_path)
    old = load_nut_config(confdir, env=NO_ENV)
    (confdir / "upsd.users").unlink()
    with pytest.raises(ConfigError, match=re.escape("cannot read upsd.users")):
        reload_nut_config(old, env=NO_ENV)


def test_nut_config_is_frozen(tmp_path: Path) -> None:
    config = load_nut_config(copy_fixture("minimal", tmp_path), env=NO_ENV)
    assert isinstance(config, NutConfig)
    with pytest.raises(AttributeError):
        config.ups = ()  # type: ignore[misc]


# ---------------------------------------------------------------------------------------
# The real upsd accepts the same directory


_UPSD_CANDIDATES = (
    Path("/lib/nut/upsd"),
    Path("/usr/lib/nut/upsd"),
    Path("/usr/libexec/nut/upsd"),
    Path("/sbin/upsd"),
    Path("/usr/sbin/upsd"),
)


def _real_upsd() -> Path | None:
    for path in _UPSD_CANDIDATES:
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        with path.open("rb") as f:
            if f.read(2) == b"#!":  # Debian's /sbin/upsd wrapper refuses to run with MODE=none
                continue
        return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ask(port: int, *lines: str) -> list[str]:
    """Send request lines on one connection; return one reply line per request."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("".join(f"{line}\n" for line in lines).encode())
        data = b""
        while data.count(b"\n") < len(lines):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines()


def _list_ups(port: int) -> dict[str, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"LIST UPS\n")
        data = b""
        while b"END LIST UPS\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    result: dict[str, str] = {}
    for line in split_text(data):
        assert not isinstance(line, Exception)
        words = getattr(line, "words", ())
        if words and words[0] == "UPS":
            result[words[1]] = words[2]
    return result


@contextlib.contextmanager
def _running_upsd(
    upsd: Path, confdir: Path, tmp_path: Path, port: int, log_path: Path
) -> Iterator[None]:
    """Run the real upsd on ``confdir`` (listening on ``port``) for the ``with`` body."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("ALLOW_NO_DEVICE", "NUT_STATEPATH")}
    env.update(NUT_CONFPATH=str(confdir), NUT_STATEPATH=str(state), NUT_ALTPIDPATH=str(state))
    user = pwd.getpwuid(os.getuid()).pw_name
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(upsd), "-F", "-u", user], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"upsd exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"upsd does not listen on {port}:\n{log_path.read_text()}")
                time.sleep(0.1)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.realnut
def test_real_upsd_accepts_the_fixture(tmp_path: Path) -> None:
    upsd = _real_upsd()
    if upsd is None:
        reason = "the real upsd is not installed (/lib/nut/upsd and /sbin/upsd are absent)"
        print(reason)
        pytest.skip(reason)

    confdir = copy_fixture("full", tmp_path)
    port = _free_port()
    conf = confdir / "upsd.conf"
    text = conf.read_text()
    assert "LISTEN 127.0.0.1 3493\n" in text
    conf.write_text(text.replace("LISTEN 127.0.0.1 3493\n", f"LISTEN 127.0.0.1 {port}\n"))

    ours = load_nut_config(confdir, env=NO_ENV)
    assert as_text(ours.warnings) == ()
    assert ours.upsd.listen == (Listen("127.0.0.1", port),)

    log_path = tmp_path / "upsd.log"
    with _running_upsd(upsd, confdir, tmp_path, port, log_path):
        # The same UPS names and descriptions.
        assert _list_ups(port) == {s.name: s.desc for s in ours.ups}

        # The same permissions, asked the way upsd checks them.
        ups = ours.ups[0].name
        for name, entry in ours.users.items():
            for password in (entry.password or "none", "wrong"):
                for action in ("LOGIN", "PRIMARY", "MASTER", "FSD"):
                    replies = _ask(
                        port, f'USERNAME "{name}"', f'PASSWORD "{password}"', f"{action} {ups}"
                    )
                    assert replies[:2] == ["OK", "OK"], replies
                    upsd_allows = not replies[2].startswith("ERR ")
                    assert upsd_allows == entry.allows(action, password), (name, password, action)
                    if upsd_allows:
                        assert replies[2].startswith("OK")
                    else:
                        assert replies[2] == "ERR ACCESS-DENIED"

    log_text = log_path.read_text()
    print(log_text)
    assert f"listening on 127.0.0.1 port {port}" in log_text
    complaints = [
        line
        for line in log_text.splitlines()
        if re.search(
            r"Parse error|invalid directive|incomplete|Unrecognized|Unknown upsmon type (?!=$)"
            r"|duplicate|already in use|no longer|outside|world readable|Fatal",
            line,
        )
    ]
    assert complaints == []


MISSING_QUOTE_USERS = """[admin]
	password = "adminpass
	actions = SET

[monuser]
	password = monpass
	upsmon secondary
"""


def test_missing_closing_quote_is_refused_at_its_line(tmp_path: Path) -> None:
    confdir = make_confdir(tmp_path, users=MISSING_QUOTE_USERS)
    with pytest.raises(ConfigError, match="missing closing quote") as exc:
        load_nut_config(confdir, env=NO_ENV)
    assert_error_at(exc, confdir / "upsd.users", 2)


@pytest.mark.realnut
def test_real_upsd_swallows_the_lines_after_a_missing_closing_quote(tmp_path: Path) -> None:
    """What parseconf does: the quoted word runs on to the end of the file.

    So the user after it does not exist for upsd: nuttrio's refusal
    (:func:`test_missing_closing_quote_is_refused_at_its_line`) is about a real loss.
    """
    upsd = _real_upsd()
    if upsd is None:
        pytest.skip("the real upsd is not installed (/lib/nut/upsd and /sbin/upsd are absent)")
    port = _free_port()
    confdir = make_confdir(
        tmp_path, upsd_conf=f"LISTEN 127.0.0.1 {port}\n", users=MISSING_QUOTE_USERS
    )
    confdir.chmod(0o700)
    # The same file with the quote closed: both users exist.
    fixed = load_upsd_users(
        write(tmp_path / "fixed.users", MISSING_QUOTE_USERS.replace("adminpass", 'adminpass"'))
    )
    assert fixed["monuser"].allows("LOGIN", "monpass")
    with _running_upsd(upsd, confdir, tmp_path, port, tmp_path / "upsd.log"):
        login = ["USERNAME monuser", "PASSWORD monpass", "LOGIN u"]
        assert _ask(port, *login) == ["OK", "OK", "ERR ACCESS-DENIED"]
        admin = ["USERNAME admin", "PASSWORD adminpass", "LOGIN u"]
        assert _ask(port, *admin)[2] == "ERR ACCESS-DENIED"
    # parseconf read the line feeds inside the quoted word (and dropped them).
    assert "discarding invalid character (0x0a)" in (tmp_path / "upsd.log").read_text()
