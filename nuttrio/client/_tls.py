"""TLS for the client: SSL contexts from upsmon-style options, and certificate pinning.

:func:`client_ssl_context` turns the options every NUT client has (a CA file or directory,
whether to verify, a client certificate) into an :class:`ssl.SSLContext`; the client tools'
``--tls``/``--tls-verify``/``--ca``/``--pin`` and upsmon.conf's ``CERTPATH``, ``CERTVERIFY``,
``CERTHOST`` and ``CERTFILE`` both go through it. A pin is the SHA-256 fingerprint of the
server's certificate (DER), as ``openssl x509 -noout -fingerprint -sha256`` prints it or as
plain hex; with a pin and no CA the pin alone authenticates the server (RFC 9271 allows
self-signed certificates), otherwise both must pass.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from pathlib import Path

from ..nutconf.common import load_ca_locations, parse_pin

__all__ = [
    "CertificatePinError",
    "cert_fingerprint",
    "check_pin",
    "client_ssl_context",
    "format_fingerprint",
    "parse_pin",
    "tls_from_flags",
]


class CertificatePinError(ssl.SSLError):
    """The server's certificate is not the pinned one (an :class:`OSError`, as SSL errors)."""


def cert_fingerprint(der: bytes) -> bytes:
    """The SHA-256 fingerprint of a DER certificate."""
    return hashlib.sha256(der).digest()


def format_fingerprint(digest: bytes) -> str:
    """A fingerprint as openssl prints it: ``AB:CD:...`` (what :func:`parse_pin` reads)."""
    return ":".join(f"{b:02X}" for b in digest)


def check_pin(der: bytes | None, pin: bytes) -> None:
    """Check a peer's certificate (DER, as ``getpeercert(binary_form=True)``) against ``pin``.

    Raises:
        CertificatePinError: If there is no certificate or its fingerprint differs.
    """
    if der is None:
        raise CertificatePinError("the server sent no certificate to check the pin against")
    got = cert_fingerprint(der)
    if not hmac.compare_digest(got, pin):
        raise CertificatePinError(
            f"the server's certificate {format_fingerprint(got)} is not the pinned "
            f"{format_fingerprint(pin)}"
        )


def client_ssl_context(
    *,
    ca: Path | str | None = None,
    verify: bool = True,
    pin: bytes | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
    password: str | None = None,
) -> ssl.SSLContext:
    """A client context: TLS 1.2 at least, checks as asked.

    Args:
        ca: A PEM CA file, or a directory of PEM certificates (hashed names, as
            ``openssl rehash`` makes them, or any names: each ``*.pem``/``*.crt`` is
            loaded); ``None``: the system's CAs.
        verify: Check the server's certificate chain and name. ``False`` accepts any
            certificate (encryption without authentication, upsmon's ``CERTVERIFY 0``).
        pin: A SHA-256 fingerprint (see :func:`parse_pin`). With a pin and no ``ca``, the
            chain is not checked (the pin is checked by
            :meth:`~nuttrio.client.NutClient.starttls`, which must be given the same pin).
        certfile: This client's certificate (and key, if ``keyfile`` is not given), PEM.
        keyfile: The key for ``certfile``, if in another file.
        password: The key's password.

    Raises:
        OSError, ssl.SSLError: If a file cannot be read or loaded.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        load_ca_locations(ctx, Path(ca))
    if not verify or (pin is not None and ca is None):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        # Never OpenSSL's terminal prompt for an encrypted key: no password, an empty one.
        ctx.load_cert_chain(
            str(certfile),
            str(keyfile) if keyfile is not None else None,
            password=password if password is not None else b"",
        )
    return ctx


def tls_from_flags(
    *,
    tls: bool = False,
    verify: bool = False,
    ca: Path | str | None = None,
    pin: str | None = None,
) -> tuple[ssl.SSLContext | None, bytes | None]:
    """The ``ssl_context`` and ``pin`` for :func:`~nuttrio.client.connect_nut` from tool flags.

    For the client tools' ``--tls``, ``--tls-verify``, ``--ca FILE`` and ``--pin SHA256``:
    ``--tls`` alone encrypts without checking the certificate (as upsc's STARTTLS attempt);
    ``--tls-verify`` checks it against the system's CAs, ``--ca`` against that file or
    directory (it implies ``--tls-verify``); ``--pin`` checks the fingerprint (with no
    ``--ca``, the pin alone authenticates). Any of them turns TLS on.

    Returns:
        ``(None, None)`` when no flag asks for TLS.

    Raises:
        ValueError: If the pin is not a SHA-256 fingerprint.
        OSError, ssl.SSLError: If the CA cannot be loaded.
    """
    digest = parse_pin(pin) if pin is not None else None
    verify = verify or ca is not None
    if not (tls or verify or digest is not None):
        return None, None
    return client_ssl_context(ca=ca, verify=verify, pin=digest), digest
