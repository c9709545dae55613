"""What every driver is: a task that publishes to the state store and serves commands.

A driver *factory* validates one ups.conf section and returns a :class:`Driver`; the daemon
attaches it to the UPS entry (:meth:`nuttrio.state.UpsEntry.connect`) and runs it under
supervision. Hardware I/O sits behind each driver's own small transport interface so that
tests run the real driver code against recorded data and simulators.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import trio

from ..nutconf import ConfigError, UpsSection
from ..state import DriverLink

__all__ = ["DRIVERS", "Driver", "DriverFactory", "create_driver"]


class Driver(Protocol):
    """A running driver for one UPS."""

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Publish the UPS state through ``link`` and serve ``link.commands`` until cancelled.

        Call ``task_status.started()`` once the first complete state is published. An
        exception ends this run; the daemon marks the UPS disconnected and restarts it.
        """
        ...


#: Builds a driver from its ups.conf section; ``confdir`` resolves relative paths.
#: Raises :class:`~nuttrio.nutconf.ConfigError` (with file and line) for a bad section.
DriverFactory = Callable[[UpsSection, Path], Driver]

#: NUT driver names nuttrio can serve, filled by the driver modules.
DRIVERS: dict[str, DriverFactory] = {}


def create_driver(section: UpsSection, confdir: Path) -> Driver:
    """Build the driver a ups.conf section names.

    Raises:
        ConfigError: If the driver is not one nuttrio has, or the section is invalid.
    """
    factory = DRIVERS.get(section.driver)
    if factory is None:
        known = ", ".join(sorted(DRIVERS)) or "none"
        raise ConfigError(
            f"UPS {section.name}: driver {section.driver!r} is not available in nuttrio yet "
            f"(available: {known})",
            section.path,
            section.lineno,
        )
    return factory(section, confdir)
