"""Tests for tests/realnut.py: the harness that runs the real NUT upsd + dummy-ups."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from tests import realnut
from tests.realnut import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DDL_DIR,
    RealNut,
    RealNutError,
    RealNutFactory,
    free_port,
    require_real_nut,
    upsc_dump,
    write_dev_file,
    write_nut_config,
)

SMALL_DEV = {
    "battery.charge": "87",
    "battery.runtime": "1860",
    "ups.status": "OL CHRG",
    "ups.mfr": "Acme Corp",
    "ups.model": "Test  Model",  # two spaces survive only because the value is quoted
    "ups.id": 'say "hi"',
}


# ---------------------------------------------------------------------------
# No real NUT needed


def test_write_nut_config_files(tmp_path: Path) -> None:
    dev = tmp_path / "a.dev"
    confdir = write_nut_config(
        tmp_path / "conf",
        port=34567,
        ups={"alpha": {"port": str(dev), "desc": 'Main "rack" #1'}, "beta": {"port": "b.dev"}},
        upsd_extra="MAXAGE 30",
    )
    upsd_conf = (confdir / "upsd.conf").read_text()
    assert "LISTEN 127.0.0.1 34567\n" in upsd_conf
    assert f'STATEPATH "{confdir / "state"}"\n' in upsd_conf
    assert upsd_conf.endswith("MAXAGE 30\n")
    ups_conf = (confdir / "ups.conf").read_text()
    assert "[alpha]\n" in ups_conf
    assert '\tdriver = "dummy-ups"\n' in ups_conf
    assert '\tdesc = "Main \\"rack\\" \\#1"\n' in ups_conf
    assert ups_conf.index("[alpha]") < ups_conf.index("[beta]")
    users = (confdir / "upsd.users").read_text()
    assert f"[{ADMIN_USER}]" in users
    assert f'password = "{ADMIN_PASSWORD}"' in users
    assert "upsmon primary" in users
    assert "upsmon secondary" in users
    state_mode = stat.S_IMODE((confdir / "state").stat().st_mode)
    assert state_mode == 0o770


def test_write_nut_config_rejects_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid UPS name"):
        write_nut_config(tmp_path, port=1, ups={"a b": {"port": "x.dev"}})
    with pytest.raises(ValueError, match="needs a 'port'"):
        write_nut_config(tmp_path, port=1, ups={"a": {"desc": "x"}})


def test_skip_reason_names_missing_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnut, "LIBEXEC_DIRS", ())
    with pytest.raises(pytest.skip.Exception, match=r"dummy-ups.*nut-server and nut-client"):
        require_real_nut()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------
# Real upsd + dummy-ups


@pytest.mark.realnut
def test_upsc_prints_dev_values(real_nut: RealNutFactory, tmp_path: Path) -> None:
    dev = write_dev_file(tmp_path / "small.dev", SMALL_DEV)
    nut = real_nut({"small": {"port": str(dev), "desc": "harness test"}})
    lines = upsc_dump(nut.target("small"))
    for expected in (
        "battery.charge: 87",
        "battery.runtime: 1860",
        "ups.status: OL CHRG",
        "ups.mfr: Acme Corp",
        "ups.model: Test  Model",
        'ups.id: say "hi"',
        # added by dummy-ups itself
        "device.mfr: Acme Corp",
        "device.model: Test  Model",
        "device.type: ups",
        "driver.name: dummy-ups",
        "driver.parameter.mode: dummy-once",
        f"driver.parameter.port: {dev}",
        "driver.parameter.synchronous: auto",
        "driver.version: 2.8.0",
    ):
        assert expected in lines
    names = [line.partition(":")[0] for line in lines]
    assert names == sorted(names, key=str.lower)  # upsd orders by strcasecmp of the name


@pytest.mark.realnut
def test_raw_get_var_exact_bytes(real_nut: RealNutFactory, tmp_path: Path) -> None:
    dev = write_dev_file(tmp_path / "small.dev", SMALL_DEV)
    nut = real_nut({"small": {"port": str(dev)}, "other": {"port": str(dev)}})
    with socket.create_connection(("127.0.0.1", nut.port), timeout=5) as sock:
        sock.sendall(b"GET VAR small ups.status\nGET VAR small ups.id\nLIST UPS\n")
        data = b""
        while not data.endswith(b"END LIST UPS\n"):
            chunk = sock.recv(4096)
            assert chunk, f"connection closed early after {data!r}"
            data += chunk
    assert data == (
        b'VAR small ups.status "OL CHRG"\n'
        b'VAR small ups.id "say \\"hi\\""\n'
        b"BEGIN LIST UPS\n"
        b'UPS small "Description unavailable"\n'
        b'UPS other "Description unavailable"\n'
        b"END LIST UPS\n"
    )
    with nut.connect() as conn:
        assert conn.request("GET VAR other battery.charge") == b'VAR other battery.charge "87"\n'
        assert conn.request("GET VAR nosuch ups.status") == b"ERR UNKNOWN-UPS\n"


@pytest.mark.realnut
def test_startup_failure_shows_driver_output(tmp_path: Path) -> None:
    require_real_nut()
    confdir = write_nut_config(
        tmp_path / "conf", port=free_port(), ups={"broken": {"port": str(tmp_path / "no.dev")}}
    )
    with pytest.raises(RealNutError, match=r"(?s)exited.*Can't open dummy-ups definition file"):
        RealNut(confdir, startup_timeout=10).start()


@pytest.mark.realnut
def test_privilege_drop_to_nut_user() -> None:
    """With ``run_as="nut"`` the config/state permissions must suffice for user nut."""
    require_real_nut()
    if os.geteuid() != 0:
        pytest.skip("privilege drop needs root")
    try:
        pwd.getpwnam("nut")
    except KeyError:
        pytest.skip("no 'nut' user on this machine")
    # pytest's tmp_path sits below a 0700 directory that user nut cannot enter.
    base = Path(tempfile.mkdtemp(prefix="realnut-", dir="/tmp"))
    try:
        base.chmod(0o755)
        dev = write_dev_file(base / "small.dev", SMALL_DEV)
        dev.chmod(0o644)
        confdir = write_nut_config(
            base / "conf", port=free_port(), ups={"small": {"port": str(dev)}}
        )
        with RealNut(confdir, run_as="nut") as nut:
            assert "ups.status: OL CHRG" in upsc_dump(nut.target("small"))
            assert nut.upsd is not None
            assert Path(f"/proc/{nut.upsd.pid}").stat().st_uid == pwd.getpwnam("nut").pw_uid
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.realnut
def test_ddl_all_files_served(ddl_real_upsc: dict[Path, list[str]]) -> None:
    assert len(ddl_real_upsc) == len(realnut.ddl_dev_files())
    for path, lines in ddl_real_upsc.items():
        assert "driver.name: dummy-ups" in lines, path
        assert f"driver.parameter.port: {path}" in lines, path
        assert any(line.startswith("ups.status:") for line in lines), path
    # dummy-ups reads .dev files with NUT's config tokenizer: '#' starts a comment.
    commented = DDL_DIR / "APC" / "APC__Back-UPS_BR_800__newhidups__2.0.3__01.dev"
    if commented in ddl_real_upsc:
        assert "battery.date: 3150/08/01" in ddl_real_upsc[commented]
