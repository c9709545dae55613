"""nuttrio.broadcast: every event to every subscriber, never blocking the publisher."""

from __future__ import annotations

import trio
import trio.testing

from nuttrio.broadcast import Broadcast


async def test_each_subscriber_gets_every_event_from_its_subscription_on():
    hub: Broadcast[int] = Broadcast()
    hub.publish(0)  # nobody listens yet: gone
    first = hub.subscribe()
    hub.publish(1)
    second = hub.subscribe()
    hub.publish(2)
    assert [await first.__anext__(), await first.__anext__()] == [1, 2]
    assert await second.__anext__() == 2
    await first.aclose()
    hub.publish(3)
    assert await second.__anext__() == 3
    assert hub.dropped == 0


async def test_a_slow_reader_never_blocks_the_publisher_and_its_losses_are_counted():
    hub: Broadcast[int] = Broadcast(size=2)
    async with hub.subscribe() as slow, hub.subscribe() as other:
        for n in range(5):
            hub.publish(n)  # never blocks
        assert hub.dropped == 6  # 3 lost by each reader
        got = []
        async for n in slow:
            got.append(n)
            if len(got) == 2:
                break
        assert got == [0, 1]
        assert await other.__anext__() == 0


async def test_iteration_ends_when_the_subscription_is_closed():
    hub: Broadcast[str] = Broadcast()
    notes = hub.subscribe()
    async with trio.open_nursery() as nursery:
        seen: list[str] = []

        async def read() -> None:
            async for note in notes:
                seen.append(note)

        nursery.start_soon(read)
        hub.publish("ONBATT")
        await trio.testing.wait_all_tasks_blocked()
        await notes.aclose()
    assert seen == ["ONBATT"]
