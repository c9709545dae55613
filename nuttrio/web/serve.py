"""``serve_web``: the dashboard, the API, /metrics and the stream on the given listeners."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence

import trio

from ..jsonshapes import Sample
from .app import WebApp, WebSource
from .feed import EventLog, RingLog, follow_store, history_size, sample_store
from .http import serve_http
from .settings import WebSettings

__all__ = ["serve_web"]


async def serve_web(
    source: WebSource,
    listeners: Sequence[trio.SocketListener],
    settings: WebSettings | None = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[WebApp] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard, the API and /metrics on ``listeners`` (which it owns).

    With ``tls_context`` it serves HTTPS (and ``wss:``) only.

    Reports the :class:`WebApp` (its ``events`` log takes more events, e.g. the
    manager's notifications) once accepting. Runs until cancelled; cancellation closes
    every connection and the listeners. A failing request or websocket never stops it.
    """
    settings = settings or WebSettings()
    events = EventLog(settings.event_log_size)
    size = history_size(settings.history_hours, settings.sample_interval, len(source.store))
    samples: RingLog[Sample] = RingLog(size)
    app = WebApp(
        source,
        events,
        samples,
        secure=tls_context is not None,
        chart_span=settings.history_hours * 3600,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow_store, source.store, events)
        per_ups = history_size(settings.history_hours, settings.sample_interval, 1)
        sample = functools.partial(sample_store, per_ups=per_ups)
        await nursery.start(sample, source.store, samples, settings.sample_interval)
        await nursery.start(
            functools.partial(serve_http, tls_context=tls_context),
            listeners,
            app.handle,
            app.websocket,
        )
        app.listeners = listeners
        task_status.started(app)
