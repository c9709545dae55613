"""What every driver is: a task that publishes to the state store and serves commands.

A driver *factory* validates one ups.conf section and returns a :class:`Driver`; the daemon
attaches it to the UPS entry (:meth:`nuttrio.state.UpsEntry.connect`) and runs it under
supervision. Hardware I/O sits behind each driver's own small transport interface so that
tests run the real driver code against recorded data and simulators.

The registry (:data:`DRIVERS`) knows each driver by its NUT name and imports the driver's
module only when a ups.conf section names it, so a USB driver's pyusb, for instance, is
imported only when a USB UPS is configured.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import attrs
import trio

from ..nutconf import ConfigError, UpsSection
from ..state import DriverLink, StateStore

__all__ = [
    "BUILTIN_DRIVERS",
    "DRIVERS",
    "Driver",
    "DriverContext",
    "DriverFactory",
    "DriverFailed",
    "DriverRegistry",
    "create_driver",
]


class DriverFailed(Exception):
    """A driver's run ended for a reason it says in one line (its process is gone, say).

    The daemon logs the message without a traceback and restarts the driver.
    """


class Driver(Protocol):
    """A running driver for one UPS.

    A driver may also have ``async def shutdown(self) -> None``: its own shutdown
    sequence (NUT's ``upsdrv_shutdown``, what ``DRIVER -k`` sends), run by ``nuttrio
    --shutdown-ups`` without :meth:`run`. It raises :class:`DriverFailed` with the reason
    if the device could not be told. A driver without one gets the instant commands.
    """

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Publish the UPS state through ``link`` and serve ``link.commands`` until cancelled.

        Call ``task_status.started()`` once the first complete state is published. An
        exception ends this run; the daemon marks the UPS disconnected and restarts it.
        """
        ...


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@attrs.frozen
class DriverContext:
    """What a driver factory may know beyond its own ups.conf section.

    Attributes:
        confdir: The configuration directory (relative ``port`` paths start here).
        statepath: upsd.conf's STATEPATH (driver sockets), or ``None`` for NUT's default.
        ups_globals: ups.conf's global settings (``pollinterval``, ``maxretry``,
            ``retrydelay``, ``driverpath``, ``user``...), lower-cased keys.
        clock: The clock drivers read (Trio's by default).
        maxage: upsd.conf's MAXAGE (a bridged NUT driver is PINGed after a third of it).
        nut_drivers: UPS names (lower case) served by NUT's driver binary even where
            nuttrio has a driver of its own; ``"*"`` for every UPS (``--nut-driver``).
        external_drivers: Start no driver: every UPS is served by the NUT driver that
            the system started, found by its socket in STATEPATH (``--external-drivers``).
        store: The daemon's state store (a clone reads the UPS it follows there), or
            ``None`` outside a daemon.
        sections: Every section of ups.conf (a clone finds its source among them).
    """

    confdir: Path
    statepath: Path | None = None
    ups_globals: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    clock: Callable[[], float] = trio.current_time
    maxage: float = 15.0
    nut_drivers: frozenset[str] = frozenset()
    external_drivers: bool = False
    store: StateStore | None = attrs.field(default=None, eq=False)
    sections: tuple[UpsSection, ...] = ()

    def uses_nut_binary(self, section: UpsSection) -> bool:
        """Whether ``section`` is served by NUT's driver binary rather than nuttrio's own."""
        return (
            self.external_drivers
            or section.driver not in DRIVERS
            or bool({"*", section.name.lower()} & self.nut_drivers)
        )


#: Builds a driver from its ups.conf section and the context.
#: Raises :class:`~nuttrio.nutconf.ConfigError` (with file and line) for a bad section.
DriverFactory = Callable[[UpsSection, DriverContext], Driver]

#: The drivers nuttrio has: NUT driver name -> ``"module:factory"``, imported on first use.
BUILTIN_DRIVERS: Mapping[str, str] = MappingProxyType(
    {
        "dummy-ups": "nuttrio.hw.dummy:dummy_factory",
        "usbhid-ups": "nuttrio.hw.hid.driver:usbhid_factory",
        "blazer_ser": "nuttrio.hw.megatec:blazer_ser_factory",
        "nutdrv_qx": "nuttrio.hw.qx_megatec:nutdrv_qx_factory",
        "apcsmart": "nuttrio.hw.apcsmart:apcsmart_factory",
        "clone": "nuttrio.hw.clone:clone_factory",
    }
)


class DriverRegistry(MutableMapping[str, DriverFactory]):
    """NUT driver names to factories; a factory's module is imported when first looked up.

    Args:
        lazy: Name -> ``"package.module:attribute"`` of the factory.
    """

    def __init__(self, lazy: Mapping[str, str]) -> None:
        self._lazy = dict(lazy)
        self._loaded: dict[str, DriverFactory] = {}

    def __getitem__(self, name: str) -> DriverFactory:
        """The factory for ``name``, importing its module if needed.

        Raises:
            KeyError: If no driver of that name is registered.
            ImportError: If its module (or one it needs, such as pyusb) cannot be imported.
        """
        factory = self._loaded.get(name)
        if factory is None:
            module, _, attribute = self._lazy[name].partition(":")
            factory = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = factory
        return factory

    def __setitem__(self, name: str, factory: DriverFactory) -> None:
        """Register ``factory`` under ``name`` (a driver of your own, or a test's)."""
        self._loaded[name] = factory

    def __delitem__(self, name: str) -> None:
        found = self._loaded.pop(name, None) is not None
        if self._lazy.pop(name, None) is None and not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered (imports nothing)."""
        return name in self._lazy or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._lazy, *self._loaded]))

    def __len__(self) -> int:
        return len(set(self._lazy) | set(self._loaded))

    def register_module(self, name: str, target: str) -> None:
        """Register a factory by ``"module:attribute"``, imported when a section names it."""
        self._loaded.pop(name, None)
        self._lazy[name] = target


#: Every driver nuttrio can serve.
DRIVERS = DriverRegistry(BUILTIN_DRIVERS)


def create_driver(section: UpsSection, context: DriverContext) -> Driver:
    """Build the driver a ups.conf section names (importing its module now).

    A section whose driver nuttrio does not have, or that the context sends to NUT's
    binaries (:meth:`DriverContext.uses_nut_binary`), gets the bridge to NUT's driver
    (:func:`nuttrio.hw.nutdriver.nut_driver_factory`).

    Raises:
        ConfigError: If the driver is neither nuttrio's nor a NUT binary found, its module
            cannot be imported, or the section is invalid.
    """
    if context.uses_nut_binary(section):
        from .nutdriver import nut_driver_factory  # imports base: not at the top

        return nut_driver_factory(section, context, external=context.external_drivers)
    try:
        factory = DRIVERS[section.driver]
    except ImportError as exc:
        raise ConfigError(
            f"UPS {section.name}: driver {section.driver!r} cannot be loaded: {exc}",
            section.path,
            section.lineno,
        ) from exc
    return factory(section, context)
