"""The NUT network protocol (upsd 2.8.0 and RFC 9271), sans-IO.

Bytes in, events out; replies in, bytes out. Nothing here performs I/O or imports Trio, so
the same code serves nuttrio's server, its clients and any other event loop.
"""

from __future__ import annotations

from . import events as events
from . import grammar as grammar
from . import replies as replies
from .connection import DEFAULT_MAX_LINE as DEFAULT_MAX_LINE
from .connection import ServerConnection as ServerConnection
from .connection import ServerState as ServerState
from .connection import Signal as Signal
from .errors import ErrCode as ErrCode
from .errors import LocalProtocolError as LocalProtocolError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .quoting import encode as encode
from .quoting import quote as quote
from .replies import Reply as Reply
from .tokenizer import Line as Line
from .tokenizer import LineError as LineError
from .tokenizer import LineTooLong as LineTooLong
from .tokenizer import Tokenizer as Tokenizer
from .tokenizer import split_text as split_text

# isort: split
# The client side.
from .client import DEFAULT_MAX_LIST_ITEMS as DEFAULT_MAX_LIST_ITEMS
from .client import ClientConnection as ClientConnection
from .client import ClientReply as ClientReply
from .client import ClientSignal as ClientSignal
from .client import ClientState as ClientState
from .client import ReplyError as ReplyError
