"""nuttrio: a UPS management system compatible with Network UPS Tools, on Trio.

The public API for embedding in other Trio programs::

    async with nuttrio.open_daemon(nuttrio.DaemonOptions(confdir=path)) as daemon:
        ...

    daemon = await nursery.start(nuttrio.serve, nuttrio.DaemonOptions(confdir=path))

The names below are imported lazily, so that ``import nuttrio.protocol`` (the sans-IO
protocol) does not load Trio or the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__ as __version__

if TYPE_CHECKING:
    from .broadcast import Notification as Notification
    from .daemon import Daemon as Daemon
    from .daemon import DaemonOptions as DaemonOptions
    from .daemon import Role as Role
    from .daemon import WebSettings as WebSettings
    from .daemon import open_daemon as open_daemon
    from .daemon import run_daemon as run_daemon
    from .daemon import serve as serve
    from .nutconf import ConfigError as ConfigError
    from .state import StateStore as StateStore
    from .state import UpsEntry as UpsEntry
    from .state import UpsSnapshot as UpsSnapshot

_LAZY = {
    "ConfigError": "nutconf",
    "Daemon": "daemon",
    "DaemonOptions": "daemon",
    "Role": "daemon",
    "WebSettings": "daemon",
    "open_daemon": "daemon",
    "run_daemon": "daemon",
    "serve": "daemon",
    "Notification": "broadcast",
    "StateStore": "state",
    "UpsEntry": "state",
    "UpsSnapshot": "state",
}

__all__ = ["__version__", *_LAZY]

__getattr__ = lazy_exports(__name__, _LAZY)
