"""TLS interop with Debian's NSS build of NUT 2.8.0 (certutil from libnss3-tools makes the DBs).

* the commands nuttrio prints for an NSS upsd.conf really give a CERTFILE nuttrio serves;
* nuttrio's client and manager against the real upsd serving TLS from an NSS database;
* Debian's upsmon (FORCESSL 1, CERTVERIFY 1, CERTPATH: an NSS database holding nuttrio's
  certificate) runs the Shutdown Story against nuttrio over TLS, with plaintext refused;
* a plaintext client refused when enforced (plaintext allowed from 127.0.0.1/32 only, the
  client connecting from 127.0.0.2).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import trio

from nuttrio.cli.cert import write_cert
from nuttrio.client import (
    NutError,
    cert_fingerprint,
    client_ssl_context,
    open_nut_client,
)
from nuttrio.mgmt.runner import read_once
from nuttrio.nutconf import load_upsd_conf, load_upsmon_conf
from nuttrio.server.tls import load_server_context, nss_export_commands

from .helpers import wait_until
from .nuttrio_proc import NuttrioProcess
from .realnut import (
    RealNut,
    free_port,
    nut_request,
    require_real_nut,
    run_real_upsmon,
    upsmon_binary,
    write_nut_config,
)

pytestmark = pytest.mark.realnut

USERS = """\
[admin]
    password = adminpass
    actions = SET FSD
    upsmon primary
[mon]
    password = monpass
    upsmon secondary
"""


def exchange_lines(port: int, data: bytes) -> bytes:
    """Send request lines to 127.0.0.1:port in plaintext; read one reply line per request."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        got = b""
        while got.count(b"\n") < data.count(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, f"closed after {got!r}"
            got += chunk
        return got


def require_nss_tools() -> None:
    missing = [tool for tool in ("certutil", "pk12util", "openssl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: libnss3-tools, openssl)")


def run(cmd: list[str] | str, **kw) -> str:
    done = subprocess.run(
        cmd, shell=isinstance(cmd, str), capture_output=True, text=True, check=False, **kw
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def nss_db(d: Path) -> Path:
    """An empty NSS database (no password) in ``d``."""
    d.mkdir(parents=True)
    run(["certutil", "-N", "-d", f"sql:{d}", "--empty-password"])
    return d


def nss_self_signed(db: Path, nickname: str) -> bytes:
    """A self-signed server certificate for localhost/127.0.0.1 in ``db``; its DER."""
    noise = db / "noise"
    noise.write_bytes(os.urandom(64))
    run(
        [
            "certutil", "-S", "-d", f"sql:{db}", "-n", nickname, "-s", "CN=localhost", "-x",
            "-t", "CTu,u,u", "-k", "ec", "-q", "nistp256", "-z", str(noise), "-v", "12",
            "--extSAN", "dns:localhost,ip:127.0.0.1",
        ]
    )  # fmt: skip
    pem = run(["certutil", "-L", "-d", f"sql:{db}", "-n", nickname, "-a"])
    return ssl.PEM_cert_to_DER_cert(pem)


def test_printed_export_commands_give_a_certfile_nuttrio_serves(tmp_path: Path) -> None:
    require_nss_tools()
    db = nss_db(tmp_path / "nssdb")
    der = nss_self_signed(db, "my nut")
    pem = tmp_path / "upsd.pem"
    for command in nss_export_commands(db, "my nut", pem):
        run(command)
    assert not pem.with_suffix(".p12").exists()
    assert oct(pem.stat().st_mode & 0o777) == "0o600"
    conf = tmp_path / "upsd.conf"
    conf.write_text(f'CERTPATH {db}\nCERTIDENT "my nut" ""\nCERTFILE {pem}\n')
    ctx = load_server_context(load_upsd_conf(conf), conf)
    assert ctx is not None
    # The exported certificate is the database's one.
    block = re.search(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem.read_text(), re.S
    )
    assert block is not None
    assert ssl.PEM_cert_to_DER_cert(block.group(0)) == der
    assert "PRIVATE KEY-----" in pem.read_text()


@pytest.fixture(scope="module")
def nss_upsd_running(tmp_path_factory: pytest.TempPathFactory):
    """The real upsd serving TLS from an NSS database, once for the module.

    UPS ``ups`` is only read; ``fsdups`` is the one a test sets FSD on. Yields the RealNut
    and the certificate (DER).
    """
    require_real_nut()
    require_nss_tools()
    tmp_path = tmp_path_factory.mktemp("nss-upsd")
    db = nss_db(tmp_path / "upsd-db")
    der = nss_self_signed(db, "upsd")
    confdir = tmp_path / "nut"
    confdir.mkdir()
    for name in ("ups", "fsdups"):
        (confdir / f"{name}.dev").write_text("ups.status: OL\nbattery.charge: 80\n")
    port = free_port()
    write_nut_config(
        confdir,
        port=port,
        ups={"ups": {"port": "ups.dev"}, "fsdups": {"port": "fsdups.dev"}},
        users=USERS,
        # nuttrio's lines (CERTFILE is an OpenSSL build's) are skipped by Debian's upsd with
        # a warning: one upsd.conf serves both.
        upsd_extra=(
            f"CERTPATH {db}\nCERTIDENT upsd nopass\nCERTFILE {tmp_path / 'upsd.pem'}\n"
            "NUTTRIO_PLAINTEXT_FROM 127.0.0.1/32\nNUTTRIO_MAXCONN_PER_PEER 8\n"
        ),
    )
    with RealNut(confdir) as nut:
        yield nut, der


@pytest.fixture
def nss_upsd(nss_upsd_running):
    """(port, certificate DER) of the module's NSS upsd."""
    nut, der = nss_upsd_running
    return nut.port, der


def test_debian_upsd_skips_nuttrios_directives(nss_upsd_running) -> None:
    """One upsd.conf serves both: Debian's upsd only warns about nuttrio's lines."""
    nut, _ = nss_upsd_running
    log = Path(nut.log_path("upsd")).read_text(errors="replace")
    for directive in ("CERTFILE", "NUTTRIO_PLAINTEXT_FROM", "NUTTRIO_MAXCONN_PER_PEER"):
        assert re.search(rf"upsd.conf: invalid directive {directive} ", log), log


async def test_nuttrio_client_against_the_real_nss_upsd(nss_upsd, tmp_path: Path) -> None:
    port, der = nss_upsd
    pin = cert_fingerprint(der)
    async with open_nut_client(
        "localhost", port, ssl_context=client_ssl_context(pin=pin), pin=pin
    ) as nut:
        assert await nut.get_var("ups", "battery.charge") == "80"
        # upsd's own token for a second STARTTLS.
        with pytest.raises(NutError) as exc:
            await nut.starttls(client_ssl_context(pin=pin), pin=pin)
        assert exc.value.code == "ALREADY-SSL-MODE"
    # Verified against the certificate as CA, by name.
    ca = tmp_path / "upsd-ca.pem"
    ca.write_text(ssl.DER_cert_to_PEM_cert(der))
    async with open_nut_client("localhost", port, ssl_context=client_ssl_context(ca=ca)) as nut:
        assert await nut.get_var("ups", "ups.status") == "OL"


async def test_nuttrio_manager_against_the_real_nss_upsd(nss_upsd, tmp_path: Path) -> None:
    port, der = nss_upsd
    ca = tmp_path / "upsd-ca.pem"
    ca.write_text(ssl.DER_cert_to_PEM_cert(der))
    conf = tmp_path / "upsmon.conf"
    base = (
        f"MONITOR ups@localhost:{port} 1 mon monpass secondary\nSHUTDOWNCMD /bin/true\nFORCESSL 1\n"
    )
    conf.write_text(base + f"CERTVERIFY 1\nCERTPATH {ca}\n")
    conf.chmod(0o600)
    reading = await read_once(load_upsmon_conf(conf))
    assert reading.unreachable == {}
    (verdict,) = reading.machine.verdicts(trio.current_time())
    assert not verdict.critical
    # Pinned to another certificate: refused.
    conf.write_text(base + f"NUTTRIO_CERTPIN localhost {'00' * 32}\n")
    reading = await read_once(load_upsmon_conf(conf))
    (reason,) = reading.unreachable.values()
    assert "is not the pinned" in reason


def test_nuttrio_secondary_against_the_real_nss_upsd_over_tls(nss_upsd, tmp_path: Path) -> None:
    port, der = nss_upsd
    mon = tmp_path / "mon"
    mon.mkdir()
    conf = mon / "upsmon.conf"
    fingerprint = cert_fingerprint(der).hex()
    conf.write_text(
        f"MONITOR fsdups@localhost:{port} 1 mon monpass secondary\n"
        f'SHUTDOWNCMD "touch {mon}/done"\nPOLLFREQ 1\nPOLLFREQALERT 1\n'
        f"FORCESSL 1\nNUTTRIO_CERTPIN localhost {fingerprint}\n"
    )
    conf.chmod(0o600)

    def logins() -> str:
        return nut_request(port, b"GET NUMLOGINS fsdups\n").decode().strip()

    with NuttrioProcess(["--secondary", "--nut-config", str(mon)]):
        wait_until(lambda: logins() == "NUMLOGINS fsdups 1", 15, "the secondary's TLS LOGIN")
        reply = exchange_lines(port, b"USERNAME admin\nPASSWORD adminpass\nFSD fsdups\n")
        assert reply == b"OK\nOK\nOK FSD-SET\n"
        wait_until(lambda: (mon / "done").exists(), 15, "the secondary's shutdown")


def nuttrio_server_conf(d: Path, port: int, certfile: Path) -> Path:
    d.mkdir(parents=True)
    (d / "ups.dev").write_text("ups.status: OL\nbattery.charge: 50\n")
    (d / "ups.conf").write_text("[ups]\n driver = dummy-ups\n port = ups.dev\n pollinterval = 1\n")
    (d / "upsd.conf").write_text(
        f"LISTEN 127.0.0.1 {port}\nCERTFILE {certfile}\nNUTTRIO_PLAINTEXT_FROM 127.0.0.1/32\n"
    )
    (d / "upsd.users").write_text(USERS)
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


def test_real_upsmon_runs_the_shutdown_story_against_nuttrio_over_tls(tmp_path: Path) -> None:
    require_real_nut()
    require_nss_tools()
    if upsmon_binary() is None:
        pytest.skip("real upsmon not installed (CI installs nut-client)")
    port = free_port()
    files = write_cert("127.0.0.1", tmp_path / "certs", days=30)
    server = nuttrio_server_conf(tmp_path / "srv", port, files.certfile)
    # upsmon's CERTPATH: an NSS database trusting nuttrio's certificate.
    db = nss_db(tmp_path / "upsmon-db")
    run(["certutil", "-A", "-d", f"sql:{db}", "-n", "nuttrio", "-t", "P,,", "-i",
         str(files.certonly)])  # fmt: skip
    mon = tmp_path / "mon"
    mon.mkdir()
    conf = mon / "upsmon.conf"
    conf.write_text(
        f"MONITOR ups@127.0.0.1:{port} 1 admin adminpass primary\n"
        f'SHUTDOWNCMD "touch {mon}/done"\nPOWERDOWNFLAG {mon}/killpower\n'
        "POLLFREQ 1\nPOLLFREQALERT 1\nFINALDELAY 1\nHOSTSYNC 5\n"
        f"FORCESSL 1\nCERTVERIFY 1\nCERTPATH {db}\n"
        + "".join(f"NOTIFYFLAG {t} SYSLOG\n" for t in ("ONBATT", "LOWBATT", "FSD", "SHUTDOWN"))
    )
    conf.chmod(0o600)

    async def outside(request: bytes) -> bytes:
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.2")
        async with stream:
            await stream.send_all(request)
            data = b""
            with trio.fail_after(5):
                while data.count(b"\n") < request.count(b"\n"):
                    data += await stream.receive_some()
            return data

    def logins() -> str:
        return nut_request(port, b"GET NUMLOGINS ups\n").decode().strip()

    with NuttrioProcess(["--attach", "--nut-config", str(server)]) as nuttrio:
        # A plaintext client from outside 127.0.0.1/32 is refused, whatever it asks.
        assert trio.run(outside, b"VER\nGET NUMLOGINS ups\n") == b"ERR TLS-NOT-ENABLED\n" * 2
        with run_real_upsmon(mon) as upsmon:
            wait_until(lambda: logins() == "NUMLOGINS ups 1", 20, "upsmon's LOGIN over TLS")
            dev = server / "ups.dev"
            old = dev.stat().st_mtime
            dev.write_text("ups.status: OB LB\nbattery.charge: 5\n")
            os.utime(dev, (old + 1, old + 1))
            start = time.monotonic()
            wait_until(lambda: (mon / "done").exists(), 30, "upsmon's SHUTDOWNCMD")
            assert time.monotonic() - start < 20
            assert (mon / "killpower").exists()
            status = nut_request(port, b"GET VAR ups ups.status\n")
            assert status == b'VAR ups ups.status "FSD OB LB"\n'
            assert upsmon.wait(10) == 0
    log = (mon / "upsmon.log").read_text()
    assert "Connecting in SSL to '127.0.0.1'" in log
    assert "Can not connect" not in log
    assert "validation failed" not in log
    assert nuttrio.returncode == 0
