"""--advertise: _nut._tcp over mDNS (zeroconf), seen by a second zeroconf instance."""

from __future__ import annotations

import socket

import pytest
import trio

import nuttrio
from nuttrio.advertise import SERVICE_TYPE, announced_addresses

from .test_web import free_port

INTERFACES = ["127.0.0.1", "192.0.2.2", "::1", "fe80::1", "fd00::2"]


def test_announced_addresses_skip_loopback_and_link_local():
    assert announced_addresses("0.0.0.0", INTERFACES) == ["192.0.2.2"]
    assert announced_addresses("::", INTERFACES) == ["192.0.2.2", "fd00::2"]
    assert announced_addresses("192.0.2.2", INTERFACES) == ["192.0.2.2"]
    assert announced_addresses("127.0.0.1", INTERFACES) == []


def _multicast_address() -> str | None:
    ifaddr = pytest.importorskip("ifaddr")
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith(("127.", "169.254.")):
                return ip.ip
    return None


async def test_advertise_announces_the_nut_port(tmp_path):
    zeroconf = pytest.importorskip("zeroconf", reason="needs the zeroconf package (nuttrio[mdns])")
    address = _multicast_address()
    if address is None:
        print("test_advertise skipped: no non-loopback IPv4 interface for multicast")
        pytest.skip("no non-loopback IPv4 interface for multicast")
    port = free_port()
    options = nuttrio.DaemonOptions(listen=((address, port),), advertise=True)
    name = f"{socket.gethostname().split('.')[0]}.{SERVICE_TYPE}"

    def look() -> object:
        zc = zeroconf.Zeroconf(interfaces=[address])
        try:
            return zc.get_service_info(SERVICE_TYPE, name, timeout=3000)
        finally:
            zc.close()

    async with nuttrio.open_daemon(options):
        info = await trio.to_thread.run_sync(look)
    assert info is not None, f"{name} not seen over mDNS"
    assert info.port == port
    assert info.parsed_addresses() == [address]
