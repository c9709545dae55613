"""Drivers: each a task that publishes to the state store and serves commands.

Importing this package imports no driver: :data:`base.DRIVERS` loads a driver's module when
a ups.conf section names it (:func:`create_driver`). The driver kit is :mod:`.kit` (the
shared polling loop) and :mod:`.transport` (serial ports and blocking USB calls). A driver
nuttrio does not have is NUT's own binary, bridged through its socket (:mod:`.nutdriver`
over the sans-IO :mod:`.sockproto`); docs/drivers.md has the whole picture.
"""

from __future__ import annotations

from .base import DRIVERS as DRIVERS
from .base import Driver as Driver
from .base import DriverContext as DriverContext
from .base import DriverFactory as DriverFactory
from .base import DriverFailed as DriverFailed
from .base import create_driver as create_driver
