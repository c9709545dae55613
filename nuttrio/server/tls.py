"""The server's TLS set-up: the certificate from upsd.conf, and who may talk without TLS.

upsd.conf is read as upsd's OpenSSL build reads it: ``CERTFILE`` is one PEM file holding the
certificate, its chain and the private key. ``CERTPATH`` next to it is the CA file or
directory that client certificates are checked against when ``CERTREQUEST`` asks for one
(upsd 2.8.6). Debian's upsd is an NSS build: ``CERTPATH`` there is an NSS database and
``CERTIDENT`` the certificate's nickname. nuttrio cannot read NSS databases, so such a file
stops it with the commands that export the certificate and key to PEM
(:func:`nss_export_commands`). A certificate that cannot be loaded stops nuttrio too (as
upsd 2.8.6 does): never a silent start in plaintext.

Nothing here does I/O beyond reading the certificate files.
"""

from __future__ import annotations

import datetime
import shlex
import ssl
from collections.abc import Sequence
from pathlib import Path

from ..guard import in_networks
from ..nutconf.common import ConfigError, is_nss_database, load_ca_locations
from ..nutconf.upsd_conf import UPSD_CONF, CertRequest, IPNetwork, UpsdConfig

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "certificate_expiry",
    "expiry_warning",
    "load_server_context",
    "nss_export_commands",
    "plaintext_allowed",
    "server_context",
]

#: Days before its expiry from which the server's certificate is warned about at start.
EXPIRY_WARNING_DAYS = 30

_VERIFY_MODES = {
    CertRequest.NO: ssl.CERT_NONE,
    CertRequest.REQUEST: ssl.CERT_OPTIONAL,
    CertRequest.REQUIRE: ssl.CERT_REQUIRED,
}


def server_context(
    certfile: Path,
    *,
    ca: Path | None = None,
    request: CertRequest = CertRequest.NO,
    password: str | None = None,
) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 at least (1.3 preferred), ``certfile``'s key and chain.

    Args:
        certfile: PEM with the certificate, its chain and the private key.
        ca: CA file or directory for client certificates (needed unless ``request`` is NO).
        request: Whether to ask for a client certificate (CERTREQUEST).
        password: The private key's password, if it is encrypted.

    Raises:
        ssl.SSLError, OSError: If a file cannot be read or does not hold what it should.
        ValueError: If a client certificate is asked for and no CA is given.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # Never OpenSSL's terminal prompt for an encrypted key: no password means an empty one.
    ctx.load_cert_chain(str(certfile), password=password if password is not None else b"")
    if request is not CertRequest.NO:
        if ca is None:
            raise ValueError("a client certificate is asked for, but no CA is given")
        load_ca_locations(ctx, ca)
    ctx.verify_mode = _VERIFY_MODES[request]
    return ctx


def nss_export_commands(certpath: Path, nickname: str, pem: Path) -> list[str]:
    """The commands that export an NSS database's certificate and key to one PEM file.

    The result is the file upsd.conf's ``CERTFILE`` names (certificate, chain, key).
    pk12util asks for the database password (CERTIDENT's second word) if it has one; the
    intermediate PKCS#12 file has an empty password and is removed at the end.
    """
    p12 = shlex.quote(str(pem.with_suffix(".p12")))
    out = shlex.quote(str(pem))
    db = shlex.quote(f"sql:{certpath}")
    return [
        f"certutil -L -d {db}",
        f"pk12util -o {p12} -n {shlex.quote(nickname)} -d {db} -W ''",
        f"openssl pkcs12 -in {p12} -out {out} -nodes -passin pass:",
        f"chmod 600 {out} && rm {p12}",
    ]


def _nss_refusal(conf: UpsdConfig, path: Path) -> ConfigError:
    certpath = conf.certpath or path.parent
    nickname = conf.certident[0] if conf.certident is not None else "<CERTIDENT name>"
    pem = path.parent / "upsd.pem"
    steps = "\n".join(f"    {line}" for line in nss_export_commands(certpath, nickname, pem))
    return ConfigError(
        f"CERTPATH {certpath} and CERTIDENT configure Debian's NSS build of upsd; nuttrio "
        "reads the certificate as upsd's OpenSSL build does, from one PEM file (CERTFILE). "
        "Export the certificate and its key (certutil lists the nicknames; pk12util asks for "
        f"the database password, if any):\n{steps}\n"
        f"then add 'CERTFILE {pem}' to {UPSD_CONF} (upsd 2.8.0 from Debian warns about that "
        "line and goes on with its NSS database)",
        path,
        conf.lines.get("CERTPATH") or conf.lines.get("CERTIDENT"),
    )


def load_server_context(conf: UpsdConfig, path: Path) -> ssl.SSLContext | None:
    """The server's TLS context from upsd.conf, or ``None`` when TLS is not configured.

    Args:
        conf: The upsd.conf settings.
        path: The upsd.conf file, for the messages.

    Raises:
        ConfigError: With upsd.conf's line: an NSS database without CERTFILE (the message
            gives the export commands), a certificate or CA that cannot be loaded, or
            CERTREQUEST without a CA.
    """
    if not conf.tls_configured:
        return None
    if conf.certfile is None:
        raise _nss_refusal(conf, path)
    certfile = conf.certfile if conf.certfile.is_absolute() else path.parent / conf.certfile
    ca = conf.certpath
    if ca is not None and not ca.is_absolute():
        ca = path.parent / ca
    if conf.certrequest is not CertRequest.NO and (ca is None or is_nss_database(ca)):
        raise ConfigError(
            f"CERTREQUEST {conf.certrequest.name} needs CERTPATH: the CA file or directory "
            "(PEM) that client certificates are checked against",
            path,
            conf.lines.get("CERTREQUEST"),
        )
    password = conf.certident[1] if conf.certident is not None else None
    try:
        return server_context(certfile, ca=ca, request=conf.certrequest, password=password)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            f"CERTFILE {certfile}: cannot load the certificate and key ({reason}); it must be "
            "one PEM file with the certificate, its chain and the private key; nuttrio does "
            "not start without TLS once TLS is configured",
            path,
            conf.lines.get("CERTFILE"),
        ) from exc


def certificate_expiry(certfile: Path) -> datetime.datetime | None:
    """When the first certificate in ``certfile`` (the server's own) expires, in UTC.

    ``None`` if the file holds no certificate that can be read, or the ``cryptography``
    package is not there (the zipapp leaves it out).
    """
    try:
        from cryptography import x509
    except ImportError:
        return None

    try:
        certs = x509.load_pem_x509_certificates(certfile.read_bytes())
    except (OSError, ValueError):
        return None
    return certs[0].not_valid_after_utc if certs else None


def expiry_warning(certfile: Path, now: datetime.datetime) -> str | None:
    """A warning if the certificate has expired or expires within EXPIRY_WARNING_DAYS.

    RFC 9271 6.2.1 asks for careful certificate management in long-lived installations;
    an expired certificate is still served (clients that verify will refuse it).
    """
    expires = certificate_expiry(certfile)
    if expires is None:
        return None
    left = expires - now
    if left.total_seconds() <= 0:
        return f"CERTFILE {certfile}: the certificate expired on {expires:%Y-%m-%d %H:%M} UTC"
    if left.days < EXPIRY_WARNING_DAYS:
        return (
            f"CERTFILE {certfile}: the certificate expires on {expires:%Y-%m-%d %H:%M} UTC, "
            f"in {left.days} days"
        )
    return None


def plaintext_allowed(address: str, networks: Sequence[IPNetwork] | None) -> bool:
    """Whether a peer at ``address`` may send commands without TLS.

    ``networks`` ``None`` allows everyone (no certificate configured, as upsd). An address
    that is not an IP address (a Unix socket, an unknown peer) is not in any network. An
    IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    return networks is None or in_networks(address, networks)
