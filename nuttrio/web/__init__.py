"""The web server: a live dashboard, the JSON API, ``/metrics`` and the websocket stream.

It reads the state store (and, through :class:`WebSource`, the protocol server's counters,
upsd.users and the manager's verdict, which the daemon hands it); it imports neither the
server nor the manager. HTTP is h11's, websockets trio-websocket's; the page and its
script ship in ``nuttrio/web/static`` (no CDN, works offline). docs/web.md describes the
API.

Embedding::

    app = await nursery.start(serve_web, WebSource(store), listeners)
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence

import attrs
import trio

from ..jsonshapes import Sample
from .app import WebApp, WebSource, WebUser
from .feed import EventLog, RingLog, follow_store, history_size, sample_store
from .http import serve_http

__all__ = ["DEFAULT_WEB_PORT", "WebApp", "WebSettings", "WebSource", "WebUser", "serve_web"]

#: The web port when ``--web HOST`` gives none, and the demo's (NUT's 3493 in the 8000s).
DEFAULT_WEB_PORT = 8493


@attrs.frozen
class WebSettings:
    """How much the dashboard remembers.

    Attributes:
        history_hours: Hours of chart the ring buffer keeps (for the UPSes there at start).
        sample_interval: Seconds between two chart points.
        event_log_size: Event-log lines kept.
    """

    history_hours: float = 3.0
    sample_interval: float = 10.0
    event_log_size: int = 500


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
