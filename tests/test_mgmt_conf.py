"""Tests for nuttrio.nutconf: upsmon.conf and upssched.conf as upsmon and upssched read them.

The NUT behaviours pinned here were read in NUT's sources (clients/upsmon.c, upsmon.h,
upssched.c, upsclient.c at v2.8.0 and v2.8.5) and, where the test says so, observed with
Debian's upsmon/upssched 2.8.0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import attrs
import pytest

from nuttrio.nutconf import (
    DEFAULT_NOTIFY_FLAGS,
    NOTIFY_FLAGS,
    NOTIFY_TYPES,
    NOTIFY_TYPES_WITH_EXTRA,
    NUTTRIO_NOTIFY_TYPES,
    CertHost,
    CertIdent,
    ConfigError,
    ConfigWarning,
    Monitor,
    SchedAction,
    SchedRule,
    ShutdownTriggers,
    UpsmonConfig,
    UpsschedConfig,
    check_upssched_against_upsmon,
    load_upsmon_conf,
    load_upssched_conf,
    notifycmd_is_upssched,
    split_system,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mgmt"
MON = "MONITOR ups@localhost 1 monuser pass primary\nPOWERDOWNFLAG /run/killpower\n"
MON_SHUT = MON + 'SHUTDOWNCMD "/sbin/shutdown -h +0"\n'


def as_text(warnings: Iterable[ConfigWarning]) -> tuple[str, ...]:
    """The warnings as they are logged."""
    return tuple(str(w) for w in warnings)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def upsmon(tmp_path: Path, text: str) -> UpsmonConfig:
    return load_upsmon_conf(write(tmp_path / "upsmon.conf", text))


def upsmon_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path / "upsmon.conf", text)
    with pytest.raises(ConfigError) as info:
        load_upsmon_conf(path)
    assert info.value.path == path
    return info.value


def upssched(tmp_path: Path, text: str) -> UpsschedConfig:
    return load_upssched_conf(write(tmp_path / "upssched.conf", text))


def upssched_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path / "upssched.conf", text)
    with pytest.raises(ConfigError) as info:
        load_upssched_conf(path)
    assert info.value.path == path
    return info.value


def copy_fixture(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copyfile(FIXTURES / name, target)
    target.chmod(0o600)
    return target


def warning_texts(cfg: UpsmonConfig | UpsschedConfig) -> list[str]:
    """The warnings without the leading path."""
    return [
        w.split(": ", 1)[1] if w.startswith(str(cfg.path)) else w for w in as_text(cfg.warnings)
    ]


# ---------------------------------------------------------------------------------------
# Notify types


# The stock messages as upsmon.h (2.8.5) has them; users' log filters match on them.
UPSMON_STOCK = {
    "ONLINE": "UPS %s on line power",
    "ONBATT": "UPS %s on battery",
    "LOWBATT": "UPS %s battery is low",
    "FSD": "UPS %s: forced shutdown in progress",
    "COMMOK": "Communications with UPS %s established",
    "COMMBAD": "Communications with UPS %s lost",
    "SHUTDOWN": "Auto logout and shutdown proceeding",
    "REPLBATT": "UPS %s battery needs to be replaced",
    "NOCOMM": "UPS %s is unavailable",
    "NOPARENT": "upsmon parent process died - shutdown impossible",
    "CAL": "UPS %s: calibration in progress",
    "NOTCAL": "UPS %s: calibration finished",
    "OFF": "UPS %s: administratively OFF or asleep",
    "NOTOFF": "UPS %s: no longer administratively OFF or asleep",
    "BYPASS": "UPS %s: on bypass (powered, not protecting)",
    "NOTBYPASS": "UPS %s: no longer on bypass",
    "ECO": "UPS %s: in ECO mode (as defined by vendor)",
    "NOTECO": "UPS %s: no longer in ECO mode",
    "ALARM": "UPS %s: one or more active alarms: [%s]",
    "NOTALARM": "UPS %s is no longer in an alarm state (no active alarms)",
    "OVER": "UPS %s: overloaded",
    "NOTOVER": "UPS %s: no longer overloaded",
    "TRIM": "UPS %s: trimming incoming voltage",
    "NOTTRIM": "UPS %s: no longer trimming incoming voltage",
    "BOOST": "UPS %s: boosting incoming voltage",
    "NOTBOOST": "UPS %s: no longer boosting incoming voltage",
    "OTHER": "UPS %s: has at least one unclassified status token: [%s]",
    "NOTOTHER": "UPS %s has no unclassified status tokens anymore",
    "SHUTDOWN_HOSTSYNC": (
        "Shutdown initiated; primary system is waiting for secondaries to log out or time out"
    ),
    "SUSPEND_STARTING": "OS is entering sleep/suspend/hibernate mode",
    "SUSPEND_FINISHED": (
        "OS just finished sleep/suspend/hibernate mode, de-activating obsolete UPS readings "
        "to avoid an unfortunate shutdown"
    ),
}


def test_notify_types_are_upsmons_then_nuttrios() -> None:
    quiet = ["CHRG", "NOTCHRG", "DISCHRG", "NOTDISCHRG", "HB", "NOTHB"]
    quiet += ["TICK", "NOTTICK", "TOCK", "NOTTOCK", "TEST", "NOTTEST"]
    assert list(NOTIFY_TYPES) == [*UPSMON_STOCK, "NOTLOWBATT", "NOTFSD", "NOTREPLBATT", *quiet]
    for name, message in UPSMON_STOCK.items():
        assert NOTIFY_TYPES[name][0] == message, name
    assert {"NOTLOWBATT", "NOTFSD", "NOTREPLBATT", *quiet} == NUTTRIO_NOTIFY_TYPES
    assert NOTIFY_TYPES["NOTLOWBATT"][0] == "UPS %s battery is no longer low"
    assert {"ALARM", "OTHER"} == NOTIFY_TYPES_WITH_EXTRA
    assert NOTIFY_FLAGS == ("SYSLOG", "WALL", "EXEC", "IGNORE")


def test_default_flags_are_syslog_wall_for_every_type_including_cal() -> None:
    # upsmon 2.8.0 gave CAL only SYSLOG; 2.8.1 and later (NOTIFY_DEFAULT) SYSLOG+WALL.
    assert {"SYSLOG", "WALL"} == DEFAULT_NOTIFY_FLAGS
    loud = {name for name in NOTIFY_TYPES if name in UPSMON_STOCK or name.startswith("NOT")}
    loud -= {"NOTCHRG", "NOTDISCHRG", "NOTHB", "NOTTICK", "NOTTOCK", "NOTTEST"}
    assert {NOTIFY_TYPES[n][1] for n in loud} == {frozenset({"SYSLOG", "WALL"})}
    # The frequent status events go nowhere unless NOTIFYFLAG asks; TEST only to syslog.
    assert NOTIFY_TYPES["CHRG"][1] == frozenset()
    assert NOTIFY_TYPES["TICK"][1] == frozenset()
    assert NOTIFY_TYPES["TEST"][1] == frozenset({"SYSLOG"})


def test_nuttrio_messages_use_one_ups_placeholder() -> None:
    for name in NUTTRIO_NOTIFY_TYPES:
        message = NOTIFY_TYPES[name][0]
        assert message.startswith(("UPS %s ", "UPS %s: "))
        assert message.count("%") == 1


def _real_binary(name: str) -> Path | None:
    """An installed NUT program itself (not Debian's shell wrapper in /sbin)."""
    for folder in ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut", "/sbin", "/usr/sbin"):
        candidate = Path(folder) / name
        try:
            with candidate.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    return candidate
        except OSError:
            continue
    return None


def test_stock_messages_match_the_installed_upsmon() -> None:
    binary = _real_binary("upsmon")
    if binary is None:
        reason = "the real upsmon is not installed (/lib/nut/upsmon)"
        print(reason)
        pytest.skip(reason)
    data = binary.read_bytes()
    found = [name for name, message in UPSMON_STOCK.items() if message.encode() + b"\0" in data]
    # Every installed version has at least 2.8.0's eleven types, byte for byte.
    assert set(found) >= {
        "ONLINE",
        "ONBATT",
        "LOWBATT",
        "FSD",
        "COMMOK",
        "COMMBAD",
        "SHUTDOWN",
        "REPLBATT",
        "NOCOMM",
        "NOPARENT",
        "CAL",
    }


# ---------------------------------------------------------------------------------------
# upsmon.conf: defaults and every directive


def test_defaults(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, "MONITOR myups 1 monuser pass secondary\n")
    assert cfg.monitors == (
        Monitor("myups", "myups", "localhost", 3493, 1, "monuser", "pass", False, 1),
    )
    assert cfg.minsupplies == 1
    assert cfg.shutdowncmd is None
    assert cfg.shutdowncmd_args == ()
    assert cfg.notifycmd is None
    assert cfg.notifycmd_args == ()
    assert dict(cfg.notifymsg) == {name: msg for name, (msg, _) in NOTIFY_TYPES.items()}
    assert dict(cfg.notifyflag) == {name: flags for name, (_, flags) in NOTIFY_TYPES.items()}
    assert (cfg.pollfreq, cfg.pollfreqalert, cfg.hostsync, cfg.deadtime) == (5, 5, 15, 15)
    assert cfg.finaldelay == 5
    assert cfg.powerdownflag is None  # upsmon has no built-in default
    assert (cfg.rbwarntime, cfg.nocommwarntime) == (43200, 300)
    assert (cfg.offduration, cfg.overduration, cfg.oblbduration) == (30, -1, 0)
    assert cfg.alarmcritical is True
    assert cfg.shutdownexit == 0
    assert cfg.pollfail_log_throttle_max == -1
    assert cfg.run_as_user is None
    assert cfg.debug_min is None
    assert cfg.certpath is None
    assert cfg.certident is None
    assert cfg.certhost == ()
    assert cfg.certverify is False
    assert cfg.forcessl is False
    assert cfg.certfile is None
    assert (cfg.runtime_below, cfg.charge_below, cfg.onbatt_after) == (None, None, None)
    assert dict(cfg.trigger_overrides) == {}
    assert cfg.triggers_for("myups") == ShutdownTriggers()
    assert cfg.uses_upssched is False
    assert warning_texts(cfg) == ["no SHUTDOWNCMD: this host cannot shut itself down"]


def test_class_defaults_equal_loader_defaults(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, "MONITOR myups 1 monuser pass secondary\n")
    plain = attrs.evolve(cfg, monitors=(), warnings=(), path=UpsmonConfig().path)
    assert plain == UpsmonConfig()


def test_every_directive(tmp_path: Path) -> None:
    cfg = load_upsmon_conf(copy_fixture("upsmon-all.conf", tmp_path))
    assert as_text(cfg.warnings) == ()
    assert cfg.monitors == (
        Monitor(
            "ups1@localhost", "ups1", "localhost", 3493, 1, "upsmon_primary", "pass word", True, 5
        ),
        Monitor("ups2@[::1]:3494", "ups2", "::1", 3494, 2, "upsmon_secondary", "secret", False, 6),
        Monitor("ups3", "ups3", "localhost", 3493, 0, "observer", "pw", False, 7),
    )
    assert cfg.minsupplies == 2
    assert cfg.shutdowncmd == "/sbin/shutdown -h +0"
    assert cfg.notifycmd == "/usr/sbin/upssched"
    assert cfg.uses_upssched is True
    assert cfg.powerdownflag == Path("/run/killpower")
    assert cfg.pollfreq == 10
    assert cfg.pollfreqalert == 2
    assert cfg.hostsync == 30
    assert cfg.deadtime == 31
    assert cfg.finaldelay == 0
    assert cfg.rbwarntime == 3600
    assert cfg.nocommwarntime == 600
    assert cfg.offduration == -1
    assert cfg.overduration == 60
    assert cfg.oblbduration == 10
    assert cfg.alarmcritical is False
    assert cfg.shutdownexit == 120
    assert cfg.pollfail_log_throttle_max == 10
    assert cfg.run_as_user == "nutmon"
    assert cfg.debug_min == 2  # written "debug_min": upsmon takes DEBUG_MIN in any case
    changed_msgs = {k: v for k, v in cfg.notifymsg.items() if v != NOTIFY_TYPES[k][0]}
    assert changed_msgs == {
        "ONLINE": "UPS %s is getting line power",
        "ALARM": "UPS %s alarm: %s (100%% sure)",  # type written "alarm"
        "NOTLOWBATT": "UPS %s has recharged",
    }
    changed_flags = {k: v for k, v in cfg.notifyflag.items() if v != NOTIFY_TYPES[k][1]}
    assert changed_flags == {
        "ONBATT": {"SYSLOG", "WALL", "EXEC"},
        "ONLINE": {"SYSLOG", "EXEC"},
        "NOTLOWBATT": {"EXEC"},
        "REPLBATT": {"IGNORE"},
    }
    assert cfg.certpath == Path("/etc/nut/cert")
    assert cfg.certident == CertIdent("my client", "db pass")
    assert cfg.certhost == (
        CertHost("localhost", "upsd cert", True, True, 40),
        CertHost("[::1]:3494", "other", False, True, 41),
    )
    assert cfg.certverify is True
    assert cfg.forcessl is True
    assert cfg.certfile == Path("/etc/nut/client.pem")
    assert (cfg.runtime_below, cfg.charge_below, cfg.onbatt_after) == (300, 50, 1800)
    assert cfg.triggers_for("ups1@localhost") == ShutdownTriggers(300, 50, 1800)
    assert cfg.triggers_for("ups2@[::1]:3494") == ShutdownTriggers(600, 50, None)
    assert cfg.monitor("ups3") == cfg.monitors[2]
    assert cfg.monitor("ups3@localhost") is None


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_upsmon_conf(copy_fixture("upsmon-all.conf", tmp_path))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.pollfreq = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.notifymsg["ONBATT"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.trigger_overrides["ups2@[::1]:3494"]["runtime_below"] = 1  # type: ignore[index]


# ---------------------------------------------------------------------------------------
# MONITOR


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("ups", ("ups", "localhost", 3493)),
        ("ups@host", ("ups", "host", 3493)),
        ("ups@host:5678", ("ups", "host", 5678)),
        ("ups@192.0.2.1:1", ("ups", "192.0.2.1", 1)),
        ("ups@[::1]", ("ups", "::1", 3493)),
        ("ups@[fe80::1%eth0]:65535", ("ups", "fe80::1%eth0", 65535)),
        ("my-ups.1@Host.Example", ("my-ups.1", "Host.Example", 3493)),
    ],
)
def test_split_system(system: str, expected: tuple[str, str, int]) -> None:
    assert split_system(system) == expected


@pytest.mark.parametrize(
    ("system", "reason"),
    [
        # upsmon 2.8.0 (observed): UPS name "127.0.0.1:3493" on host 127.0.0.1.
        ("@127.0.0.1:3493", "no UPS name"),
        # upsmon 2.8.0 (observed): "unable to split UPS name", keeps going.
        ("ups@", "no host"),
        # upsmon 2.8.0 (observed): UPS name "ups:3493" on localhost; NUT 2.8.6 refuses.
        ("ups:3493", "a port needs a host: write ups@localhost:3493"),
        # upsmon 2.8.0 (observed): "unable to split UPS name".
        ("ups@::1", "must be written in brackets"),
        ("ups@host:0", "1-65535"),
        ("ups@host:65536", "1-65535"),
        ("ups@host:", "1-65535"),
        # upsmon 2.8.0 (observed): strtol stops at the x and uses the port.
        ("ups@host:3493x", "1-65535"),
        ("ups@[::1]x", "unexpected 'x' after ']'"),
        ("ups@[::1", "missing ']'"),
        ("ups@[]:3493", "empty address"),
        ("ups@a@b", "more than one '@'"),
        ("ups@:3493", "no host before ':'"),
    ],
)
def test_split_system_refuses(system: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        split_system(system)


def test_monitor_roles_in_any_case(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        MON_SHUT
        + "MONITOR a 1 u p PRIMARY\nMONITOR b 1 u p Master\n"
        + "MONITOR c 1 u p secondary\nMONITOR d 1 u p SLAVE\n",
    )
    assert [m.primary for m in cfg.monitors] == [True, True, True, False, False]


def test_monitor_power_value_zero_is_monitoring_only(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, MON_SHUT + "MONITOR other@host 0 u p secondary\n")
    assert cfg.monitors[1].power_value == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # upsmon: "Unable to use old-style MONITOR line without a username" + fatal.
        ("MONITOR ups@localhost 1 pass primary", "old-style MONITOR line without a username"),
        # upsmon: "invalid directive" (fewer than 5 words), then no power: fatal.
        ("MONITOR ups@localhost 1 user", "MONITOR needs <ups[@host[:port]]>"),
        # upsmon: the extra words are ignored.
        ("MONITOR ups@localhost 1 u p primary extra", "too many words for MONITOR"),
        # upsmon: "ignoring invalid power value [-1]" and the UPS is dropped.
        ("MONITOR ups@localhost -1 u p primary", "the power value must be a whole number"),
        # upsmon: strtol("abc") = 0, i.e. monitoring only (observed).
        ("MONITOR ups@localhost abc u p primary", "the power value must be a whole number"),
        # upsmon: anything but primary/master is a secondary (observed).
        ("MONITOR ups@localhost 1 u p primry", "must be primary or secondary"),
        ("MONITOR ups@ 1 u p primary", "MONITOR: no host after '@'"),
    ],
)
def test_monitor_errors(tmp_path: Path, line: str, message: str) -> None:
    err = upsmon_error(tmp_path, MON_SHUT + "\n" + line + "\n")
    assert err.lineno == 5
    assert message in err.message
    assert str(err).startswith(f"{tmp_path / 'upsmon.conf'}:5: ")


def test_duplicate_monitor_is_an_error(tmp_path: Path) -> None:
    # upsmon (observed): "Warning: ignoring duplicate UPS [...]", the second line is lost.
    err = upsmon_error(tmp_path, MON_SHUT + "MONITOR ups@localhost 2 u p secondary\n")
    assert err.lineno == 4
    assert "already defined on line 1" in err.message


def test_same_ups_under_two_names_warns(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, MON_SHUT + "MONITOR ups@LOCALHOST:3493 0 u p secondary\n")
    assert list(as_text(cfg.warnings)) == [
        f"{cfg.path}:4: MONITOR ups@LOCALHOST:3493 is the same UPS as ups@localhost (line 1):"
        " both log in and both power values count"
    ]


# ---------------------------------------------------------------------------------------
# upsmon.conf: power and MONITOR count


def test_no_monitor_is_fatal(tmp_path: Path) -> None:
    # upsmon (observed): "Fatal error: insufficient power configured!" (sum 0 < 1).
    err = upsmon_error(tmp_path, "POLLFREQ 5\n")
    assert err.lineno is None
    assert "no MONITOR line" in err.message


def test_no_monitor_refused_even_with_minsupplies_0(tmp_path: Path) -> None:
    # upsmon (observed) runs with nothing to watch; nuttrio refuses.
    err = upsmon_error(tmp_path, "MINSUPPLIES 0\n")
    assert "no MONITOR line" in err.message


def test_power_sum_below_minsupplies_is_fatal(tmp_path: Path) -> None:
    err = upsmon_error(
        tmp_path,
        "MONITOR a 1 u p primary\nMONITOR b 0 u p primary\nMINSUPPLIES 2\n",
    )
    assert err.lineno == 3
    assert err.message == (
        "insufficient power configured: the MONITOR power values add up to 1, less than "
        "MINSUPPLIES 2 (upsmon refuses to start)"
    )


def test_monitoring_only_needs_minsupplies_0(tmp_path: Path) -> None:
    err = upsmon_error(tmp_path, "MONITOR a 0 u p secondary\n")
    assert err.lineno is None  # the default MINSUPPLIES 1 is on no line
    assert "add up to 0, less than MINSUPPLIES 1" in err.message
    cfg = upsmon(tmp_path, "MONITOR a 0 u p secondary\nMINSUPPLIES 0\n")
    assert cfg.minsupplies == 0
    assert as_text(cfg.warnings) == ()  # no SHUTDOWNCMD is fine for a monitoring-only host


# ---------------------------------------------------------------------------------------
# upsmon.conf: values


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # upsmon: "Ignoring invalid MINSUPPLIES value: -1" (observed).
        ("MINSUPPLIES -1", "MINSUPPLIES must be 0 or more, not -1"),
        ("MINSUPPLIES one", "MINSUPPLIES needs a whole number, not 'one'"),
        # upsmon: "Ignoring invalid POLLFREQ value: -3" (observed); 0 would busy-loop.
        ("POLLFREQ -3", "POLLFREQ must be 1 or more, not -3"),
        ("POLLFREQ 0", "busy loop"),
        ("POLLFREQALERT x", "POLLFREQALERT needs a whole number of seconds, not 'x'"),
        ("POLLFREQ 5s", "needs a whole number of seconds, not '5s'"),
        ("POLLFREQ 5.5", "needs a whole number of seconds"),
        ("HOSTSYNC -1", "HOSTSYNC must be 0 or more"),
        ("DEADTIME -1", "DEADTIME must be 0 or more"),
        ("FINALDELAY -1", "FINALDELAY must be 0 or more"),
        ("RBWARNTIME -5", "RBWARNTIME must be 0 or more"),
        ("NOCOMMWARNTIME abc", "NOCOMMWARNTIME needs a whole number of seconds"),
        ("OFFDURATION abc", "OFFDURATION needs a whole number of seconds (negative: never)"),
        ("OVERDURATION 1x", "OVERDURATION needs a whole number of seconds"),
        # upsmon clamps a negative OBLBDURATION to 0 (no delay); for OFF/OVER it is "never".
        ("OBLBDURATION -1", "upsmon reads a negative value as 0"),
        ("ALARMCRITICAL yes", "ALARMCRITICAL must be 0 or 1, not 'yes'"),
        ("ALARMCRITICAL 2", "ALARMCRITICAL must be 0 or 1"),
        ("CERTVERIFY true", "CERTVERIFY must be 0 or 1"),
        ("FORCESSL on", "FORCESSL must be 0 or 1"),
        # upsmon 2.8.5: "SHUTDOWNEXIT value not recognized, defaulting to 'yes'".
        ("SHUTDOWNEXIT maybe", "SHUTDOWNEXIT needs yes, no or a number of seconds"),
        # upsmon: "WARNING : Invalid DEBUG_MIN value found" (observed).
        ("DEBUG_MIN x", "DEBUG_MIN needs a whole number"),
        ("DEBUG_MIN -1", "DEBUG_MIN must be 0 or more"),
        ("POLLFAIL_LOG_THROTTLE_MAX many", "POLLFAIL_LOG_THROTTLE_MAX needs a whole number"),
        ("CERTHOST h c 1 yes", "CERTHOST forcessl must be 0 or 1"),
        ("CERTHOST h c x 1", "CERTHOST certverify must be 0 or 1"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, message: str) -> None:
    err = upsmon_error(tmp_path, MON_SHUT + line + "\n")
    assert err.lineno == 4
    assert message in err.message, err.message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # upsmon: "invalid directive" for a known directive with too few words (observed).
        ("SHUTDOWNCMD", "SHUTDOWNCMD needs <command>"),
        ("HOSTSYNC", "HOSTSYNC needs one value"),
        ("NOTIFYMSG ONBATT", "NOTIFYMSG needs <type>"),
        ("NOTIFYFLAG ONBATT", "NOTIFYFLAG needs <type>"),
        ("CERTIDENT name", "CERTIDENT needs <certificate name> <password>"),
        ("CERTHOST a b 1", "CERTHOST needs <host>"),
        ("NUTTRIO_RUNTIME_BELOW", "NUTTRIO_RUNTIME_BELOW needs <value>|off"),
        # upsmon ignores the extra words (observed): the message would be "UPS".
        ("NOTIFYMSG ONBATT UPS %s gone", "too many words for NOTIFYMSG"),
        # (observed) flags SYSLOG only.
        ("NOTIFYFLAG ONLINE SYSLOG + WALL", "too many words for NOTIFYFLAG"),
        ("POLLFREQ 5 10", "too many words for POLLFREQ"),
        ("POWERDOWNFLAG /etc/kill power", "too many words for POWERDOWNFLAG"),
        ("CERTIDENT a b c", "too many words for CERTIDENT"),
        ("NUTTRIO_CHARGE_BELOW 10 ups@localhost x", "too many words for NUTTRIO_CHARGE_BELOW"),
    ],
)
def test_word_counts(tmp_path: Path, line: str, message: str) -> None:
    err = upsmon_error(tmp_path, MON_SHUT + line + "\n")
    assert err.lineno == 4
    assert message in err.message, err.message


@pytest.mark.parametrize(
    ("word", "seconds"),
    [
        ("yes", 0),
        ("On", 0),
        ("TRUE", 0),
        ("no", -1),
        ("off", -1),
        ("False", -1),
        ("0", 0),
        ("300", 300),
        ("-1", -1),
        ("-20", -20),
    ],
)
def test_shutdownexit(tmp_path: Path, word: str, seconds: int) -> None:
    assert upsmon(tmp_path, MON_SHUT + f"SHUTDOWNEXIT {word}\n").shutdownexit == seconds


def test_negative_durations_mean_never(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, MON_SHUT + "OFFDURATION -5\nOVERDURATION -1\nOBLBDURATION 0\n")
    assert (cfg.offduration, cfg.overduration, cfg.oblbduration) == (-5, -1, 0)


def test_pollfail_throttle_negative_is_minus_one(tmp_path: Path) -> None:
    # upsmon 2.8.5 ignores negative values, keeping the default -1.
    cfg = upsmon(tmp_path, MON_SHUT + "POLLFAIL_LOG_THROTTLE_MAX -7\n")
    assert cfg.pollfail_log_throttle_max == -1
    assert (
        upsmon(tmp_path, MON_SHUT + "POLLFAIL_LOG_THROTTLE_MAX 0\n").pollfail_log_throttle_max == 0
    )


def test_quoting_and_escapes_as_nut(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        MON
        + 'SHUTDOWNCMD "/sbin/shutdown -h +0 \\"now\\""  # comment\n'
        + "RUN_AS_USER nut\\ mon\n"
        + 'NOTIFYMSG ONBATT "UPS %s: on \\\\ battery \\# now"\n',
    )
    assert cfg.shutdowncmd == '/sbin/shutdown -h +0 "now"'
    assert cfg.run_as_user == "nut mon"
    assert cfg.notifymsg["ONBATT"] == "UPS %s: on \\ battery # now"


def test_tokenizer_error_is_fatal_with_line(tmp_path: Path) -> None:
    # upsmon (observed): "Parse error: ...:2: Unbalanced word due to unescaped # in quotes"
    # and then misreads the rest of the line as another directive.
    err = upsmon_error(tmp_path, MON_SHUT + 'NOTIFYMSG ONBATT "a # b"\nPOLLFREQ 7\n')
    assert err.lineno == 4
    assert err.message.startswith("parse error: ")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_upsmon_conf(tmp_path / "missing.conf")
    assert info.value.lineno is None
    assert "cannot read upsmon.conf" in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "missing.conf"))


def test_commands_with_extra_words(tmp_path: Path) -> None:
    # 2.8.0-2.8.5: only the first word is used; NUT 2.8.6: extra words are arguments.
    cfg = upsmon(tmp_path, MON + "SHUTDOWNCMD /sbin/shutdown -h now\nNOTIFYCMD /bin/notify -x\n")
    assert cfg.shutdowncmd == "/sbin/shutdown"
    assert cfg.shutdowncmd_args == ("-h", "now")
    assert cfg.notifycmd == "/bin/notify"
    assert cfg.notifycmd_args == ("-x",)
    texts = warning_texts(cfg)
    assert len(texts) == 2
    assert all("upsmon 2.8.0-2.8.5 ignores them, NUT 2.8.6 and nuttrio pass" in t for t in texts)


def test_repeated_directives_warn_last_wins(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        MON_SHUT
        + "POLLFREQ 3\nPOLLFREQ 4\n"
        + 'NOTIFYMSG ONBATT "a %s"\nNOTIFYMSG onbatt "b %s"\n'
        + "NOTIFYFLAG ONBATT SYSLOG\nNOTIFYFLAG ONBATT WALL\n"
        + "CERTHOST h a 0 0\nCERTHOST other b 0 0\nCERTHOST h c 1 1\n",
    )
    assert cfg.pollfreq == 4
    assert cfg.notifymsg["ONBATT"] == "b %s"
    assert cfg.notifyflag["ONBATT"] == {"WALL"}
    # upsmon's CERTHOST list is searched newest first: the last line for a host wins.
    assert [(c.host, c.certname) for c in cfg.certhost] == [("other", "b"), ("h", "c")]
    assert list(as_text(cfg.warnings)) == [
        f"{cfg.path}:5: POLLFREQ repeated (first on line 4); the last one is used",
        f"{cfg.path}:7: NOTIFYMSG ONBATT repeated (first on line 6); the last one is used",
        f"{cfg.path}:9: NOTIFYFLAG ONBATT repeated (first on line 8); the last one is used",
        f"{cfg.path}:12: CERTHOST h repeated (first on line 10); the last one is used",
    ]


# ---------------------------------------------------------------------------------------
# upsmon.conf: warnings for what upsmon only logs


def test_unknown_directives_warn(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, MON_SHUT + "pollfreq 5\nFOO bar baz\nNuttrio_Runtime_Below 5\n")
    assert cfg.pollfreq == 5
    assert cfg.runtime_below is None
    assert as_text(cfg.warnings) == (
        f"{cfg.path}:4: invalid directive 'pollfreq 5' (directive names are case-sensitive: "
        "POLLFREQ); ignored",
        f"{cfg.path}:5: invalid directive 'FOO bar baz'; ignored",
        f"{cfg.path}:6: invalid directive 'Nuttrio_Runtime_Below 5' (directive names are "
        "case-sensitive: NUTTRIO_RUNTIME_BELOW); ignored",
    )


def test_debug_min_in_any_case(tmp_path: Path) -> None:
    assert upsmon(tmp_path, MON_SHUT + "Debug_Min 4\n").debug_min == 4


def test_notify_types_in_any_case(tmp_path: Path) -> None:
    # upsmon compares notify type names with strcasecmp.
    cfg = upsmon(tmp_path, MON_SHUT + 'NOTIFYMSG onBatt "x %s"\nNOTIFYFLAG lowbatt EXEC\n')
    assert cfg.notifymsg["ONBATT"] == "x %s"
    assert cfg.notifyflag["LOWBATT"] == {"EXEC"}


def test_unknown_notify_type_warns(tmp_path: Path) -> None:
    # upsmon (observed): "'BOGUS' is not a valid notify event name",
    # "Warning: invalid notify type [BOGUS]".
    cfg = upsmon(tmp_path, MON_SHUT + 'NOTIFYMSG BOGUS "x"\nNOTIFYFLAG BOGUS SYSLOG\n')
    texts = list(as_text(cfg.warnings))
    assert len(texts) == 2
    assert texts[0].startswith(f"{cfg.path}:4: NOTIFYMSG: unknown notify type 'BOGUS'; ignored")
    assert texts[1].startswith(f"{cfg.path}:5: NOTIFYFLAG: unknown notify type 'BOGUS'; ignored")
    assert "BOGUS" not in cfg.notifymsg


def test_notifyflag_replaces_and_drops_unknown_flags(tmp_path: Path) -> None:
    # upsmon (observed): "Invalid notify flag: [syslog]"; the known flags of the line stay,
    # the earlier flags of the type are gone (a line replaces, it does not add).
    cfg = upsmon(
        tmp_path,
        MON_SHUT + "NOTIFYFLAG ONBATT syslog+WALL\nNOTIFYFLAG ONLINE SYSLOG+\n"
        "NOTIFYFLAG LOWBATT nothing\n",
    )
    assert cfg.notifyflag["ONBATT"] == {"WALL"}
    assert cfg.notifyflag["ONLINE"] == {"SYSLOG"}
    assert cfg.notifyflag["LOWBATT"] == frozenset()
    texts = list(as_text(cfg.warnings))
    assert texts[0] == (
        f"{cfg.path}:4: invalid notify flag 'syslog' for ONBATT (flags are case-sensitive: "
        "SYSLOG); ignored (known: SYSLOG+WALL+EXEC+IGNORE)"
    )
    assert texts[1].startswith(f"{cfg.path}:5: invalid notify flag '' for ONLINE; ignored")
    assert texts[2].startswith(f"{cfg.path}:6: invalid notify flag 'nothing' for LOWBATT")


def test_ignore_with_other_flags_warns(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, MON_SHUT + "NOTIFYFLAG ONBATT IGNORE+SYSLOG\n")
    assert cfg.notifyflag["ONBATT"] == {"IGNORE", "SYSLOG"}
    assert list(as_text(cfg.warnings)) == [
        f"{cfg.path}:4: NOTIFYFLAG ONBATT combines IGNORE with other flags; IGNORE wins and "
        "nothing is done"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('NOTIFYMSG ONBATT "UPS %d on battery"', "'%d' in the message"),
        ('NOTIFYMSG ONBATT "100%"', "a lone '%' at the end"),
        ('NOTIFYMSG ONBATT "%s %s"', "2 %s in the message; at most 1"),
        ('NOTIFYMSG ALARM "%s %s %s"', "3 %s in the message; at most 2"),
        ('NOTIFYMSG ONBATT "%5s"', "'%5' in the message"),
    ],
)
def test_notifymsg_format_checked(tmp_path: Path, line: str, message: str) -> None:
    err = upsmon_error(tmp_path, MON_SHUT + line + "\n")
    assert err.lineno == 4
    assert message in err.message


def test_notifymsg_formats_accepted(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        MON_SHUT
        + 'NOTIFYMSG ONBATT "100%% sure: %s"\nNOTIFYMSG OTHER "%s: [%s]"\n'
        + 'NOTIFYMSG SHUTDOWN "bye"\n',
    )
    assert cfg.notifymsg["ONBATT"] == "100%% sure: %s"
    assert as_text(cfg.warnings) == ()


def test_sanity_warnings(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        "MONITOR ups@localhost 1 u p primary\nNOTIFYFLAG ONBATT SYSLOG+EXEC\n"
        "POLLFREQ 30\nDEADTIME 15\n",
    )
    assert warning_texts(cfg) == [
        "no SHUTDOWNCMD: this host cannot shut itself down",
        "NOTIFYFLAG gives EXEC to ONBATT but there is no NOTIFYCMD to run",
        "no POWERDOWNFLAG: this primary cannot tell the late shutdown to turn the UPS off "
        "(upsmon has no default; packages use /etc/killpower)",
        "DEADTIME 15 is shorter than the poll interval 30: a single failed poll of a UPS on "
        "battery makes it dead (NUT advises 3 times the longer of POLLFREQ and POLLFREQALERT)",
    ]


def test_secondary_without_powerdownflag_is_fine(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, 'MONITOR ups@host 1 u p secondary\nSHUTDOWNCMD "x"\n')
    assert as_text(cfg.warnings) == ()


def test_world_readable_file_warns(tmp_path: Path) -> None:
    path = write(tmp_path / "upsmon.conf", MON_SHUT)
    path.chmod(0o644)
    cfg = load_upsmon_conf(path)
    assert as_text(cfg.warnings) == (
        f"{path}: file is readable by other users but holds MONITOR passwords",
    )


# ---------------------------------------------------------------------------------------
# nuttrio's own directives


def test_triggers_global_and_per_monitor(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        MON_SHUT
        + "MONITOR b@host 1 u p secondary\n"
        + "NUTTRIO_RUNTIME_BELOW 300\nNUTTRIO_CHARGE_BELOW 100\nNUTTRIO_ONBATT_AFTER 0\n"
        + "NUTTRIO_CHARGE_BELOW 20 b@host\nNUTTRIO_ONBATT_AFTER off b@host\n"
        + "NUTTRIO_RUNTIME_BELOW OFF ups@localhost\n",
    )
    assert (cfg.runtime_below, cfg.charge_below, cfg.onbatt_after) == (300, 100, 0)
    assert cfg.triggers_for("ups@localhost") == ShutdownTriggers(None, 100, 0)
    assert cfg.triggers_for("b@host") == ShutdownTriggers(300, 20, None)
    assert cfg.triggers_for("unknown") == ShutdownTriggers(300, 100, 0)
    assert as_text(cfg.warnings) == ()


def test_trigger_off_globally(tmp_path: Path) -> None:
    cfg = upsmon(tmp_path, MON_SHUT + "NUTTRIO_RUNTIME_BELOW 300\nNUTTRIO_RUNTIME_BELOW off\n")
    assert cfg.runtime_below is None
    assert list(as_text(cfg.warnings)) == [
        f"{cfg.path}:5: NUTTRIO_RUNTIME_BELOW repeated (first on line 4); the last one is used"
    ]


def test_per_monitor_trigger_may_precede_its_monitor(tmp_path: Path) -> None:
    cfg = upsmon(
        tmp_path,
        "NUTTRIO_CHARGE_BELOW 30 late@host\n" + MON_SHUT + "MONITOR late@host 0 u p secondary\n",
    )
    assert cfg.triggers_for("late@host").charge_below == 30


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("NUTTRIO_RUNTIME_BELOW 0", "NUTTRIO_RUNTIME_BELOW must be 1 or more seconds (or off)"),
        ("NUTTRIO_RUNTIME_BELOW 5m", "needs a whole number of seconds or off, not '5m'"),
        ("NUTTRIO_CHARGE_BELOW 0", "NUTTRIO_CHARGE_BELOW must be 1-100 percent (or off)"),
        ("NUTTRIO_CHARGE_BELOW 101", "must be 1-100 percent"),
        ("NUTTRIO_CHARGE_BELOW 50%", "needs a whole number of percent or off"),
        ("NUTTRIO_ONBATT_AFTER -1", "NUTTRIO_ONBATT_AFTER must be 0 or more seconds"),
        # The UPS must be written exactly as in MONITOR.
        ("NUTTRIO_RUNTIME_BELOW 600 ups", "names 'ups', which no MONITOR line defines"),
    ],
)
def test_trigger_errors(tmp_path: Path, line: str, message: str) -> None:
    err = upsmon_error(tmp_path, MON_SHUT + line + "\n")
    assert err.lineno == 4
    assert message in err.message, err.message


def test_policy_field_names(tmp_path: Path) -> None:
    # The manager's settings carry upsmon's names, lower-cased.
    names = {f.name for f in attrs.fields(UpsmonConfig)}
    assert {
        "minsupplies",
        "hostsync",
        "deadtime",
        "finaldelay",
        "oblbduration",
        "offduration",
        "overduration",
        "alarmcritical",
        "rbwarntime",
        "nocommwarntime",
        "runtime_below",
        "charge_below",
        "onbatt_after",
    } <= names


# ---------------------------------------------------------------------------------------
# NOTIFYCMD is upssched?


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("/usr/sbin/upssched", True),
        ("/sbin/upssched", True),
        ("upssched", True),
        ('"/opt/nut dir/sbin/upssched" -D', True),
        ("/usr/sbin/upssched --extra arg", True),
        ("/usr/local/bin/upssched-cmd", False),
        ("/usr/bin/notify upssched", False),
        ("/usr/sbin/upssched.sh", False),
        ("", False),
        ('"unbalanced /usr/sbin/upssched', False),
        ("/usr/sbin/upssched 'unbalanced", True),
    ],
)
def test_notifycmd_is_upssched(cmd: str, expected: bool) -> None:
    assert notifycmd_is_upssched(cmd) is expected


# ---------------------------------------------------------------------------------------
# upssched.conf


def test_upssched_fixture(tmp_path: Path) -> None:
    cfg = load_upssched_conf(copy_fixture("upssched.conf", tmp_path))
    assert as_text(cfg.warnings) == ()
    assert cfg.cmdscript == "/usr/local/bin/upssched-cmd"
    assert cfg.pipefn == Path("/run/nut/upssched/upssched.pipe")
    assert cfg.lockfn == Path("/run/nut/upssched/upssched.lock")
    assert cfg.debug_min == 1
    S = SchedAction
    assert cfg.rules == (
        SchedRule("ONBATT", "*", S.START_TIMER, ("onbatt", "300"), 8),
        SchedRule("ONLINE", "*", S.CANCEL_TIMER, ("onbatt", "online-again"), 9),
        SchedRule("ONBATT", "ups1@localhost", S.START_TIMER_SHARED, ("anyonbatt", "60"), 11),
        SchedRule("ONLINE", "*", S.CANCEL_TIMER_MATCHED, ("anyonbatt",), 12),
        SchedRule("COMMBAD", "*", S.START_TIMER, ("commbad", "30"), 13),
        SchedRule("COMMOK", "*", S.CANCEL_TIMER, ("commbad",), 14),
        SchedRule("REPLBATT", "*", S.EXECUTE, ("replbatt",), 16),
        SchedRule("REPLBATT", "ups1@localhost", S.EXECUTE, ("replace battery",), 17),
        SchedRule("LOWBATT", "*", S.EXECUTE, ("lowbatt",), 18),
    )
    start, cancel, shared, matched, _, plain_cancel, execute, *_ = cfg.rules
    assert (start.timer, start.seconds, start.command) == ("onbatt", 300, None)
    assert (cancel.timer, cancel.seconds, cancel.command) == ("onbatt", None, "online-again")
    assert (shared.timer, shared.seconds) == ("anyonbatt", 60)
    assert (matched.timer, matched.command) == ("anyonbatt", None)
    assert plain_cancel.command is None
    assert (execute.timer, execute.seconds, execute.command) == (None, None, "replbatt")


def test_upssched_matching(tmp_path: Path) -> None:
    cfg = load_upssched_conf(copy_fixture("upssched.conf", tmp_path))
    # Type without regard to case, UPS exactly (or *), every match in file order.
    assert [r.lineno for r in cfg.matching("onbatt", "ups1@localhost")] == [8, 11]
    assert [r.lineno for r in cfg.matching("ONBATT", "ups1")] == [8]
    assert [r.lineno for r in cfg.matching("ONBATT", "UPS1@localhost")] == [8]
    assert [r.lineno for r in cfg.matching("REPLBATT", "ups1@localhost")] == [16, 17]
    assert cfg.matching("SHUTDOWN", "") == ()


def test_upssched_defaults(tmp_path: Path) -> None:
    cfg = upssched(tmp_path, "# nothing\n")
    assert cfg == UpsschedConfig(path=cfg.path)
    assert (cfg.cmdscript, cfg.pipefn, cfg.lockfn, cfg.rules, cfg.debug_min) == (
        None,
        None,
        None,
        (),
        None,
    )


HEAD = "CMDSCRIPT /bin/cmd\nPIPEFN /run/p\nLOCKFN /run/l\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # upssched: "invalid directive" for fewer than 5 words (observed).
        ("AT ONBATT * EXECUTE", "AT needs <notifytype> <ups|*> <action> <argument...>"),
        ("AT ONBATT *", "AT needs"),
        # upssched: "Invalid command: execute" (observed: actions are case-sensitive).
        ("AT ONBATT * execute x", "unknown action 'execute' (actions are case-sensitive: EXECUTE)"),
        ("AT ONBATT * RUN x", "unknown action 'RUN'"),
        # upssched sends START without a time: the daemon does not understand it.
        ("AT ONBATT * START-TIMER t", "START-TIMER needs <timer> <seconds>"),
        ("AT ONBATT * START-TIMER-SHARED t", "START-TIMER-SHARED needs <timer> <seconds>"),
        # upssched: strtol: "abc" is 0 s (fires at once), a negative time is ignored.
        ("AT ONBATT * START-TIMER t abc", "the time must be a whole number of seconds"),
        ("AT ONBATT * START-TIMER t -5", "the time must be a whole number of seconds"),
        ("AT ONBATT * START-TIMER t 5s", "not '5s'"),
        # upssched ignores the extra words: EXECUTE echo hi runs "echo" (observed).
        ("AT ONBATT * EXECUTE echo hi", "too many words for AT ... EXECUTE <command>"),
        ("AT ONBATT * START-TIMER t 5 x", "too many words for AT ... START-TIMER"),
        ("AT ONLINE * CANCEL-TIMER t cmd x", "too many words for AT ... CANCEL-TIMER"),
        # upssched: "Empty EXECUTE command argument".
        ('AT ONBATT * EXECUTE ""', "EXECUTE: empty <command>"),
        ('AT ONBATT * START-TIMER "" 5', "START-TIMER: empty <timer>"),
        ("CMDSCRIPT", "CMDSCRIPT needs a value"),
        ("PIPEFN /a /b", "PIPEFN takes one value"),
        ("DEBUG_MIN x", "DEBUG_MIN needs a whole number"),
    ],
)
def test_upssched_errors(tmp_path: Path, line: str, message: str) -> None:
    err = upssched_error(tmp_path, HEAD + line + "\n")
    assert err.lineno == 4
    assert message in err.message, err.message
    assert str(err).startswith(f"{tmp_path / 'upssched.conf'}:4: ")


def test_upssched_at_without_cmdscript_is_fatal(tmp_path: Path) -> None:
    err = upssched_error(tmp_path, "PIPEFN /p\nLOCKFN /l\nAT ONBATT * EXECUTE x\n")
    assert err.lineno == 3
    assert "AT lines but no CMDSCRIPT" in err.message


def test_upssched_order_does_not_matter_but_warns(tmp_path: Path) -> None:
    # upssched 2.8.x (observed): "CMDSCRIPT must be set before any ATs in the config file!"
    # and exit 1 on every call; PIPEFN and LOCKFN likewise.
    cfg = upssched(
        tmp_path,
        "AT ONBATT * START-TIMER t 5\nAT ONLINE * CANCEL-TIMER t\nCMDSCRIPT /bin/cmd\n",
    )
    assert cfg.cmdscript == "/bin/cmd"
    assert len(cfg.rules) == 2
    assert cfg.pipefn is None
    assert list(as_text(cfg.warnings)) == [
        f"{cfg.path}:1: AT before CMDSCRIPT, PIPEFN, LOCKFN: upssched 2.8.x requires "
        "CMDSCRIPT, PIPEFN and LOCKFN before the first AT and stops here (nuttrio reads the "
        "whole file)"
    ]


def test_upssched_warnings(tmp_path: Path) -> None:
    cfg = upssched(
        tmp_path,
        HEAD + "cmdscript /x\nAT BOGUS * EXECUTE x\nCMDSCRIPT /bin/other\nAT onbatt * EXECUTE y\n",
    )
    assert cfg.cmdscript == "/bin/other"
    assert [r.notify_type for r in cfg.rules] == ["BOGUS", "ONBATT"]
    texts = list(as_text(cfg.warnings))
    assert texts[0] == (
        f"{cfg.path}:4: invalid directive 'cmdscript /x' (directive names are case-sensitive: "
        "CMDSCRIPT); ignored"
    )
    assert texts[1].startswith(f"{cfg.path}:5: AT: unknown notify type 'BOGUS': this rule never")
    assert texts[2] == f"{cfg.path}:6: CMDSCRIPT repeated (first on line 1); the last one is used"
    assert len(texts) == 3


def test_upssched_nuttrio_types_are_known(tmp_path: Path) -> None:
    cfg = upssched(tmp_path, HEAD + "AT NOTLOWBATT * CANCEL-TIMER-MATCHED lowbatt\n")
    assert as_text(cfg.warnings) == ()
    assert cfg.rules[0].matches("notlowbatt", "any@host")


def test_check_upssched_against_upsmon(tmp_path: Path) -> None:
    mon = upsmon(
        tmp_path,
        "MONITOR ups1@localhost 1 u p secondary\nSHUTDOWNCMD x\nNOTIFYCMD /sbin/upssched\n"
        "NOTIFYFLAG ONBATT SYSLOG+EXEC\nNOTIFYFLAG ONLINE EXEC+IGNORE\n",
    )
    sched = upssched(
        tmp_path,
        HEAD
        + "AT ONBATT * START-TIMER t 5\nAT ONBATT ups1 START-TIMER u 5\n"
        + "AT ONLINE * CANCEL-TIMER t\nAT LOWBATT ups1@localhost EXECUTE x\n",
    )
    assert list(as_text(check_upssched_against_upsmon(sched, mon))) == [
        f"{sched.path}:5: AT ONBATT ups1 never applies: no MONITOR is written exactly 'ups1' "
        "(upsmon.conf has ups1@localhost)",
        f"{sched.path}:6: AT ONLINE never applies: NOTIFYFLAG ONLINE in {mon.path} includes IGNORE",
        f"{sched.path}:7: AT LOWBATT never applies: NOTIFYFLAG LOWBATT in {mon.path} lacks EXEC",
    ]
    plain = attrs.evolve(mon, notifycmd="/usr/local/bin/notify")
    assert list(as_text(check_upssched_against_upsmon(sched, plain))) == [
        f"{mon.path}: NOTIFYCMD is not upssched, so the AT rules of {sched.path} are never used"
    ]


# ---------------------------------------------------------------------------------------
# The real upsmon and upssched


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _private_run_nut() -> bool:
    """Whether upsmon can get a private /run/nut (its compiled-in PID directory).

    upsmon writes and removes ``<PIDPATH>/upsmon.pid`` whatever the environment says; as
    root that would disturb another upsmon on this machine, so the test runs it in a
    mount namespace with a tmpfs on /run/nut when it can.
    """
    if os.geteuid() != 0 or shutil.which("unshare") is None or not Path("/run/nut").is_dir():
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs tmpfs /run/nut"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.realnut
def test_real_upsmon_accepts_the_extensions(tmp_path: Path) -> None:
    binary = _real_binary("upsmon")
    if binary is None:
        reason = "the real upsmon is not installed (/lib/nut/upsmon)"
        print(reason)
        pytest.skip(reason)
    port = _free_port()  # nothing listens there: upsmon logs COMMBAD and keeps polling
    conf = copy_fixture("upsmon-nuttrio.conf", tmp_path)
    text = conf.read_text()
    assert "ups@127.0.0.1:3493" in text
    assert "POWERDOWNFLAG /run/killpower\n" in text
    text = text.replace("ups@127.0.0.1:3493", f"ups@127.0.0.1:{port}")
    text = text.replace("/run/killpower", str(tmp_path / "killpower"))
    write(conf, text)

    ours = load_upsmon_conf(conf)
    assert as_text(ours.warnings) == ()
    system = f"ups@127.0.0.1:{port}"
    assert ours.triggers_for(system) == ShutdownTriggers(600, 40, 900)

    # -F foreground, -D log to stderr, -p no privilege split (one process to stop),
    # -P 1: skip the "already running" check of upsmon.pid (pid 1 is ignored as invalid).
    cmd = [str(binary), "-D", "-F", "-p", "-P", "1", "-f", str(conf)]
    if _private_run_nut():
        mount = 'mount -t tmpfs tmpfs /run/nut && exec "$@"'
        cmd = ["unshare", "--mount", "sh", "-c", mount, "sh", *cmd]
    log_path = tmp_path / "upsmon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        time.sleep(1.0)
        exited = proc.poll()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log_text = log_path.read_text(errors="replace")
    print(log_text)
    assert exited is None, f"upsmon exited with {exited} within a second"
    assert "Fatal" not in log_text
    assert f"UPS: {system} (primary) (power value 1)" in log_text
    # Each extension line is only an "invalid directive" warning to upsmon.
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith("NUTTRIO_"):
            assert f"{conf} line {lineno}: invalid directive {line}" in log_text
    assert "'NOTLOWBATT' is not a valid notify event name" in log_text
    assert "invalid notify type [NOTLOWBATT]" in log_text
    # Nothing else in the file bothered it.
    complaints = [
        line
        for line in log_text.splitlines()
        if re.search(r"invalid|Invalid|Parse error|Ignoring|ignoring|Error", line)
        and "NUTTRIO_" not in line
        and "NOTLOWBATT" not in line
        and "Ignoring invalid pid number 1" not in line
    ]
    assert complaints == []


def _real_upssched(tmp_path: Path) -> tuple[Path, Path]:
    binary = _real_binary("upssched")
    if binary is None:
        reason = "the real upssched is not installed (/sbin/upssched)"
        print(reason)
        pytest.skip(reason)
    script = tmp_path / "cmd.sh"
    script.write_text(f'#!/bin/sh\necho "$#:$*" >> {tmp_path / "ran"}\n')
    script.chmod(0o700)
    return binary, script


def _run_upssched(
    binary: Path, confdir: Path, ups: str, ntype: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NUT_CONFPATH=str(confdir), UPSNAME=ups, NOTIFYTYPE=ntype)
    return subprocess.run(
        [str(binary)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.realnut
def test_real_upssched_runs_the_rules_we_match(tmp_path: Path) -> None:
    binary, script = _real_upssched(tmp_path)
    conf = copy_fixture("upssched.conf", tmp_path)
    text = conf.read_text().replace("/usr/local/bin/upssched-cmd", str(script))
    text = text.replace("/run/nut/upssched", str(tmp_path))
    write(conf, text)
    ours = load_upssched_conf(conf)

    # REPLBATT has only EXECUTE rules, so no timer daemon is started.
    result = _run_upssched(binary, tmp_path, "ups1@localhost", "replbatt")
    assert result.returncode == 0, result
    ran = (tmp_path / "ran").read_text().splitlines()
    expected = [r.command for r in ours.matching("replbatt", "ups1@localhost")]
    assert expected == ["replbatt", "replace battery"]
    # upssched runs "CMDSCRIPT <command>" through the shell: a quoted command with a
    # space arrives as two arguments.
    assert ran == ["1:replbatt", "2:replace battery"]


@pytest.mark.realnut
def test_real_upssched_wants_cmdscript_first(tmp_path: Path) -> None:
    binary, script = _real_upssched(tmp_path)
    conf = write(
        tmp_path / "upssched.conf",
        f"AT REPLBATT * EXECUTE x\nCMDSCRIPT {script}\nPIPEFN {tmp_path}/p\nLOCKFN {tmp_path}/l\n",
    )
    result = _run_upssched(binary, tmp_path, "ups", "REPLBATT")
    assert result.returncode == 1
    assert "CMDSCRIPT must be set before any ATs in the config file!" in result.stdout
    assert not (tmp_path / "ran").exists()
    ours = load_upssched_conf(conf)  # nuttrio: only a warning
    assert ours.cmdscript == str(script)
    assert "AT before CMDSCRIPT, PIPEFN, LOCKFN" in as_text(ours.warnings)[0]
