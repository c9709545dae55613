"""The web server: a live dashboard, the JSON API, ``/metrics`` and the websocket stream.

It reads the state store (and, through :class:`WebSource`, the protocol server's counters,
upsd.users and the manager's verdict, which the daemon hands it); it imports neither the
server nor the manager. HTTP is h11's, websockets trio-websocket's; the page and its
script ship in ``nuttrio/web/static`` (no CDN, works offline). docs/web.md describes the
API.

Embedding::

    app = await nursery.start(serve_web, WebSource(store), listeners)

The names are imported lazily: :class:`WebSettings` and :data:`DEFAULT_WEB_PORT` alone do not
load the web stack (h11, trio-websocket, prometheus_client), so a daemon without ``--web``
never carries it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .app import WebApp as WebApp
    from .app import WebSource as WebSource
    from .app import WebUser as WebUser
    from .serve import serve_web as serve_web
    from .settings import DEFAULT_WEB_PORT as DEFAULT_WEB_PORT
    from .settings import WebSettings as WebSettings

_LAZY = {
    "DEFAULT_WEB_PORT": "settings",
    "WebApp": "app",
    "WebSettings": "settings",
    "WebSource": "app",
    "WebUser": "app",
    "serve_web": "serve",
}

__all__ = list(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
