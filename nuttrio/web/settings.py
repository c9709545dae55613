"""The web server's settings.

Light to import: the daemon and the CLI read them without loading the web stack.
"""

from __future__ import annotations

import attrs

__all__ = ["DEFAULT_WEB_PORT", "WebSettings"]

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
