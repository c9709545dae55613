"""The manager's local source: it follows the store's watch instead of polling (MockClock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from nuttrio.mgmt.machine import Observed, PollFailed
from nuttrio.mgmt.runner import _LocalSource
from nuttrio.nutconf import Monitor
from nuttrio.state import LoginRecord, StateStore


class Recorder:
    """Stands in for the Manager: records what the source submits."""

    def __init__(self) -> None:
        self.events: list[Observed | PollFailed] = []

    async def submit(self, event: Observed | PollFailed) -> None:
        self.events.append(event)

    def interval(self, system: str) -> float:
        return 5.0


def local_source(entry):
    return _LocalSource(monitor(), entry, maxage=15, address="127.0.0.1")


def monitor() -> Monitor:
    return Monitor(
        system="u@localhost", ups="u", host="localhost", port=3493, power_value=1,
        username="admin", password="pw", primary=True, lineno=1,
    )  # fmt: skip


async def test_nothing_is_submitted_while_nothing_changes(nursery, autojump_clock):
    store = StateStore()
    entry = store.add("u")
    recorder = Recorder()
    with entry.connect() as link:
        with link.update() as u:
            u.set("ups.status", "OL")
            u.dumped = True
        source = local_source(entry)
        await nursery.start(source.run, recorder)
        for _ in range(60):
            await trio.sleep(10)
            link.heartbeat()  # alive, unchanged: no polling, no event
        assert [type(e) for e in recorder.events] == [Observed]
        with link.update() as u:
            u.set("ups.status", "OB")
        await trio.testing.wait_all_tasks_blocked()
        assert recorder.events[-1] == Observed("u@localhost", "OB", trio.current_time(), {})


async def test_silence_is_noticed_at_the_maxage_edge(nursery, autojump_clock):
    store = StateStore()
    entry = store.add("u")
    recorder = Recorder()
    with entry.connect() as link:
        with link.update() as u:
            u.set("ups.status", "OB")
            u.dumped = True
        start = trio.current_time()
        await nursery.start(local_source(entry).run, recorder)
        await trio.sleep(31)
        times = [(type(e).__name__, e.now - start) for e in recorder.events]
        # The good reading is re-stated at the edge (DEADTIME counts from there), then the
        # failure, then the failure again every poll interval (NOCOMM repeats).
        assert [name for name, _ in times] == [
            "Observed", "Observed", "PollFailed", "PollFailed", "PollFailed", "PollFailed",
        ]  # fmt: skip
        assert [t for _, t in times] == pytest.approx([0, 15, 15, 20, 25, 30])
        assert times[1][1] > 15


async def test_other_changes_do_not_delay_the_repeated_failure(nursery, autojump_clock):
    store = StateStore()
    entry = store.add("u")
    recorder = Recorder()
    start = trio.current_time()
    await nursery.start(local_source(entry).run, recorder)
    for i in range(12):  # logins come and go every second (the snapshot changes)
        await trio.sleep(1)
        entry.add_login(i, LoginRecord("10.0.0.9"))
        entry.remove_login(i)
    assert [e.now - start for e in recorder.events] == [0, 5, 10]  # not connected, repeated
    assert all(isinstance(e, PollFailed) for e in recorder.events)
