"""The NUT protocol server: the sans-IO protocol on Trio, answering from the state store."""

from __future__ import annotations

from .core import ServerCore as ServerCore
from .core import ServerSettings as ServerSettings
from .core import ServerStats as ServerStats
from .core import Session as Session
from .tcp import ConnectionLimits as ConnectionLimits
from .tcp import ListenAddress as ListenAddress
from .tcp import ListenError as ListenError
from .tcp import handle_stream as handle_stream
from .tcp import open_listeners as open_listeners
from .tcp import serve_nut as serve_nut
