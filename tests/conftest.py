"""Fixtures shared by several test files, registered once here.

* ``real_nut``: Debian's upsd and dummy-ups in a temporary directory
  (:func:`tests.realnut.real_nut_fixture`);
* ``ddl_real_upsc``: the real upsc's view of every DDL dump, once per session
  (:func:`tests.realnut.ddl_real_upsc_fixture`);
* ``fast_clock``: a mock clock at 4x real time, for the serial drivers on ptys;
* ``tls_contexts``: a server and a client TLS context that trusts it (trustme).
"""

from __future__ import annotations

import ssl

import pytest
import trio.testing

from .realnut import ddl_real_upsc_fixture, real_nut_fixture

__all__ = ["ddl_real_upsc_fixture", "fast_clock", "real_nut_fixture", "tls_contexts"]


@pytest.fixture
def fast_clock() -> trio.testing.MockClock:
    """A mock clock that runs 4 times as fast as real time (serial drivers on ptys)."""
    return trio.testing.MockClock(rate=4)


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``localhost`` and a client that trusts it."""
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx
