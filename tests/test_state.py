"""The state store: latest-value watches, consistent snapshots, driver links and commands."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from nuttrio.state import (
    CommandKind,
    CommandResult,
    CommandStatus,
    DriverCommand,
    StateStore,
    Watch,
)


async def test_watch_never_blocks_the_producer_and_readers_get_the_latest():
    watch = Watch(0)
    seen = []

    async def slow_reader():
        async for value in watch.values():
            seen.append(value)
            if value == 1000:
                return
            await trio.sleep(1)  # far slower than the producer

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(1, 1001):
            watch.set(i)  # sync: returns at once whatever the reader does
    assert seen[0] == 0
    assert seen[-1] == 1000
    assert len(seen) < 10  # intermediate values were coalesced, not queued


async def test_wait_newer_always_checkpoints():
    watch = Watch("a")
    watch.set("b")
    with trio.testing.assert_checkpoints():
        assert await watch.wait_newer(0) == (1, "b")


async def test_wait_newer_is_cancellable_and_leaves_the_watch_alone():
    watch = Watch(1)
    with trio.move_on_after(0.01) as scope:
        await watch.wait_newer(0 + watch.get()[0])
    assert scope.cancelled_caught
    watch.set(2)
    assert watch.get() == (1, 2)


async def test_update_blocks_publish_one_snapshot_and_nothing_on_error():
    store = StateStore()
    entry = store.add("Ups", "desc")
    versions = []

    async def follow():
        async for snap in entry.watch():
            versions.append(dict(snap.variables))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        with entry.connect() as link:
            await trio.testing.wait_all_tasks_blocked()
            with link.update() as u:
                u.set("ups.status", "OL")
                u.set("battery.charge", "100")
                u.set_flags("battery.charge", rw=True, number=True)
                u.add_command("load.off")
                u.add_command("LOAD.OFF")
                u.dumped = True
            await trio.testing.wait_all_tasks_blocked()

            def failing_update():
                with link.update() as u:
                    u.set("ups.status", "OB")
                    raise RuntimeError("driver bug")

            with pytest.raises(RuntimeError):
                failing_update()
            await trio.testing.wait_all_tasks_blocked()
            snap = entry.snapshot()
            assert snap.value("UPS.STATUS") == "OL"  # the failed update was not published
            assert snap.get("battery.charge").rw
            assert snap.commands == ("load.off",)
            assert snap.connected
            assert snap.dumped
        nursery.cancel_scope.cancel()
    # Readers saw the empty entry, then both variables at once: never half an update.
    assert all(len(v) in (0, 2) for v in versions)
    assert store.get("UPS") is entry
    assert not entry.snapshot().connected


async def test_fsd_latch_survives_driver_updates_and_reconnects():
    store = StateStore()
    entry = store.add("u")
    with entry.connect() as link, link.update() as u:
        u.set("ups.status", "OL")
    entry.set_fsd()
    with entry.connect() as link, link.update() as u:
        u.set("ups.status", "OB")
    assert entry.snapshot().status == "FSD OB"
    store.remove("u")
    assert store.add("u").snapshot().fsd is False


async def test_one_driver_at_a_time():
    entry = StateStore().add("u")
    with entry.connect(), pytest.raises(RuntimeError), entry.connect():
        pass


async def test_command_result_resolves_once():
    result = CommandResult()
    result.resolve(CommandStatus.SUCCESS)
    result.resolve(CommandStatus.FAILED)
    assert await result.wait() is CommandStatus.SUCCESS


async def test_full_command_queue_is_reported_not_awaited():
    entry = StateStore().add("u")
    with entry.connect():
        accepted = [entry.submit(DriverCommand(CommandKind.INSTCMD, "x")) for _ in range(20)]
    assert accepted.count(True) == 16
    assert accepted[-1] is False


async def test_staleness_follows_maxage_and_heartbeats(autojump_clock):
    entry = StateStore().add("u")
    assert entry.is_stale(15)  # never heard from
    with entry.connect() as link:
        with link.update() as u:
            u.dumped = True
        await trio.sleep(15)
        assert not entry.is_stale(15)
        await trio.sleep(1)
        assert entry.is_stale(15)
        link.heartbeat()
        assert not entry.is_stale(15)
