"""``nuttrio cert``: a private key and a self-signed certificate for the server's STARTTLS.

The files are PEM in upsd's ``CERTFILE`` layout (certificate, then the private key, in one
file, mode 0600) plus the certificate alone for the clients (their ``CERTPATH``). What to
paste into upsd.conf and upsmon.conf is printed with the certificate's SHA-256 fingerprint
(for ``NUTTRIO_CERTPIN`` and the client tools' ``--pin``). Made with the ``cryptography``
package: an ECDSA P-256 key, SHA-256 signature.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from pathlib import Path

import attrs

from ..client import cert_fingerprint, format_fingerprint
from ._args import positive_int

__all__ = [
    "CertFiles",
    "add_cert_command",
    "make_self_signed",
    "report",
    "run_cert_command",
    "write_cert",
]

#: Default validity, in days.
DEFAULT_DAYS = 825


@attrs.frozen
class CertFiles:
    """What :func:`write_cert` wrote.

    Attributes:
        certfile: Certificate and key (upsd.conf's CERTFILE), mode 0600.
        certonly: The certificate alone, for the clients (upsmon.conf's CERTPATH).
        fingerprint: The certificate's SHA-256 fingerprint, ``AB:CD:...``.
        not_after: When the certificate expires (UTC).
    """

    certfile: Path
    certonly: Path
    fingerprint: str
    not_after: datetime.datetime


def make_self_signed(host: str, days: int) -> tuple[bytes, bytes, datetime.datetime]:
    """A self-signed certificate for ``host`` (a name or an IP address) and its key.

    Returns:
        The certificate (PEM), the unencrypted PKCS#8 key (PEM) and the expiry time.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        # An end-entity certificate: NSS (Debian's upsmon) refuses a CA certificate as a
        # server's; OpenSSL and NSS ("P,," trust) take a self-signed one as its own anchor.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem, not_after


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (never readable by others meanwhile)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # the umask may have taken bits away from the public file


def write_cert(host: str, out: Path, *, days: int = DEFAULT_DAYS) -> CertFiles:
    """Make the key and certificate for ``host`` and write them into directory ``out``.

    Raises:
        FileExistsError: If either file exists already (nothing is overwritten).
        OSError: If the files cannot be written.
    """
    import ssl

    cert_pem, key_pem, not_after = make_self_signed(host, days)
    out.mkdir(parents=True, exist_ok=True)
    certfile = (out / f"{host}.pem").absolute()
    certonly = (out / f"{host}-cert.pem").absolute()
    for path in (certfile, certonly):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it or choose another --out")
    _write(certfile, cert_pem + key_pem, 0o600)
    _write(certonly, cert_pem, 0o644)
    digest = cert_fingerprint(ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii")))
    return CertFiles(certfile, certonly, format_fingerprint(digest), not_after)


def report(files: CertFiles, host: str) -> str:
    """What ``nuttrio cert`` prints: the files, the fingerprint and the lines to paste."""
    return "\n".join(
        [
            f"wrote {files.certfile} (certificate and private key, mode 0600)",
            f"  and {files.certonly} (the certificate alone, for the clients)",
            f"valid until {files.not_after:%Y-%m-%d %H:%M} UTC",
            f"SHA-256 fingerprint: {files.fingerprint}",
            "",
            "upsd.conf on the server:",
            f"    CERTFILE {files.certfile}",
            "",
            f"upsmon.conf on each client (copy {files.certonly.name} there):",
            f"    CERTPATH {files.certonly}",
            "    CERTVERIFY 1",
            "    FORCESSL 1",
            f"    NUTTRIO_CERTPIN {host} {files.fingerprint}",
            "",
            "Debian's upsmon (NSS build) takes an NSS database as CERTPATH instead:",
            "    certutil -N -d sql:/etc/nut/nssdb --empty-password",
            f"    certutil -A -d sql:/etc/nut/nssdb -n nuttrio -t P,, -i {files.certonly}",
            "    CERTPATH /etc/nut/nssdb",
            "",
            f"client tools: --tls --ca {files.certonly} (or --pin {files.fingerprint})",
        ]
    )


def add_cert_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nuttrio cert`` with the command line's subcommands."""
    sub = commands.add_parser(
        "cert",
        help="make a private key and a self-signed certificate for STARTTLS",
        description="Write NAME.pem (certificate and private key, mode 0600: upsd.conf's "
        "CERTFILE) and NAME-cert.pem (the certificate alone, for the clients' CERTPATH) "
        "into DIR, then print the SHA-256 fingerprint and the lines to paste into "
        "upsd.conf and upsmon.conf. Existing files are never overwritten.",
    )
    sub.add_argument(
        "--host",
        required=True,
        metavar="NAME",
        help="the name (or IP address) clients connect to; the certificate is made for it",
    )
    sub.add_argument(
        "--days",
        metavar="N",
        type=positive_int,
        default=DEFAULT_DAYS,
        help=f"validity in days (default {DEFAULT_DAYS})",
    )
    sub.add_argument(
        "--out", type=Path, default=Path(), metavar="DIR", help="where to write (default: .)"
    )


def run_cert_command(args: argparse.Namespace) -> int:
    """``nuttrio cert``: print the report and return 0, or 1 if the files cannot be written."""
    try:
        files = write_cert(args.host, args.out, days=args.days)
    except ImportError:
        print(
            "nuttrio cert: needs the 'cryptography' package (pip install cryptography; "
            "the one-file nuttrio.pyz leaves it out)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"nuttrio cert: {exc}", file=sys.stderr)
        return 1
    print(report(files, args.host))
    return 0
