"""What the dashboard shows besides the live values: the event log and the chart's samples.

Both are :class:`RingLog` objects: a bounded ring buffer of numbered items with a
latest-value watch on the newest number, so that each websocket reader sends what it
has not sent yet and a writer never blocks. :func:`follow_store` turns store changes
into events (status, driver, clients), :func:`sample_store` takes the chart's points.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Generic, TypeVar

import trio

from ..jsonshapes import EventRecord, Sample, UpsState
from ..state import StateStore, StoreView, UpsSnapshot, Watch

__all__ = [
    "CHART_VARIABLES",
    "DRIVER_STATE_EVENTS",
    "STATUS_WORDS",
    "EventLog",
    "RingLog",
    "follow_store",
    "sample_store",
    "status_words",
    "ups_state",
]

T = TypeVar("T")

#: The meaning of each ups.status flag, in words (NUT's docs/new-drivers.txt names them).
STATUS_WORDS = {
    "OL": "on line power",
    "OB": "on battery",
    "LB": "low battery",
    "HB": "high battery",
    "RB": "replace battery",
    "CHRG": "charging",
    "DISCHRG": "discharging",
    "BYPASS": "on bypass",
    "CAL": "calibrating",
    "OFF": "offline",
    "OVER": "overloaded",
    "TRIM": "trimming the voltage",
    "BOOST": "boosting the voltage",
    "FSD": "forced shutdown",
    "ALARM": "alarm",
    "TEST": "testing",
}

#: The figures the chart follows.
CHART_VARIABLES = (
    "battery.charge",
    "battery.runtime",
    "ups.load",
    "input.voltage",
    "output.voltage",
)

#: The ``driver.state`` values the event log reports (entering them, and leaving them):
#: the daemon's supervisor's and a NUT driver's lost device. A NUT driver's other states
#: (``updateinfo``, ``quiet``, ``dumping``...) change at each poll and are not logged.
DRIVER_STATE_EVENTS = {
    "restarting": "driver restarting",
    "restart-storm": "driver restart storm: it keeps failing, still restarting it",
    "reconnect.trying": "driver reconnecting to the device",
}

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def number(text: str | None) -> float | None:
    """``text`` as a number if it is one (plain decimal notation), else ``None``."""
    if text is None or not _NUMBER.fullmatch(text.strip()):
        return None
    return float(text)


def status_words(status: str) -> tuple[tuple[str, str], ...]:
    """Each flag of ``status`` with its meaning (an unknown flag stands for itself)."""
    return tuple((flag, STATUS_WORDS.get(flag, flag)) for flag in status.split())


def ups_state(snap: UpsSnapshot, updates: int) -> UpsState:
    """The JSON shape of one UPS (the dashboard's and the stream's)."""
    return UpsState(
        name=snap.name,
        description=snap.desc,
        connected=snap.connected,
        stale=snap.data_stale,
        status=snap.status,
        status_words=status_words(snap.status),
        variables={v.name: v.value for v in snap.variables.values()},
        commands=snap.commands,
        writable=tuple(v.name for v in snap.variables.values() if v.rw),
        clients=tuple((r.address, r.username) for r in snap.logins),
        updates=updates,
    )


class RingLog(Generic[T]):
    """The newest ``size`` items, numbered from 1; readers wait for newer numbers.

    Args:
        size: How many items are kept (older ones are dropped).
    """

    def __init__(self, size: int) -> None:
        self._items: deque[tuple[int, T]] = deque(maxlen=max(size, 1))
        self._watch: Watch[int] = Watch(0)

    @property
    def last(self) -> int:
        """The number of the newest item (0 before the first)."""
        return self._watch.get()[1]

    def append(self, item: T) -> int:
        """Add ``item``; returns its number. Never blocks."""
        seq = self.last + 1
        self._items.append((seq, item))
        self._watch.set(seq)
        return seq

    def grow(self, size: int) -> None:
        """Keep ``size`` items from now on if that is more than now (it never shrinks)."""
        if size > (self._items.maxlen or 0):
            self._items = deque(self._items, maxlen=size)

    def since(self, seq: int) -> list[T]:
        """The items numbered after ``seq`` that are still kept, oldest first."""
        return [item for n, item in self._items if n > seq]

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in list(self._items))

    async def wait_after(self, seq: int) -> int:
        """Wait until an item newer than ``seq`` exists; returns the newest number.

        Cancellation leaves the log unchanged.
        """
        version, _ = self._watch.get()
        while self.last <= seq:
            version, _ = await self._watch.wait_newer(version)
        return self.last


class EventLog(RingLog[EventRecord]):
    """The dashboard's event log.

    Args:
        size: How many events are kept.
        wall_clock: Seconds since the epoch (for the events' times).
    """

    def __init__(self, size: int = 500, *, wall_clock: Callable[[], float] = time.time) -> None:
        super().__init__(size)
        self._wall = wall_clock

    def add(self, kind: str, message: str, ups: str | None = None) -> EventRecord:
        """Log one event now; returns it. Never blocks."""
        now = self._wall()
        stamp = datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
        record = EventRecord(self.last + 1, stamp, now, ups, kind, message)
        self.append(record)
        return record


def _status_text(status: str) -> str:
    words = ", ".join(text for _, text in status_words(status))
    return f"{words} ({status})" if words else "no status"


def _changes(old: UpsSnapshot | None, new: UpsSnapshot) -> Iterator[tuple[str, str]]:
    """What happened to one UPS between two snapshots: ``(kind, message)`` pairs."""
    if old is None:
        yield "driver", "UPS added"
        old = UpsSnapshot(name=new.name)
    if old.connected != new.connected:
        yield "driver", "driver connected" if new.connected else "driver not connected"
    yield from _driver_state_changes(old.value("driver.state"), new.value("driver.state"))
    if old.data_stale != new.data_stale and new.connected and old.dumped:
        yield "driver", "data stale" if new.data_stale else "data fresh again"
    if old.status != new.status and new.status:
        yield "status", f"status: {_status_text(new.status)}"
    # Counted by address: two connections from one host are two clients.
    before = Counter(r.address for r in old.logins)
    after = Counter(r.address for r in new.logins)
    for address, count in (after - before).items():
        # The newest LOGINs from that address (the list is newest first).
        for record in [r for r in new.logins if r.address == address][:count]:
            yield "client", f"client {address} attached ({record.username or '?'})"
    for address, count in (before - after).items():
        for _ in range(count):
            yield "client", f"client {address} detached"


def _driver_state_changes(old: str | None, new: str | None) -> Iterator[tuple[str, str]]:
    """The events of a ``driver.state`` change: entering or leaving a logged state."""
    if old == new:
        return
    if new in DRIVER_STATE_EVENTS:
        yield "driver", DRIVER_STATE_EVENTS[new]
    elif old in DRIVER_STATE_EVENTS:
        yield "driver", f"driver state {old} over ({new or 'cleared'})"


async def follow_store(store: StateStore, events: EventLog) -> None:
    """Log the store's changes (status, driver, driver.state, staleness, clients) until cancelled.

    Latest-value: changes that come and go between two reads are not seen (the store
    never waits for this task). Cancellation stops it; nothing needs cleaning up.
    """
    previous: dict[str, UpsSnapshot] = {snap.name: snap for snap in store.view().ups}
    async for view in store.watch():
        current = {snap.name: snap for snap in view.ups}
        for name, snap in current.items():
            if previous.get(name) is snap:
                continue
            for kind, message in _changes(previous.get(name), snap):
                events.add(kind, message, name)
        for name in previous.keys() - current.keys():
            events.add("driver", "UPS removed", name)
        previous = current


def take_samples(view: StoreView, now: float) -> list[Sample]:
    """One chart point for each UPS with at least one of :data:`CHART_VARIABLES`."""
    out = []
    for snap in view.ups:
        values = {name: number(snap.value(name)) for name in CHART_VARIABLES}
        if any(v is not None for v in values.values()):
            out.append(Sample(now, snap.name, values))
    return out


async def sample_store(
    store: StateStore,
    samples: RingLog[Sample],
    interval: float,
    *,
    per_ups: int = 0,
    wall_clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every ``interval`` seconds (Trio's clock), take a chart point of each UPS.

    With ``per_ups``, ``samples`` grows to keep that many points of each UPS when UPSes
    are added (a SIGHUP that adds one does not shorten the others' history). The first
    points are taken at once. Cancellation stops it.
    """
    task_status.started()
    deadline = trio.current_time()
    while True:
        taken = take_samples(store.view(), wall_clock())
        samples.grow(per_ups * len(taken))
        for sample in taken:
            samples.append(sample)
        deadline += interval
        await trio.sleep_until(max(deadline, trio.current_time()))


def history_size(hours: float, interval: float, ups_count: int) -> int:
    """How many samples cover ``hours`` for ``ups_count`` UPSes at one per ``interval``."""
    per_ups = math.ceil(hours * 3600 / interval) if interval > 0 else 1
    return max(per_ups, 1) * max(ups_count, 1)
