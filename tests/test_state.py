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
    LoginRecord,
    StateStore,
    UpsStatistics,
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


async def test_store_watch_moves_on_every_kind_of_change():
    store = StateStore()
    versions = []

    def changed(action):
        before = store.versioned.get()[0]
        action()
        after, view = store.versioned.get()
        versions.append(after > before)
        return view

    view = changed(lambda: store.add("a", "first"))
    assert [s.name for s in view.ups] == ["a"]
    b = None

    def add_b():
        nonlocal b
        b = store.add("b")

    changed(add_b)
    assert b is not None
    view = changed(lambda: store.reorder(["b", "a"]))
    assert [s.name for s in view.ups] == ["b", "a"]
    entry = store.get("a")
    view = changed(lambda: setattr(entry, "desc", "second"))
    assert view.get("A").desc == "second"
    view = changed(lambda: entry.add_login("t", LoginRecord("10.0.0.1", "mon")))
    assert view.get("a").logins == (LoginRecord("10.0.0.1"),)
    view = changed(lambda: entry.remove_login("t"))
    assert view.get("a").logins == ()
    changed(entry.set_fsd)
    view = changed(lambda: store.remove("b"))
    assert [s.name for s in view.ups] == ["a"]
    assert all(versions)
    # Nothing changed, nothing published.
    version = store.versioned.get()[0]
    entry.desc = "second"
    entry.remove_login("never logged in")
    store.reorder(["a"])
    store.remove("b")
    assert store.versioned.get()[0] == version


async def test_staleness_is_pushed_at_the_maxage_edge(nursery, autojump_clock):
    store = StateStore(maxage=15)
    entry = store.add("u")
    await nursery.start(store.run)
    pushed = []

    async def dashboard():
        async for view in store.watch():
            snap = view.get("u")
            pushed.append((trio.current_time(), snap.connected, snap.silent))

    nursery.start_soon(dashboard)
    with entry.connect() as link:
        with link.update() as u:
            u.set("ups.status", "OL")
            u.dumped = True
        await trio.sleep(10)
        link.heartbeat()  # moves the edge to 25
        await trio.sleep(20)
        assert entry.snapshot().silent
        assert entry.is_stale(15)
        link.heartbeat()  # fresh again at once, no timer needed
        await trio.testing.wait_all_tasks_blocked()
        assert not entry.snapshot().silent
    await trio.testing.wait_all_tasks_blocked()
    silent_at = [t for t, _, silent in pushed if silent]
    assert silent_at[0] == pytest.approx(25)
    assert silent_at[0] > 25
    assert pushed[-1][1:] == (False, False)  # disconnected: no further edge


async def test_a_slow_store_reader_never_slows_a_driver(nursery, autojump_clock):
    store = StateStore()
    entry = store.add("u")
    seen = []

    async def slow():
        async for view in store.watch():
            seen.append(view)
            await trio.sleep(1)

    nursery.start_soon(slow)
    await trio.testing.wait_all_tasks_blocked()
    with entry.connect() as link:
        for i in range(1000):
            with link.update() as u:  # sync: never waits for the reader
                u.set("ups.load", str(i))
        await trio.sleep(3)
        assert seen[-1].get("u").value("ups.load") == "999"
        assert len(seen) < 10


async def test_counters_of_updates_and_restarts():
    entry = StateStore().add("u")
    assert entry.statistics() == UpsStatistics(updates=0, restarts=0)
    for _ in range(3):
        with entry.connect() as link:
            with link.update():
                pass
            link.heartbeat()  # not an update
    assert entry.statistics() == UpsStatistics(updates=3, restarts=2)


async def test_snapshot_carries_desc_logins_and_staleness():
    entry = StateStore().add("u", "Rack UPS")
    entry.add_login("a", LoginRecord("10.0.0.1", "x"))
    entry.add_login("b", LoginRecord("10.0.0.2", "y"))
    snap = entry.snapshot()
    assert snap.desc == "Rack UPS"
    assert [r.address for r in snap.logins] == ["10.0.0.2", "10.0.0.1"]  # newest first
    assert snap.data_stale  # no first state yet
    assert entry.logins == list(snap.logins)


async def test_a_shorter_maxage_rearms_the_timer(nursery, autojump_clock):
    store = StateStore(maxage=60)
    entry = store.add("u")
    await nursery.start(store.run)
    with entry.connect():
        await trio.sleep(5)
        assert not entry.snapshot().silent
        store.maxage = 2  # a reload: silent for 5 s already, more than the new MAXAGE
        await trio.testing.wait_all_tasks_blocked()
        assert entry.snapshot().silent
        assert trio.current_time() == 5
