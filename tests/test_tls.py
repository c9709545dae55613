"""STARTTLS both ways: the server's certificate from upsd.conf, enforcement, pins, the manager.

Certificates come from trustme (a CA) and from ``nuttrio cert`` (self-signed); the server
runs as an embedded daemon on 127.0.0.1, and "outside" clients connect from 127.0.0.2 while
upsd.conf allows plaintext from 127.0.0.1/32 only.
"""

from __future__ import annotations

import datetime
import shutil
import ssl
import stat
from pathlib import Path

import pytest
import trio
import trustme

import nuttrio
from nuttrio.cli import main as cli
from nuttrio.cli.cert import write_cert
from nuttrio.client import (
    CertificatePinError,
    NutError,
    cert_fingerprint,
    client_ssl_context,
    connect_nut,
    format_fingerprint,
    open_nut_client,
    parse_pin,
    wrap_nut_stream,
)
from nuttrio.mgmt.runner import client_tls
from nuttrio.nutconf import ConfigError, load_upsd_conf, load_upsmon_conf
from nuttrio.protocol import events as ev
from nuttrio.server.tls import load_server_context, plaintext_allowed

OUTSIDE = "127.0.0.2"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certfile(ca: trustme.CA, tmp_path: Path) -> Path:
    """upsd's CERTFILE layout: certificate chain, then the key, one PEM file."""
    server = ca.issue_cert("localhost", "127.0.0.1")
    path = tmp_path / "upsd.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(path))
    path.chmod(0o600)
    return path


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def write_confdir(d: Path, upsd_conf: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / "upsd.conf").write_text(upsd_conf)
    (d / "upsd.users").write_text("[admin]\n password = pw\n actions = fsd\n upsmon primary\n")
    (d / "ups.conf").write_text("[ups]\n driver = dummy-ups\n port = a.dev\n")
    (d / "a.dev").write_text("ups.status: OL\nbattery.charge: 100\n")
    for name in ("upsd.conf", "upsd.users"):
        (d / name).chmod(0o600)
    return d


def daemon_options(confdir: Path) -> nuttrio.DaemonOptions:
    return nuttrio.DaemonOptions(confdir=confdir, listen=(("127.0.0.1", 0),))


async def raw_exchange(port: int, data: bytes, *, source: str = OUTSIDE, end: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=source)
    async with stream:
        await stream.send_all(data)
        got = b""
        with trio.fail_after(5):
            while not got.endswith(end):
                chunk = await stream.receive_some()
                assert chunk, f"closed after {got!r}"
                got += chunk
        return got


# -- upsd.conf: loading the certificate ------------------------------------------------------


def test_no_certificate_no_tls(tmp_path: Path) -> None:
    conf_path = write_confdir(tmp_path, "") / "upsd.conf"
    assert load_server_context(load_upsd_conf(conf_path), conf_path) is None


def test_certfile_loads_tls12_minimum(tmp_path: Path, certfile: Path) -> None:
    conf_path = write_confdir(tmp_path / "c", f"CERTFILE {certfile}\n") / "upsd.conf"
    ctx = load_server_context(load_upsd_conf(conf_path), conf_path)
    assert ctx is not None
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_NONE


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        (b"not a certificate\n", "PEM"),
    ],
)
def test_unloadable_certificate_stops_with_the_line(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    bad = tmp_path / "bad.pem"
    if content is not None:
        bad.write_bytes(content)
    conf_path = write_confdir(tmp_path / "c", f"MAXAGE 15\nCERTFILE {bad}\n") / "upsd.conf"
    with pytest.raises(ConfigError) as exc:
        load_server_context(load_upsd_conf(conf_path), conf_path)
    text = str(exc.value)
    assert text.startswith(f"{conf_path}:2: CERTFILE {bad}: cannot load")
    assert "does not start without TLS" in text


def test_certificate_without_its_key_stops(tmp_path: Path, ca: trustme.CA) -> None:
    only_cert = tmp_path / "cert.pem"
    ca.issue_cert("localhost").cert_chain_pems[0].write_to_path(str(only_cert))
    conf_path = write_confdir(tmp_path / "c", f"CERTFILE {only_cert}\n") / "upsd.conf"
    with pytest.raises(ConfigError, match="cannot load the certificate and key"):
        load_server_context(load_upsd_conf(conf_path), conf_path)


def test_nss_database_refused_with_the_export_commands(tmp_path: Path) -> None:
    db = tmp_path / "nssdb"
    db.mkdir()
    (db / "cert9.db").write_bytes(b"")
    conf_path = (
        write_confdir(tmp_path / "c", f'CERTPATH {db}\nCERTIDENT "my nut" dbpass\n') / "upsd.conf"
    )
    with pytest.raises(ConfigError) as exc:
        load_server_context(load_upsd_conf(conf_path), conf_path)
    text = str(exc.value)
    assert text.startswith(f"{conf_path}:1: CERTPATH {db} and CERTIDENT configure")
    pem = conf_path.parent / "upsd.pem"
    assert f"certutil -L -d sql:{db}" in text
    assert f"pk12util -o {pem.with_suffix('.p12')} -n 'my nut' -d sql:{db} -W ''" in text
    assert f"openssl pkcs12 -in {pem.with_suffix('.p12')} -out {pem} -nodes" in text
    assert f"CERTFILE {pem}" in text
    assert "dbpass" not in text  # the database password is never printed


def test_certrequest_needs_a_ca(tmp_path: Path, certfile: Path) -> None:
    conf_path = (
        write_confdir(tmp_path / "c", f"CERTFILE {certfile}\nCERTREQUEST REQUIRE\n") / "upsd.conf"
    )
    with pytest.raises(ConfigError, match=r"upsd.conf:2: CERTREQUEST REQUIRE needs CERTPATH"):
        load_server_context(load_upsd_conf(conf_path), conf_path)


def test_plaintext_allowed() -> None:
    from ipaddress import ip_network

    nets = (ip_network("127.0.0.1/32"), ip_network("2001:db8::/32"))
    assert plaintext_allowed("127.0.0.1", nets)
    assert plaintext_allowed("::ffff:127.0.0.1", nets)
    assert plaintext_allowed("2001:db8::5", nets)
    assert not plaintext_allowed("127.0.0.2", nets)
    assert not plaintext_allowed("unknown", nets)
    assert plaintext_allowed("192.0.2.1", None)


def test_daemon_refuses_to_start_on_a_bad_certificate(tmp_path: Path, capsys) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {tmp_path / 'missing.pem'}\n")
    status = cli.main(["--nut-config", str(confdir), "--listen", "127.0.0.1:0"])
    assert status == 2
    assert "CERTFILE" in capsys.readouterr().err


# -- the server: enforcement over real sockets ------------------------------------------------


async def test_outside_client_gets_tls_not_enabled_for_everything_but_starttls(
    tmp_path: Path, certfile: Path, ca_file: Path
) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\nNUTTRIO_PLAINTEXT_FROM 127.0.0.1/32\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        requests = [b"VER", b"NETVER", b"HELP", b"LIST UPS", b"GET VAR ups ups.status", b"BOGUS"]
        got = await raw_exchange(
            port, b"".join(r + b"\n" for r in requests), end=b"ERR TLS-NOT-ENABLED\n" * 6
        )
        assert got == b"ERR TLS-NOT-ENABLED\n" * len(requests)
        # From the allowed address, plaintext works as with upsd.
        got = await raw_exchange(port, b"NETVER\n", source="127.0.0.1", end=b"\n")
        assert got == b"1.3\n"
        # STARTTLS, verified against the CA: then everything works.
        ctx = client_ssl_context(ca=ca_file)
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=OUTSIDE)
        client = wrap_nut_stream(stream, host="localhost")
        try:
            await client.starttls(ctx)
            assert await client.get_var("ups", "ups.status") == "OL"
            assert isinstance(client.stream, trio.SSLStream)
            version = client.stream.version()
            assert version == "TLSv1.3"
        finally:
            await client.aclose()


async def test_attack_commands_before_starttls_are_not_executed(
    tmp_path: Path, certfile: Path
) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\nNUTTRIO_PLAINTEXT_FROM 127.0.0.1/32\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        attack = b"USERNAME admin\nPASSWORD pw\nLOGIN ups\nPRIMARY ups\nFSD ups\n"
        got = await raw_exchange(port, attack, end=b"ERR TLS-NOT-ENABLED\n" * 5)
        assert got == b"ERR TLS-NOT-ENABLED\n" * 5
        entry = daemon.store.get("ups")
        assert entry is not None
        assert "FSD" not in entry.snapshot().status
        assert len(entry.logins) == 0
        # The same from the allowed address is executed: the refusal was the enforcement.
        got = await raw_exchange(port, attack, source="127.0.0.1", end=b"OK FSD-SET\n")
        assert got.endswith(b"OK PRIMARY-GRANTED\nOK FSD-SET\n")
        assert "FSD" in entry.snapshot().status


async def test_default_once_a_certificate_is_configured_is_loopback_only(
    tmp_path: Path, certfile: Path
) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        # 127.0.0.2 is loopback too: allowed by the default 127.0.0.0/8.
        assert await raw_exchange(port, b"NETVER\n", end=b"\n") == b"1.3\n"
        settings = daemon.core.settings
        assert [str(n) for n in settings.plaintext_from] == ["127.0.0.0/8", "::1/128"]


async def test_attack_plaintext_injected_after_starttls_closes(
    tmp_path: Path, certfile: Path
) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"USERNAME admin\nPASSWORD pw\nSTARTTLS\nFSD ups\n")
            got = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some():
                    got += chunk
            assert got == b"OK\nOK\nOK STARTTLS\n"  # then closed: FSD never ran
        assert "FSD" not in daemon.store.get("ups").snapshot().status


async def test_second_starttls_error_names(tmp_path: Path, certfile: Path, ca_file: Path) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        async with open_nut_client(
            "localhost", port, ssl_context=client_ssl_context(ca=ca_file)
        ) as nut:
            with pytest.raises(NutError) as exc:
                await nut.starttls(client_ssl_context(ca=ca_file))
            assert exc.value.code == "ALREADY-SSL-MODE"
            # Once the session has used RFC 9271's words, the RFC's name.
            reply = await nut.request(ev.GetNumLogins(ups="ups", rfc=True))
            assert reply.words[0] == "NUMATTACH"
            with pytest.raises(NutError) as exc:
                await nut.starttls(client_ssl_context(ca=ca_file))
            assert exc.value.code == "TLS-ALREADY-ENABLED"


# -- the client: verification and pins ----------------------------------------------------


async def test_verification_fails_without_the_ca(tmp_path: Path, certfile: Path) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect_nut("localhost", port, ssl_context=client_ssl_context())
        # CERTVERIFY 0: encrypted, not authenticated.
        async with open_nut_client(
            "localhost", port, ssl_context=client_ssl_context(verify=False)
        ) as nut:
            assert await nut.get_var("ups", "battery.charge") == "100"


async def test_pin_with_a_self_signed_certificate(tmp_path: Path) -> None:
    files = write_cert("localhost", tmp_path / "certs", days=30)
    confdir = write_confdir(tmp_path / "conf", f"CERTFILE {files.certfile}\n")
    pin = parse_pin(files.fingerprint)
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        ctx = client_ssl_context(pin=pin)
        async with open_nut_client("localhost", port, ssl_context=ctx, pin=pin) as nut:
            assert await nut.get_var("ups", "ups.status") == "OL"
        # Verification by the certificate itself as CA works as well.
        ctx = client_ssl_context(ca=files.certonly)
        async with open_nut_client("localhost", port, ssl_context=ctx) as nut:
            assert await nut.get_var("ups", "ups.status") == "OL"
        wrong = bytes(32)
        with pytest.raises(CertificatePinError, match="is not the pinned"):
            await connect_nut(
                "localhost", port, ssl_context=client_ssl_context(pin=wrong), pin=wrong
            )


def test_parse_pin_forms() -> None:
    digest = bytes(range(32))
    text = format_fingerprint(digest)
    assert parse_pin(text) == digest
    assert parse_pin(text.replace(":", "").lower()) == digest
    assert parse_pin(f"sha256 Fingerprint={text}") == digest
    with pytest.raises(ValueError, match="64 hex digits"):
        parse_pin("AB:CD")
    assert len(cert_fingerprint(b"x")) == 32


# -- the manager: upsmon.conf's TLS settings -------------------------------------------------


def write_upsmon(d: Path, extra: str) -> Path:
    path = d / "upsmon.conf"
    path.write_text(
        "MONITOR ups@localhost:3493 1 admin pw primary\nSHUTDOWNCMD /bin/true\n"
        "POWERDOWNFLAG /tmp/none\n" + extra
    )
    path.chmod(0o600)
    return path


def test_upsmon_tls_settings(tmp_path: Path, ca_file: Path) -> None:
    digest = format_fingerprint(bytes(range(32)))
    conf = load_upsmon_conf(
        write_upsmon(
            tmp_path, f"CERTPATH {ca_file}\nCERTVERIFY 1\nNUTTRIO_CERTPIN localhost {digest}\n"
        )
    )
    mon = conf.monitors[0]
    tls = client_tls(conf, mon)
    assert tls.pin == bytes(range(32))
    assert tls.required
    assert "NUTTRIO_CERTPIN" in tls.why_required
    assert tls.context.verify_mode is ssl.CERT_REQUIRED
    assert tls.server_hostname == "localhost"
    # CERTHOST overrides per host: its certname is the name checked.
    conf = load_upsmon_conf(
        write_upsmon(tmp_path, f"CERTPATH {ca_file}\nCERTHOST localhost ups.example 1 1\n")
    )
    tls = client_tls(conf, conf.monitors[0])
    assert (tls.server_hostname, tls.required) == ("ups.example", True)
    assert "CERTHOST localhost" in tls.why_required
    conf = load_upsmon_conf(write_upsmon(tmp_path, ""))
    tls = client_tls(conf, conf.monitors[0])
    assert not tls.required
    assert tls.context.verify_mode is ssl.CERT_NONE


def test_upsmon_bad_pin_and_nss_certpath(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"upsmon.conf:4: NUTTRIO_CERTPIN localhost: a pin"):
        load_upsmon_conf(write_upsmon(tmp_path, "NUTTRIO_CERTPIN localhost 1234\n"))
    db = tmp_path / "nssdb"
    db.mkdir()
    (db / "cert9.db").write_bytes(b"")
    conf = load_upsmon_conf(write_upsmon(tmp_path, f"CERTPATH {db}\nCERTVERIFY 1\n"))
    with pytest.raises(ConfigError, match=r"is an NSS database .*'certutil -L -d sql:"):
        client_tls(conf, conf.monitors[0])


async def test_manager_forcessl_against_a_server_without_tls(tmp_path: Path) -> None:
    from nuttrio.mgmt.runner import read_once

    confdir = write_confdir(tmp_path, "")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        path = write_upsmon(tmp_path, "FORCESSL 1\n")
        path.write_text(path.read_text().replace(":3493", f":{port}"))
        reading = await read_once(load_upsmon_conf(path))
        (reason,) = reading.unreachable.values()
        assert "refused STARTTLS (ERR FEATURE-NOT-CONFIGURED) and FORCESSL is set" in reason


async def test_manager_polls_over_tls_with_a_pin(tmp_path: Path) -> None:
    from nuttrio.mgmt.runner import read_once

    files = write_cert("localhost", tmp_path / "certs", days=30)
    confdir = write_confdir(
        tmp_path / "conf", f"CERTFILE {files.certfile}\nNUTTRIO_PLAINTEXT_FROM none\n"
    )
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        path = write_upsmon(tmp_path, f"NUTTRIO_CERTPIN localhost {files.fingerprint}\n")
        path.write_text(path.read_text().replace(":3493", f":{port}"))
        reading = await read_once(load_upsmon_conf(path))
        assert reading.unreachable == {}
        (verdict,) = reading.machine.verdicts(trio.current_time())
        assert not verdict.critical
        # A wrong pin: the server is not trusted, the reading fails.
        path.write_text(path.read_text().replace(files.fingerprint, "00" * 32))
        reading = await read_once(load_upsmon_conf(path))
        (reason,) = reading.unreachable.values()
        assert "is not the pinned" in reason


# -- nuttrio cert ------------------------------------------------------------------------------


def test_cert_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert cli.main(["cert", "--host", "ups.example", "--days", "10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    certfile, certonly = out / "ups.example.pem", out / "ups.example-cert.pem"
    assert stat.S_IMODE(certfile.stat().st_mode) == 0o600
    pem = certonly.read_text()
    der = ssl.PEM_cert_to_DER_cert(pem)
    fingerprint = format_fingerprint(cert_fingerprint(der))
    assert f"SHA-256 fingerprint: {fingerprint}" in text
    assert f"CERTFILE {certfile}" in text
    assert f"NUTTRIO_CERTPIN ups.example {fingerprint}" in text
    # The file is upsd's CERTFILE layout: certificate, then key; the server loads it.
    body = certfile.read_text()
    assert body.index("BEGIN CERTIFICATE") < body.index("BEGIN PRIVATE KEY")
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(certfile))
    # --days 10: valid until ten days from now (from a little before now, for clock skew),
    # for the name asked.
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem.encode())
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now
    ten_days = now + datetime.timedelta(days=10)
    assert abs(cert.not_valid_after_utc - ten_days) < datetime.timedelta(minutes=1)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["ups.example"]
    # Never overwritten.
    assert cli.main(["cert", "--host", "ups.example", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


# -- CERTREQUEST: client certificates ----------------------------------------------------------


@pytest.mark.parametrize(("request_word", "ca_dir"), [("REQUIRE", False), ("2", True)])
async def test_certrequest_require_client_certificate(
    tmp_path: Path, ca: trustme.CA, certfile: Path, ca_file: Path, request_word: str, ca_dir: bool
) -> None:
    client_pem = tmp_path / "client.pem"
    ca.issue_cert("upsmon.example").private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    certpath = ca_file
    if ca_dir:  # a directory of PEM files, without OpenSSL's hashed names
        certpath = tmp_path / "cas"
        certpath.mkdir()
        shutil.copy(ca_file, certpath / "our-ca.pem")
    confdir = write_confdir(
        tmp_path / "conf",
        f"CERTFILE {certfile}\nCERTPATH {certpath}\nCERTREQUEST {request_word}\n",
    )
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        ctx = client_ssl_context(ca=ca_file, certfile=client_pem)
        async with open_nut_client("localhost", port, ssl_context=ctx) as nut:
            assert await nut.get_var("ups", "ups.status") == "OL"
        # Without a certificate: with TLS 1.3 the server refuses only after the client's
        # handshake is done; the confirming request after STARTTLS makes it fail here.
        with pytest.raises((ssl.SSLError, trio.BrokenResourceError)):
            await connect_nut("localhost", port, ssl_context=client_ssl_context(ca=ca_file))
        # A certificate from another CA: refused too.
        other = tmp_path / "other.pem"
        trustme.CA().issue_cert("x").private_key_and_cert_chain_pem.write_to_path(str(other))
        with pytest.raises((ssl.SSLError, trio.BrokenResourceError)):
            await connect_nut(
                "localhost", port, ssl_context=client_ssl_context(ca=ca_file, certfile=other)
            )


async def test_manager_presents_upsmon_conf_s_certfile_to_a_certrequest_2_server(
    tmp_path: Path, ca: trustme.CA, certfile: Path, ca_file: Path
) -> None:
    from nuttrio.mgmt.runner import read_once

    client_pem = tmp_path / "client.pem"
    ca.issue_cert("upsmon.example").private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    confdir = write_confdir(
        tmp_path / "conf", f"CERTFILE {certfile}\nCERTPATH {ca_file}\nCERTREQUEST 2\n"
    )
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        tls = f"FORCESSL 1\nCERTVERIFY 1\nCERTPATH {ca_file}\n"
        path = write_upsmon(tmp_path, tls + f"CERTFILE {client_pem}\n")
        path.write_text(path.read_text().replace(":3493", f":{port}"))
        reading = await read_once(load_upsmon_conf(path))
        assert reading.unreachable == {}
        path = write_upsmon(tmp_path, tls)  # no client certificate: refused by the server
        path.write_text(path.read_text().replace(":3493", f":{port}"))
        reading = await read_once(load_upsmon_conf(path))
        assert list(reading.unreachable) != []


@pytest.mark.parametrize("holds_our_ca", [True, False])
async def test_manager_certpath_may_be_a_directory_of_cas(
    tmp_path: Path, certfile: Path, ca_file: Path, holds_our_ca: bool
) -> None:
    """upsmon.conf CERTPATH naming a directory (OpenSSL's CApath, PEM files by any name)."""
    from nuttrio.mgmt.runner import read_once

    cas = tmp_path / "cas"
    cas.mkdir()
    trustme.CA().cert_pem.write_to_path(str(cas / "another.crt"))
    if holds_our_ca:
        shutil.copy(ca_file, cas / "ours.pem")
    confdir = write_confdir(tmp_path / "conf", f"CERTFILE {certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        path = write_upsmon(tmp_path, f"FORCESSL 1\nCERTVERIFY 1\nCERTPATH {cas}\n")
        path.write_text(path.read_text().replace(":3493", f":{port}"))
        reading = await read_once(load_upsmon_conf(path))
    assert (reading.unreachable == {}) is holds_our_ca


async def test_certrequest_1_asks_for_a_certificate_and_checks_one_given(
    tmp_path: Path, ca: trustme.CA, certfile: Path, ca_file: Path
) -> None:
    client_pem, other = tmp_path / "client.pem", tmp_path / "other.pem"
    ca.issue_cert("upsmon.example").private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    trustme.CA().issue_cert("x").private_key_and_cert_chain_pem.write_to_path(str(other))
    confdir = write_confdir(
        tmp_path / "conf", f"CERTFILE {certfile}\nCERTPATH {ca_file}\nCERTREQUEST 1\n"
    )
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        for given in (None, client_pem):  # none, or a good one: served
            ctx = client_ssl_context(ca=ca_file, certfile=given)
            async with open_nut_client("localhost", port, ssl_context=ctx) as nut:
                assert await nut.get_var("ups", "ups.status") == "OL"
        with pytest.raises((ssl.SSLError, trio.BrokenResourceError)):  # a bad one: refused
            await connect_nut(
                "localhost", port, ssl_context=client_ssl_context(ca=ca_file, certfile=other)
            )


async def test_certrequest_without_confirmation_fails_later(
    tmp_path: Path, certfile: Path, ca_file: Path
) -> None:
    """Why the follow-up request exists (NUT #3387): without it, STARTTLS 'succeeds'."""
    confdir = write_confdir(
        tmp_path / "conf", f"CERTFILE {certfile}\nCERTPATH {ca_file}\nCERTREQUEST 2\n"
    )
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = wrap_nut_stream(stream, host="localhost")
        try:
            await client.starttls(client_ssl_context(ca=ca_file), confirm=False)
            with pytest.raises((ssl.SSLError, trio.BrokenResourceError)):
                await client.get_var("ups", "ups.status")
        finally:
            await client.aclose()


async def test_tls_from_flags_for_the_client_tools(tmp_path: Path) -> None:
    from nuttrio.client import tls_from_flags

    assert tls_from_flags() == (None, None)
    ctx, pin = tls_from_flags(tls=True)
    assert ctx is not None
    assert (ctx.verify_mode, pin) == (ssl.CERT_NONE, None)
    ctx, _ = tls_from_flags(verify=True)
    assert ctx is not None
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    files = write_cert("localhost", tmp_path / "certs", days=30)
    confdir = write_confdir(tmp_path / "conf", f"CERTFILE {files.certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        for flags in ({"ca": files.certonly}, {"pin": files.fingerprint}):
            ctx, pin = tls_from_flags(**flags)
            async with open_nut_client("localhost", port, ssl_context=ctx, pin=pin) as nut:
                assert await nut.get_var("ups", "ups.status") == "OL"
        with pytest.raises(ValueError, match="64 hex digits"):
            tls_from_flags(pin="nope")


def test_certificate_expiry_warning(tmp_path: Path, caplog) -> None:
    import datetime

    from nuttrio.server.tls import expiry_warning

    files = write_cert("localhost", tmp_path / "certs", days=10)
    now = datetime.datetime.now(datetime.UTC)
    soon = expiry_warning(files.certfile, now)
    assert soon is not None
    assert soon.endswith("in 9 days")
    late = expiry_warning(files.certfile, now + datetime.timedelta(days=11))
    assert late is not None
    assert "the certificate expired on" in late
    assert expiry_warning(write_cert("far", tmp_path / "far", days=400).certfile, now) is None


async def test_daemon_warns_about_a_certificate_about_to_expire(tmp_path: Path, caplog) -> None:
    files = write_cert("localhost", tmp_path / "certs", days=5)
    confdir = write_confdir(tmp_path / "conf", f"CERTFILE {files.certfile}\n")
    async with nuttrio.open_daemon(daemon_options(confdir)):
        pass
    assert any("the certificate expires on" in r.getMessage() for r in caplog.records)


def test_encrypted_key_takes_certident_password(tmp_path: Path, ca: trustme.CA) -> None:
    from cryptography.hazmat.primitives import serialization

    issued = ca.issue_cert("localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    pem = tmp_path / "locked.pem"
    pem.write_bytes(b"".join(c.bytes() for c in issued.cert_chain_pems) + locked)
    good = write_confdir(tmp_path / "a", f'CERTFILE {pem}\nCERTIDENT "upsd" s3cret\n')
    conf = good / "upsd.conf"
    assert load_server_context(load_upsd_conf(conf), conf) is not None
    bad = write_confdir(tmp_path / "b", f"CERTFILE {pem}\n") / "upsd.conf"
    with pytest.raises(ConfigError, match="cannot load the certificate and key"):
        load_server_context(load_upsd_conf(bad), bad)  # no terminal prompt: an error


async def test_reload_applies_plaintext_from_but_keeps_the_enforcement(
    tmp_path: Path, certfile: Path, caplog
) -> None:
    confdir = write_confdir(tmp_path, f"CERTFILE {certfile}\nNUTTRIO_PLAINTEXT_FROM 127.0.0.2\n")
    async with nuttrio.open_daemon(daemon_options(confdir)) as daemon:
        port = daemon.addresses[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=OUTSIDE)
        async with stream:

            async def ask() -> bytes:
                await stream.send_all(b"NETVER\n")
                with trio.fail_after(5):
                    return await stream.receive_some()

            assert await ask() == b"1.3\n"
            (confdir / "upsd.conf").write_text(
                f"CERTFILE {certfile}\nNUTTRIO_PLAINTEXT_FROM 127.0.0.1\n"
            )
            await daemon.reload()
            assert await ask() == b"ERR TLS-NOT-ENABLED\n"  # the open connection too
            # The certificate removed: that needs a restart; the enforcement stays.
            (confdir / "upsd.conf").write_text("NUTTRIO_PLAINTEXT_FROM 127.0.0.1\n")
            await daemon.reload()
            assert await ask() == b"ERR TLS-NOT-ENABLED\n"
    assert any("take effect at the restart" in r.getMessage() for r in caplog.records)
