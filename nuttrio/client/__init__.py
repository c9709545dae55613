"""The Trio client for NUT servers: typed calls for every request of the protocol.

Example::

    async with open_nut_client("127.0.0.1") as nut:
        status = await nut.get_var("ups", "ups.status")
"""

from __future__ import annotations

from ._client import DEFAULT_PORT as DEFAULT_PORT
from ._client import NutClient as NutClient
from ._client import NutError as NutError
from ._client import TrackedResult as TrackedResult
from ._client import connect_nut as connect_nut
from ._client import open_nut_client as open_nut_client
from ._client import wrap_nut_stream as wrap_nut_stream
