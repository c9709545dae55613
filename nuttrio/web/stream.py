"""``WS /api/v1/stream``: one JSON message per change, pushed as the store changes.

Messages (each a JSON object with a ``type``):

* ``hello`` first: ``ups`` (every UPS, :class:`~nuttrio.jsonshapes.UpsState`), ``events``
  (the event log kept), ``samples`` (the chart's points kept), ``verdict`` (the manager's,
  or ``null``), ``store_version``, ``chart_span`` (the seconds of chart kept: the server's
  ``--web-history``; the page shows no more);
* ``ups``: one UPS changed (``ups`` is its whole state, ``store_version`` the store's
  version it was read at, increasing from message to message);
* ``removed``: the UPS ``name`` is gone;
* ``event``: one new event-log line; ``sample``: one new chart point;
* ``verdict``: the manager's verdict changed.

The store is read with its latest-value watch: a client that cannot keep up skips
intermediate states of a UPS, never the latest one (``updates`` in each UPS state says
how many driver updates there were, so a skip is visible). Each producer task puts its
messages on one channel that a single task sends, so messages never interleave.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import trio
import trio_websocket

from ..jsonshapes import EventRecord, JsonValue, Sample, unstructure
from ..state import StateStore, UpsSnapshot
from .feed import RingLog, ups_state

__all__ = ["StreamSource", "serve_stream"]

#: Seconds between two looks at the manager's verdict (it changes with time as well).
VERDICT_INTERVAL = 1.0
#: Encoded ``ups`` messages kept for the other clients.
_MEMO_SIZE = 256


class StreamSource:
    """What the stream reads: the store, the logs, the verdict.

    Args:
        store: The UPS data.
        events: The event log.
        samples: The chart's points.
        verdict: The manager's verdict now, or ``None`` if no manager runs.
        chart_span: Seconds of chart the samples cover (``--web-history``).
    """

    def __init__(
        self,
        store: StateStore,
        events: RingLog[EventRecord],
        samples: RingLog[Sample],
        verdict: Callable[[], JsonValue] | None,
        chart_span: float = 3 * 3600.0,
    ) -> None:
        self.store = store
        self.events = events
        self.samples = samples
        self.verdict = verdict
        self.chart_span = chart_span
        self._texts: dict[tuple[int, str], str] = {}

    def ups_text(self, snap: UpsSnapshot, version: int) -> str:
        """The ``ups`` message of ``snap`` read at store ``version``, as JSON text.

        Encoded once for all clients (a memo of recent versions): with many clients the
        encoding, not the push, is what costs.
        """
        key = (version, snap.name)
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) >= _MEMO_SIZE:
                self._texts.clear()
            text = json.dumps(_ups_message(self.store, snap, version))
            self._texts[key] = text
        return text


def _state(store: StateStore, snap: UpsSnapshot) -> JsonValue:
    entry = store.get(snap.name)
    updates = entry.statistics().updates if entry is not None else 0
    return unstructure(ups_state(snap, updates))


def _ups_message(store: StateStore, snap: UpsSnapshot, version: int) -> JsonValue:
    return {"type": "ups", "store_version": version, "ups": _state(store, snap)}


def hello(source: StreamSource, verdict: JsonValue) -> tuple[JsonValue, int, int, int]:
    """The first message, and the store version, event and sample numbers it covers."""
    version, view = source.store.versioned.get()
    events, samples = source.events.last, source.samples.last
    message: JsonValue = {
        "type": "hello",
        "store_version": version,
        "ups": [_state(source.store, snap) for snap in view.ups],
        "events": [unstructure(e) for e in source.events],
        "samples": [unstructure(s) for s in source.samples],
        "verdict": verdict,
        "chart_span": source.chart_span,
    }
    return message, version, events, samples


async def _store_changes(
    source: StreamSource, version: int, send: trio.MemorySendChannel[str]
) -> None:
    sent = {snap.name: snap for snap in source.store.versioned.get()[1].ups}
    while True:
        version, view = await source.store.versioned.wait_newer(version)
        current = {snap.name: snap for snap in view.ups}
        for name, snap in current.items():
            if sent.get(name) is not snap:
                await send.send(source.ups_text(snap, version))
        for name in sent.keys() - current.keys():
            removed = {"type": "removed", "name": name, "store_version": version}
            await send.send(json.dumps(removed))
        sent = current


async def _log_items(
    log: RingLog[EventRecord] | RingLog[Sample],
    kind: str,
    seq: int,
    send: trio.MemorySendChannel[str],
) -> None:
    while True:
        newest = await log.wait_after(seq)
        for item in log.since(seq):
            await send.send(json.dumps({"type": kind, kind: unstructure(item)}))
        seq = newest


async def _verdicts(
    verdict: Callable[[], JsonValue], last: JsonValue, send: trio.MemorySendChannel[str]
) -> None:
    while True:
        await trio.sleep(VERDICT_INTERVAL)
        now = verdict()
        if now != last:
            await send.send(json.dumps({"type": "verdict", "verdict": now}))
            last = now


async def serve_stream(source: StreamSource, ws: trio_websocket.WebSocketConnection) -> None:
    """Send the hello and then every change to ``ws`` until the client goes away.

    Messages from the client are read and ignored (so that a close is noticed). Returns
    when the connection closes; cancellation stops it (the caller closes ``ws``).
    """
    verdict = source.verdict() if source.verdict is not None else None
    message, version, events, samples = hello(source, verdict)
    send, receive = trio.open_memory_channel[str](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_store_changes, source, version, send)
        nursery.start_soon(_log_items, source.events, "event", events, send)
        nursery.start_soon(_log_items, source.samples, "sample", samples, send)
        if source.verdict is not None:
            nursery.start_soon(_verdicts, source.verdict, verdict, send)
        nursery.start_soon(_drain, ws, nursery.cancel_scope)
        try:
            await ws.send_message(json.dumps(message))
            async for text in receive:
                await ws.send_message(text)
        except trio_websocket.ConnectionClosed:
            pass
        nursery.cancel_scope.cancel()


async def _drain(ws: trio_websocket.WebSocketConnection, stop: trio.CancelScope) -> None:
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed:
        stop.cancel()
