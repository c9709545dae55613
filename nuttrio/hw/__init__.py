"""Drivers: each a task that publishes to the state store and serves commands.

Importing this package registers every driver nuttrio has in :data:`base.DRIVERS`.
"""

from __future__ import annotations

from . import dummy as dummy
from .base import DRIVERS as DRIVERS
from .base import Driver as Driver
from .base import create_driver as create_driver
