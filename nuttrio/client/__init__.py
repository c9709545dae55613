"""The Trio client for NUT servers: typed calls for every request of the protocol.

Example::

    async with open_nut_client("127.0.0.1") as nut:
        status = await nut.get_var("ups", "ups.status")

Over TLS, with a self-signed server certificate pinned by its fingerprint::

    pin = parse_pin("AB:CD:...")
    ctx = client_ssl_context(pin=pin)
    async with open_nut_client("ups.example", ssl_context=ctx, pin=pin) as nut:
        ...
"""

from __future__ import annotations

from ._client import DEFAULT_PORT as DEFAULT_PORT
from ._client import NutClient as NutClient
from ._client import NutError as NutError
from ._client import TrackedResult as TrackedResult
from ._client import connect_nut as connect_nut
from ._client import open_nut_client as open_nut_client
from ._client import wrap_nut_stream as wrap_nut_stream
from ._tls import CertificatePinError as CertificatePinError
from ._tls import cert_fingerprint as cert_fingerprint
from ._tls import check_pin as check_pin
from ._tls import client_ssl_context as client_ssl_context
from ._tls import format_fingerprint as format_fingerprint
from ._tls import parse_pin as parse_pin
from ._tls import tls_from_flags as tls_from_flags
