"""Per-peer protections: password-guessing throttle and a cap on connections per address.

Both are plain synchronous bookkeeping keyed by the peer's address text; the protocol
server and the web server apply what they decide (they wait before an ``ACCESS-DENIED``
reply, the protocol server closes a connection over the cap). Memory is bounded: at most
:data:`MAX_TRACKED_PEERS` addresses are remembered by the throttle, the oldest forgotten
first, and a peer's record expires after :data:`FAILURE_MEMORY` seconds without a failure.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

import attrs

from .nutconf.upsd_conf import LOOPBACK_NETWORKS, IPNetwork

__all__ = [
    "FAILURE_MEMORY",
    "MAX_TRACKED_PEERS",
    "AuthThrottle",
    "PeerCounter",
    "in_networks",
    "peer_ip",
]

#: Seconds after the last failure at which a peer's failures are forgotten.
FAILURE_MEMORY = 900.0
#: Most peer addresses the throttle remembers.
MAX_TRACKED_PEERS = 4096


def peer_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's IP address (an IPv4-mapped IPv6 one as IPv4), or ``None`` if it is none."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def in_networks(address: str, networks: Sequence[IPNetwork]) -> bool:
    """Whether the peer address is in one of ``networks`` (never, for a non-IP address)."""
    ip = peer_ip(address)
    return ip is not None and any(ip in net for net in networks)


@attrs.define
class _Failures:
    count: int
    last: float
    #: When this peer's next refusal may be sent (refusals are serialised per peer).
    free_at: float


class AuthThrottle:
    """A growing delay before each failed authentication's reply, per peer address.

    The first :attr:`free` failures cost nothing (a typo); each later one waits
    ``first * 2**(n - free - 1)`` seconds, at most :attr:`most`. Refusals to one address
    are queued one after the other, so opening more connections does not guess faster.
    Other addresses are not affected. Success does not reset the count (an attacker with
    one valid account must not clear it); :data:`FAILURE_MEMORY` seconds without a
    failure do.

    Addresses in ``exempt`` (loopback by default, as for the connection cap) are never
    delayed: local tools and clients keep upsd's behaviour (a refusal at once), and the
    network is what the throttle is for.

    Args:
        clock: The current time in seconds (Trio's clock in the server).
        free: Failures without a delay.
        first: The first delay, in seconds.
        most: The longest delay, in seconds.
        exempt: Networks whose failures are not delayed.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        free: int = 3,
        first: float = 1.0,
        most: float = 30.0,
        exempt: Sequence[IPNetwork] = LOOPBACK_NETWORKS,
    ) -> None:
        self._clock = clock
        self.free = free
        self.first = first
        self.most = most
        self.exempt = tuple(exempt)
        self._peers: OrderedDict[str, _Failures] = OrderedDict()

    def failures(self, address: str) -> int:
        """Failures remembered for ``address``."""
        record = self._peers.get(address)
        if record is None or self._clock() - record.last > FAILURE_MEMORY:
            return 0
        return record.count

    def failed(self, address: str) -> float:
        """Record a failed authentication; returns the seconds to wait before replying."""
        if in_networks(address, self.exempt):
            return 0.0
        now = self._clock()
        record = self._peers.pop(address, None)
        if record is None or now - record.last > FAILURE_MEMORY:
            record = _Failures(0, now, now)
        record.count += 1
        record.last = now
        self._peers[address] = record  # most recent last
        while len(self._peers) > MAX_TRACKED_PEERS:
            self._peers.popitem(last=False)
        excess = record.count - self.free
        if excess <= 0:
            return 0.0
        delay = min(self.first * 2 ** min(excess - 1, 30), self.most)
        record.free_at = max(record.free_at, now) + delay
        return record.free_at - now


class PeerCounter:
    """Connections open per peer address, with a cap for addresses outside ``exempt``.

    Args:
        limit: Most connections one address may hold, or ``None`` for no cap.
        exempt: Networks without a cap (loopback: local tools and benchmarks open
            thousands of connections; MAXCONN still bounds them).
    """

    def __init__(self, limit: int | None, exempt: Sequence[IPNetwork] = LOOPBACK_NETWORKS) -> None:
        self.limit = limit
        self.exempt = tuple(exempt)
        self._open: Counter[str] = Counter()
        #: Connections refused, per address (for the log's back-off).
        self.refused: Counter[str] = Counter()

    def open(self, address: str) -> bool:
        """Count a new connection; ``False`` (and not counted) if it is over the cap."""
        if (
            self.limit is not None
            and self._open[address] >= self.limit
            and not in_networks(address, self.exempt)
        ):
            if len(self.refused) >= MAX_TRACKED_PEERS and address not in self.refused:
                self.refused.clear()
            self.refused[address] += 1
            return False
        self._open[address] += 1
        return True

    def close(self, address: str) -> None:
        """Forget a connection counted by :meth:`open`."""
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def count(self, address: str) -> int:
        """Connections open from ``address``."""
        return self._open.get(address, 0)
