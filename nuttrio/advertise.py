"""``--advertise``: announce the NUT port over mDNS as ``_nut._tcp`` (the zeroconf package).

Home Assistant's NUT integration discovers servers by this service type. One service is
announced per listening port, named after the host (``box._nut._tcp.local.``, with
``-PORT`` when there are several ports), on the addresses the port listens on: a wildcard
listener (``0.0.0.0``, ``::``) stands for every address of the host's interfaces;
loopback addresses are never announced (nobody else could reach them). zeroconf is an
optional dependency (``pip install nuttrio[mdns]``); it runs its own threads, so its
blocking calls run here in Trio worker threads.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

import trio

__all__ = ["SERVICE_TYPE", "advertise", "announced_addresses"]

log = logging.getLogger("nuttrio")

SERVICE_TYPE = "_nut._tcp.local."


def _interface_addresses() -> list[str]:
    import ifaddr  # zeroconf's own dependency

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            out.append(text.split("%")[0])
    return out


def announced_addresses(host: str, interfaces: Sequence[str]) -> list[str]:
    """The addresses a listener on ``host`` is announced on (loopback and link-local never).

    Args:
        host: The listener's address (``0.0.0.0`` or ``::`` for all).
        interfaces: The host's interface addresses (for a wildcard listener).
    """
    wildcard = ipaddress.ip_address(host).is_unspecified
    candidates = interfaces if wildcard else [host]
    if wildcard and ipaddress.ip_address(host).version == 4:
        candidates = [a for a in candidates if ipaddress.ip_address(a).version == 4]
    kept = []
    for text in candidates:
        address = ipaddress.ip_address(text)
        if not (address.is_loopback or address.is_link_local) and text not in kept:
            kept.append(text)
    return kept


def _service_infos(listeners: Sequence[tuple[str, int]], hostname: str) -> list[Any]:
    from zeroconf import ServiceInfo

    interfaces = _interface_addresses()
    by_port: dict[int, list[str]] = {}
    for host, port in listeners:
        by_port.setdefault(port, []).extend(announced_addresses(host, interfaces))
    infos = []
    for port, addresses in by_port.items():
        if not addresses:
            log.warning("--advertise: port %d listens on loopback only; not announced", port)
            continue
        label = hostname if len(by_port) == 1 else f"{hostname}-{port}"
        infos.append(
            ServiceInfo(
                SERVICE_TYPE,
                f"{label}.{SERVICE_TYPE}",
                parsed_addresses=list(dict.fromkeys(addresses)),
                port=port,
                server=f"{hostname}.local.",
                properties={"txtvers": "1", "server": "nuttrio"},
            )
        )
    return infos


async def advertise(
    listeners: Sequence[tuple[str, int]],
    *,
    hostname: str | None = None,
    task_status: trio.TaskStatus[list[Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Announce ``_nut._tcp`` for ``listeners`` until cancelled, then withdraw it.

    Reports the announced ``zeroconf.ServiceInfo`` objects once registered (an empty list
    if every listener is on loopback, and then nothing runs).

    Raises:
        ImportError: Before ``task_status.started``, if zeroconf is not installed.
        OSError: Before ``task_status.started``, if no multicast socket can be opened.
    """
    from zeroconf import Zeroconf

    name = (hostname or socket.gethostname()).split(".")[0]
    infos = _service_infos(listeners, name)
    if not infos:
        task_status.started([])
        return
    zc = await trio.to_thread.run_sync(Zeroconf)
    try:
        for info in infos:
            await trio.to_thread.run_sync(zc.register_service, info)
            log.info("--advertise: %s on port %d", info.name, info.port)
        task_status.started(infos)
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_withdraw, zc, infos)


def _withdraw(zc: Any, infos: list[Any]) -> None:  # noqa: ANN401 - zeroconf has no stubs here
    for info in infos:
        zc.unregister_service(info)
    zc.close()
