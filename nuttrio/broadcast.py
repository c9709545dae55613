"""A fan-out of events to any number of readers, each an async iterator.

Unlike the state store's latest-value watches, every event counts (a notification is not
superseded by the next one), so each reader has a buffer of its own. A slow reader never
slows the publisher: what does not fit in its buffer is dropped for that reader and
counted in :attr:`Broadcast.dropped`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import attrs
import trio

__all__ = ["Broadcast", "Notification", "Subscription"]

T = TypeVar("T")


@attrs.frozen
class Notification:
    """One notification of the manager, as upsmon's NOTIFYCMD receives it.

    Attributes:
        type: The notify type (``ONBATT``, ``LOWBATT``, ``FSD``, ``SHUTDOWN``...).
        system: The MONITOR's ``ups@host``, or ``None`` for host-wide ones.
        detail: ALARM's ``ups.alarm``, OTHER's tokens; usually empty.
        time: When it was sent (Trio's clock).
    """

    type: str
    system: str | None
    detail: str
    time: float


class Broadcast(Generic[T]):
    """Publish events to every current subscriber without blocking.

    Args:
        size: Events buffered per subscriber before its further ones are dropped.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._readers: set[trio.MemorySendChannel[T]] = set()
        #: Events dropped because a subscriber's buffer was full.
        self.dropped = 0

    def publish(self, event: T) -> None:
        """Give ``event`` to every subscriber. Never blocks, never raises."""
        for reader in list(self._readers):
            try:
                reader.send_nowait(event)
            except trio.WouldBlock:
                self.dropped += 1

    def subscribe(self) -> Subscription[T]:
        """Every event published from this call on, as an async iterator.

        Subscribed at once (before the first ``await``); ``aclose()`` it, or use it as
        an async context manager, to unsubscribe.
        """
        send, receive = trio.open_memory_channel[T](self._size)
        self._readers.add(send)
        return Subscription(receive, lambda: self._readers.discard(send))


class Subscription(Generic[T]):
    """One reader's events (see :meth:`Broadcast.subscribe`)."""

    def __init__(self, receive: trio.MemoryReceiveChannel[T], leave: Callable[[], None]) -> None:
        self._receive = receive
        self._leave = leave

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        """The next event; waits for it. Cancellation loses nothing."""
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):  # closed, here or elsewhere
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Unsubscribe; events buffered and not yet read are dropped."""
        self._leave()
        await self._receive.aclose()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
