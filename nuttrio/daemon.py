"""The daemon: drivers, the protocol server (and later the manager) in one Trio nursery.

Embedding::

    async with nuttrio.open_daemon(options) as daemon:
        ...                       # daemon.store, daemon.addresses, await daemon.reload()

or ``await nursery.start(run_daemon, options)``, which returns the :class:`Daemon` once every
driver has published its first state (or failed once) and the listeners are bound.

Drivers run under supervision: a driver that raises is logged, its UPS reads as
DRIVER-NOT-CONNECTED, and it is restarted after a back-off (ups.conf's ``retrydelay``, else
1 s doubling up to 30 s; reset after a minute of good running), for as long as the daemon
runs, as upsd keeps retrying a driver socket; past ``maxretry`` failures in a row (default
5) the restart storm is logged and shown as ``driver.state`` (:class:`RestartPolicy`).
Cancelling the daemon stops everything; nothing here installs signal handlers or calls
:func:`trio.run` (that is the CLI's job).
"""

from __future__ import annotations

import datetime
import enum
import functools
import logging
import math
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from .broadcast import Broadcast, Notification, Subscription
from .descriptions import Descriptions
from .hw import Driver, DriverContext, DriverFailed, create_driver, dummy
from .jsonshapes import JsonValue
from .mgmt.notify import Notifier
from .mgmt.process import DEFAULT_RUN_AS_USER, RunAs, command_user
from .mgmt.runner import Manager, NotifySink, client_tls, local_monitors, run_manager
from .nutconf import (
    DEFAULT_PORT,
    UPSD_USERS,
    ConfigError,
    Monitor,
    NutConfig,
    UpsmonConfig,
    UpsschedConfig,
    UpsSection,
    User,
    load_nut_config,
    load_upsmon_conf,
    load_upssched_conf,
    reload_nut_config,
)
from .nutconf.common import host_port
from .nutconf.notify_types import STATUS_NOTIFY_TYPES
from .nutconf.upsd_conf import LOOPBACK_NETWORKS
from .server import (
    ConnectionLimits,
    ListenAddress,
    ListenError,
    ServerCore,
    ServerSettings,
    open_listeners,
    serve_nut,
)
from .server.tls import expiry_warning, load_server_context, plaintext_allowed
from .state import StateStore, UpsEntry
from .web.settings import DEFAULT_WEB_PORT, WebSettings

if TYPE_CHECKING:
    from .web import WebApp

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_WEB_PORT",
    "Daemon",
    "DaemonOptions",
    "Role",
    "WebSettings",
    "open_daemon",
    "run_daemon",
    "serve",
]

log = logging.getLogger("nuttrio")

#: Seconds a secondary waits, after its shutdown, for queued notifications before exiting.
NOTIFY_DRAIN_TIMEOUT = 10.0


class Role(enum.Enum):
    """What the process does."""

    #: Drivers and the protocol server (NUT's upsd and drivers).
    ATTACH = "attach"
    #: ATTACH plus the manager that owns the shutdown (upsmon as primary).
    PRIMARY = "primary"
    #: The manager only, for a host fed by a UPS attached elsewhere (upsmon as secondary).
    SECONDARY = "secondary"


def _ups_names(names: Iterable[str]) -> frozenset[str]:
    """``--nut-driver`` values, lower-cased; ``all`` becomes ``*``."""
    return frozenset("*" if n.lower() == "all" else n.lower() for n in names)


@attrs.frozen
class DaemonOptions:
    """How to run the daemon.

    Attributes:
        confdir: A NUT configuration directory to read (any path-like), or ``None`` for
            the built-in simulated UPS ``sim`` (attach role only).
        listen: ``(host, port)`` pairs overriding upsd.conf's LISTEN lines; port 0 picks one.
        limits: Connection limits; ``max_clients`` is taken from MAXCONN when not set.
        role: Attach, primary or secondary.
        upssched: An upssched.conf to run in-process for the notifications (also used when
            upsmon.conf's NOTIFYCMD names upssched: then ``confdir/upssched.conf``).
        nut_drivers: UPS names served by NUT's driver binary even where nuttrio has a
            driver of its own (``--nut-driver``); ``"all"`` (or ``"*"``) for every UPS.
        external_drivers: Start no driver; serve each UPS from the NUT driver the system
            started, through its socket in STATEPATH (``--external-drivers``).
        web: ``(host, port)`` pairs to serve the web dashboard, API and /metrics on
            (none: no web server).
        web_optional: A web address that cannot be bound is a warning, not an error (the
            no-config demo's default address).
        web_settings: The dashboard's history and event-log sizes.
        web_tls: Serve the web over TLS only, with upsd.conf's CERTFILE (the NUT port's
            certificate; DISABLE_WEAK_SSL applies too).
        advertise: Announce the NUT port over mDNS as ``_nut._tcp`` (needs zeroconf).
    """

    confdir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    listen: tuple[tuple[str, int], ...] = attrs.field(default=(), converter=tuple)
    limits: ConnectionLimits = attrs.field(factory=ConnectionLimits)
    role: Role = Role.ATTACH
    upssched: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    nut_drivers: frozenset[str] = attrs.field(default=frozenset(), converter=_ups_names)
    external_drivers: bool = False
    web: tuple[tuple[str, int], ...] = ()
    web_optional: bool = False
    web_settings: WebSettings = attrs.field(factory=WebSettings)
    web_tls: bool = False
    advertise: bool = False


@attrs.define
class _Running:
    section: UpsSection
    driver: Driver
    scope: trio.CancelScope
    done: trio.Event


class Daemon:
    """A running attachment daemon. Obtained from :func:`open_daemon` or :func:`run_daemon`.

    Attributes:
        store: The UPS data (empty in the secondary role).
        core: The request handling of the server (``None`` in the secondary role).
        config: The NUT configuration in force, or ``None`` when running the simulator.
        listeners: The bound listeners.
    """

    def __init__(
        self,
        options: DaemonOptions,
        config: NutConfig | None,
        store: StateStore,
        core: ServerCore | None,
        nursery: trio.Nursery,
    ) -> None:
        self.options = options
        self.config = config
        self.store = store
        self.core = core
        self.listeners: Sequence[trio.SocketListener] = ()
        #: The manager and its notifier, in the primary and secondary roles.
        self.manager: Manager | None = None
        self.notifier: Notifier | None = None
        #: Every notification of the manager, for :meth:`notifications`.
        self.published: Broadcast[Notification] = Broadcast()
        #: The web server, when ``--web`` asked for one.
        self.web: WebApp | None = None
        self._nursery = nursery
        self._drivers: dict[str, _Running] = {}
        #: UPSes the program added with :meth:`add_ups` (lower-cased names): not ups.conf's.
        self._added: set[str] = set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The ``(host, port)`` of every listener, after binding."""
        return _addresses(self.listeners)

    @property
    def web_addresses(self) -> list[tuple[str, int]]:
        """The ``(host, port)`` of every web listener (none without a web server)."""
        return _addresses(self.web.listeners) if self.web is not None else []

    def notifications(self) -> Subscription[Notification]:
        """The manager's notifications (ONLINE, ONBATT, FSD...) from this call on.

        An async iterator, subscribed at once; ``async with`` it (or ``aclose()``) to stop.

        Each reader gets every notification, as NOTIFYCMD would, whatever NOTIFYFLAG says;
        one that falls 256 behind loses the newest (counted in ``published.dropped``). In
        the attach role there is no manager, and nothing comes.
        """
        return self.published.subscribe()

    def verdict(self) -> JsonValue:
        """The manager's verdict now (``nuttrio why``), or ``None`` if no manager runs."""
        if self.manager is None:
            return None
        machine = self.manager.machine
        now = trio.current_time()
        fed, needed = machine.fed(now), machine.policy.minsupplies
        return {
            "phase": machine.phase.name,
            "ups": [
                {"system": v.system, "critical": v.critical, "reason": v.reason}
                for v in machine.verdicts(now)
            ],
            "fed": fed,
            "minsupplies": needed,
            "shutdown_now": fed < needed,
        }

    def driver(self, name: str) -> Driver | None:
        """The driver running for UPS ``name`` (any case), or ``None``."""
        running = self._drivers.get(name.lower())
        return running.driver if running is not None else None

    async def start_driver(self, section: UpsSection, driver: Driver) -> None:
        """Create the UPS entry if needed and run ``driver`` for it under supervision.

        Returns once the driver has published its first state or failed once.
        """
        entry = self.store.get(section.name) or self.store.add(section.name, section.desc)
        done = trio.Event()
        policy = self._policy(section)
        scope = await self._nursery.start(_supervise, entry, driver, done, policy)
        self._drivers[section.name.lower()] = _Running(section, driver, scope, done)

    async def add_ups(self, name: str, driver: Driver, *, desc: str | None = None) -> UpsEntry:
        """Serve a UPS that is not in ups.conf, fed by ``driver`` (any :class:`Driver`).

        The program's own Python object becomes a UPS like the others: served over the NUT
        protocol, the web and the manager's local MONITORs, run under the same supervision
        (restarted with its back-off if it raises). A reload of ups.conf leaves it alone.
        Returns once the driver has published its first state or failed once.

        Raises:
            ValueError: If a UPS of that name (any case) is already served.
            RuntimeError: In the secondary role (no UPS is served there).
        """
        if self.core is None:
            raise RuntimeError("the secondary role serves no UPS")
        if self.store.get(name) is not None:
            raise ValueError(f"a UPS named {name!r} is already served")
        self._added.add(name.lower())
        await self.start_driver(UpsSection(name, "python", "", desc), driver)
        entry = self.store.get(name)
        assert entry is not None
        return entry

    async def remove_ups(self, name: str) -> None:
        """Stop serving a UPS added by :meth:`add_ups` (its driver is cancelled first).

        Raises:
            KeyError: If no UPS of that name was added by :meth:`add_ups`.
        """
        if name.lower() not in self._added:
            raise KeyError(name)
        self._added.discard(name.lower())
        await self.stop_driver(name)

    def _policy(self, section: UpsSection) -> RestartPolicy:
        """The restart policy of ``section`` (bad values were refused when it was loaded)."""
        if self.config is None:
            return RestartPolicy()
        return RestartPolicy.from_section(section, self.config.ups_globals)

    async def start_drivers(self, items: Sequence[tuple[UpsSection, Driver]]) -> None:
        """Start several drivers concurrently; returns when each has started or failed once.

        The UPS entries are created first, in the order given (LIST UPS shows that order).
        """
        for section, _ in items:
            if self.store.get(section.name) is None:
                self.store.add(section.name, section.desc)
        async with trio.open_nursery() as nursery:
            for section, driver in items:
                nursery.start_soon(self.start_driver, section, driver)

    async def stop_driver(self, name: str, *, drop: bool = True) -> None:
        """Stop the driver of UPS ``name`` and wait until it has let go of the UPS.

        Args:
            name: The UPS.
            drop: Also remove the UPS from the store (its FSD latch and logins go too).
        """
        running = self._drivers.pop(name.lower(), None)
        if running is not None:
            running.scope.cancel()
            await running.done.wait()
        if drop:
            self.store.remove(name)

    def _reload_manager(self) -> None:
        """Re-read upsmon.conf for the manager and its notifier (MONITOR lines excepted).

        The MONITOR lines served in-process are checked against the upsd.users in force
        (just reloaded, or kept if that reload failed); if upsd would refuse one, the
        reload fails and the running settings stay.
        """
        assert self.manager is not None
        try:
            upsmon, _ = load_manager_config(self.options)
            check_local_logins(upsmon, self)
            self.manager.reload(upsmon)
            if self.notifier is not None:
                self.notifier.reconfigure(upsmon)
        except (ConfigError, OSError, ValueError) as exc:
            log.error("upsmon.conf reload failed, keeping the running settings: %s", exc)
            return
        log.info("upsmon.conf reloaded")

    def fsd_refusal(self, mon: Monitor) -> str | None:
        """Why upsd would refuse an FSD from ``mon`` with the upsd.users in force now."""
        if self.config is None:
            return None
        return _login_problem(mon, self.config.users, fsd=True)

    async def reload(self) -> None:
        """Re-read ups.conf and upsd.users as upsd does on SIGHUP, and upsmon.conf as upsmon does.

        Connections stay open. New UPSes start, removed ones stop, changed ones restart
        their driver (all of them when ups.conf's global settings changed: every driver
        reads them); users take effect at each connection's next action. If the new
        configuration is bad, it is logged and the running one stays in force. upsmon.conf
        is read last, so that its MONITOR lines are checked against the new upsd.users.
        """
        await self._reload_nut()
        if self.manager is not None:
            self._reload_manager()

    async def _reload_nut(self) -> None:
        if self.config is None:
            return
        try:
            new = reload_nut_config(self.config)
            made = _create_drivers(new, self.options, self.store)
            drivers = {s.name.lower(): (s, d) for s, d in made}
        except (ConfigError, OSError) as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        for warning in new.warnings:
            log.warning("%s", warning)
        globals_changed = new.ups_globals != self.config.ups_globals
        if globals_changed:
            log.info("ups.conf's global settings changed; restarting every driver")
        self.config = new
        if self.core is not None:
            self.core.users = new.users
            tls = self.core.settings.tls_available
            if new.upsd.tls_configured != tls:
                log.warning(
                    "upsd.conf's certificate settings changed: they take effect at the restart "
                    "(NUTTRIO_PLAINTEXT_FROM takes effect now)"
                )
            self.core.settings = _settings(new, tls_available=tls)
        self.store.maxage = new.upsd.maxage
        for name in self._added & drivers.keys():
            log.error("ups.conf's [%s] ignored: the program serves a UPS of that name", name)
            del drivers[name]
        for name in list(self._drivers):
            if name not in drivers and name not in self._added:
                log.info("UPS %s removed", self._drivers[name].section.name)
                await self.stop_driver(name)
        to_start = []
        for name, (section, driver) in drivers.items():
            running = self._drivers.get(name)
            entry = self.store.get(name)
            if entry is not None:
                entry.desc = section.desc
            if (
                running is not None
                and not globals_changed
                and _same_driver(running.section, section)
            ):
                running.section = section
                continue
            if running is not None:
                log.info("UPS %s changed; restarting its driver", section.name)
                await self.stop_driver(name, drop=False)
            else:
                log.info("UPS %s added", section.name)
            to_start.append((section, driver))
        await self.start_drivers(to_start)
        # ups.conf's order; the program's UPSes (not named) stay after them.
        self.store.reorder([s.name for s in new.ups if s.name.lower() in drivers])
        log.info("configuration reloaded")


def _addresses(listeners: Sequence[trio.SocketListener]) -> list[tuple[str, int]]:
    out = []
    for listener in listeners:
        host, port = listener.socket.getsockname()[:2]
        out.append((str(host), int(port)))
    return out


#: The notifications a change of ups.status causes (upsmon's ONLINE, ONBATT and the flags').
_STATUS_TYPES = frozenset(
    {"ONLINE", "ONBATT", *(t for pair in STATUS_NOTIFY_TYPES.values() for t in pair)}
)


class _NotifyTee:
    """The manager's notifier that also publishes each notification.

    To :meth:`Daemon.notifications` readers, and, with a web server, to its event log; for
    a MONITOR served in-process (``local``: system -> the store's entry), a status
    notification is also timed from the status change in the store (the web's
    ``nuttrio_event_to_notify_seconds`` histogram).
    """

    def __init__(
        self,
        sink: Notifier,
        published: Broadcast[Notification],
        web: WebApp | None,
        local: Mapping[str, UpsEntry],
    ) -> None:
        self._sink = sink
        self._published = published
        self._web = web
        self._local = local

    def send(self, type: str, system: str | None, detail: str = "") -> None:
        self._sink.send(type, system, detail)
        self._published.publish(Notification(type, system, detail, trio.current_time()))
        if self._web is None:
            return
        self._web.events.add("notify", " ".join(w for w in (type, detail) if w), system)
        entry = self._local.get(system or "")
        if entry is not None and type in _STATUS_TYPES:
            self._web.notify_latency.observe(trio.current_time() - entry.status_changed_at)

    async def wall(self, message: str) -> object:
        return await self._sink.wall(message)


def _local_entries(upsmon: UpsmonConfig, daemon: Daemon) -> dict[str, UpsEntry]:
    """The MONITORs served in-process: system -> the store's entry of its UPS."""
    local = local_monitors(upsmon, daemon.store, daemon.addresses)
    entries = {}
    for mon in upsmon.monitors:
        entry = daemon.store.get(mon.ups)
        if mon.system in local and entry is not None:
            entries[mon.system] = entry
    return entries


async def _start_web(daemon: Daemon, nursery: trio.Nursery) -> None:
    """Serve the web dashboard if the options ask for it (``daemon.web``).

    Raises:
        ListenError: If a web address cannot be bound (a warning instead with
            ``web_optional``).
    """
    options = daemon.options
    if not options.web:
        return
    addresses = [
        ListenAddress(h, p, f"--web {host_port(h, p)}", required=not options.web_optional)
        for h, p in options.web
    ]
    tls = web_tls_context(daemon.config) if options.web_tls else None
    try:
        listeners = await open_listeners(addresses)
    except ListenError as exc:
        if not options.web_optional:
            raise
        log.warning("web dashboard not started: %s", exc)
        return

    def users() -> Mapping[str, User]:
        return daemon.config.users if daemon.config is not None else {}

    from .web import WebSource, serve_web  # the web stack, only when a web server is asked for

    source = WebSource(
        daemon.store,
        users=users,
        stats=lambda: daemon.core.stats if daemon.core is not None else None,
        verdict=daemon.verdict,
        describe=daemon.core.descriptions.var if daemon.core is not None else lambda name: None,
        plaintext_ok=functools.partial(_plaintext_ok, daemon),
    )
    serve = functools.partial(serve_web, tls_context=tls)
    daemon.web = await nursery.start(serve, source, listeners, options.web_settings)


def _plaintext_ok(daemon: Daemon, address: str) -> bool:
    """The NUT port's TLS rule now (a reload may change it), for the plain-HTTP web."""
    settings = daemon.core.settings if daemon.core is not None else None
    return settings is None or plaintext_allowed(address, settings.plaintext_from)


async def _start_advertising(daemon: Daemon, nursery: trio.Nursery) -> None:
    """Announce ``_nut._tcp`` on the NUT listeners (``--advertise``).

    Raises:
        ConfigError: If the zeroconf package is missing.
    """
    from .advertise import advertise

    try:
        await nursery.start(advertise, daemon.addresses)
    except ImportError:
        raise ConfigError(
            "--advertise needs the zeroconf package: pip install 'nuttrio[mdns]'"
        ) from None


def web_tls_context(config: NutConfig | None) -> ssl.SSLContext:
    """The web's TLS context from upsd.conf's CERTFILE (chain and key in one PEM file).

    Raises:
        ConfigError: Without CERTFILE, or if the file cannot be loaded.
    """
    upsd = config.confdir / "upsd.conf" if config is not None else None
    if config is None or config.upsd.certfile is None:
        raise ConfigError(
            "--web-tls needs CERTFILE in upsd.conf (the NUT port's certificate)", upsd
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if config.upsd.disable_weak_ssl:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.upsd.certfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"CERTFILE {config.upsd.certfile}: {exc}", upsd) from None
    return context


def _same_driver(a: UpsSection, b: UpsSection) -> bool:
    """Whether two sections run the same driver the same way (``desc`` aside)."""

    def key(s: UpsSection) -> tuple[str, str, dict[str, str]]:
        return s.driver, s.port, {k: v for k, v in s.options.items() if k != "desc"}

    return key(a) == key(b)


@attrs.frozen
class RestartPolicy:
    """How the supervisor restarts a driver that failed.

    Attributes:
        delay: ups.conf's ``retrydelay``: a fixed delay between restarts; ``None`` for a
            back-off from :attr:`first`, doubling up to :attr:`cap`.
        storm_after: ups.conf's ``maxretry``: failures in a row after which the restarts
            are a *restart storm*: logged as an error and shown as ``driver.state``
            ``restart-storm`` (the restarts go on, at the same pace).
        first: The first back-off delay.
        cap: The longest delay.
        good_run: A run this long resets the count and the back-off.
    """

    delay: float | None = None
    storm_after: int = 5
    first: float = 1.0
    cap: float = 30.0
    good_run: float = 60.0

    @classmethod
    def from_section(cls, section: UpsSection, ups_globals: Mapping[str, str]) -> RestartPolicy:
        """The policy of a section: its own maxretry/retrydelay, else ups.conf's globals.

        Raises:
            ConfigError: If either is not a positive number (with the section's line).
        """
        values: dict[str, float] = {}
        for key in ("maxretry", "retrydelay"):
            text = section.options.get(key, ups_globals.get(key))
            if text is None:
                continue
            try:
                values[key] = float(text)
            except ValueError:
                values[key] = 0.0
            if values[key] <= 0 or (key == "maxretry" and not values[key].is_integer()):
                raise ConfigError(
                    f"UPS [{section.name}]: {key} = {text!r} is not a positive number",
                    section.path,
                    section.lineno,
                )
        return cls(delay=values.get("retrydelay"), storm_after=int(values.get("maxretry", 5)))

    def delay_after(self, failures: int) -> float:
        """Seconds to wait before the next start, after ``failures`` failures in a row."""
        if self.delay is not None:
            return self.delay
        return min(self.first * 2.0 ** (failures - 1), self.cap)


async def _supervise(
    entry: UpsEntry,
    driver: Driver,
    done: trio.Event,
    policy: RestartPolicy,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await _supervise_loop(entry, driver, policy, task_status)
    finally:
        done.set()


async def _supervise_loop(
    entry: UpsEntry,
    driver: Driver,
    policy: RestartPolicy,
    task_status: trio.TaskStatus[trio.CancelScope],
) -> None:
    """Run ``driver`` again and again: after it raises or returns, wait, then restart.

    The UPS reads DRIVER-NOT-CONNECTED while the driver is down; past
    ``policy.storm_after`` failures in a row it is a restart storm (an error is logged
    once, ``driver.state`` reads ``restart-storm``); a good run ends the storm.
    Cancellation stops the driver and the loop.
    """
    failures_log = _FailureLog(entry.name)
    failures = 0
    with trio.CancelScope() as scope:
        reported = False
        while True:
            began = trio.current_time()
            try:
                with entry.connect() as link:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(driver.run, link)
                        failures_log.reset()
                        entry.set_driver_state(None)
                        if not reported:
                            reported = True
                            task_status.started(scope)
                log.warning("driver for UPS %s stopped", entry.name)
            except Exception as exc:
                failures_log.log(exc)
            if not reported:
                reported = True
                task_status.started(scope)
            failures = 1 if trio.current_time() - began > policy.good_run else failures + 1
            delay = policy.delay_after(failures)
            if failures == policy.storm_after:
                log.error(
                    "driver for UPS %s: restart storm, %d failures in a row (maxretry); "
                    "still restarting it every %g s",
                    entry.name,
                    failures,
                    delay,
                )
            entry.set_driver_state(
                "restart-storm" if failures >= policy.storm_after else "restarting"
            )
            await trio.sleep(delay)


def _one_line_error(exc: BaseException) -> ConfigError | DriverFailed | None:
    """The one-line error ``exc`` is, or is the only error in (a driver's nursery wraps it).

    One-line errors are ConfigError and DriverFailed.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, ConfigError | DriverFailed) else None


def _mtime(path: Path | None) -> int | None:
    try:
        return path.stat().st_mtime_ns if path is not None else None
    except OSError:
        return None


class _FailureLog:
    """How one UPS's driver failures are logged while it is restarted.

    A configuration error (a bad ``.dev`` file, say) is one line with the file, the line
    and what is wrong, logged once per change of that file (the same error from the same
    file is not logged again at every retry); a :class:`~nuttrio.hw.DriverFailed` (a NUT
    driver that exited, say) is one line each time; anything else is logged with its
    traceback.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._seen: tuple[str, int | None] | None = None

    def reset(self) -> None:
        """The driver started: a later error is news again."""
        self._seen = None

    def log(self, exc: Exception) -> None:
        error = _one_line_error(exc)
        if not isinstance(error, ConfigError):
            if error is None:
                log.error("driver for UPS %s failed", self.name, exc_info=exc)
            else:
                log.error("driver for UPS %s failed: %s", self.name, error)
            self._seen = None
            return
        key = (str(error), _mtime(error.path))
        if key != self._seen:
            log.error("driver for UPS %s failed: %s", self.name, error)
        else:
            log.debug("driver for UPS %s failed again: %s", self.name, error)
        self._seen = key


def _create_drivers(
    config: NutConfig, options: DaemonOptions, store: StateStore | None = None
) -> list[tuple[UpsSection, Driver]]:
    """A driver for every section of ``config``, in order; restart settings checked too.

    Raises:
        ConfigError: For the first bad section.
    """
    context = driver_context(config, options, store)
    names = {section.name.lower() for section in config.ups}
    unknown = sorted(options.nut_drivers - names - {"*"})
    if unknown:
        raise ConfigError(
            f"--nut-driver {', '.join(unknown)}: no such UPS in ups.conf",
            config.confdir / "ups.conf",
        )
    out = []
    for section in config.ups:
        RestartPolicy.from_section(section, config.ups_globals)
        out.append((section, create_driver(section, context)))
    return out


def driver_context(
    config: NutConfig, options: DaemonOptions | None = None, store: StateStore | None = None
) -> DriverContext:
    """What the drivers of ``config`` may know: confdir, STATEPATH, ups.conf's globals, MAXAGE.

    ``options`` adds which UPSes NUT's driver binaries serve (``--nut-driver``,
    ``--external-drivers``).
    """
    return DriverContext(
        confdir=config.confdir,
        statepath=config.upsd.statepath,
        ups_globals=config.ups_globals,
        maxage=config.upsd.maxage,
        nut_drivers=options.nut_drivers if options is not None else frozenset(),
        external_drivers=options.external_drivers if options is not None else False,
        store=store,
        sections=tuple(config.ups),
    )


def _settings(config: NutConfig, *, tls_available: bool) -> ServerSettings:
    upsd = config.upsd
    # Without TLS (started without a certificate) everyone talks in plaintext, as with upsd;
    # with it, a reload may change NUTTRIO_PLAINTEXT_FROM but never drops the enforcement.
    plaintext = None
    if tls_available:
        plaintext = upsd.plaintext_from if upsd.plaintext_from is not None else LOOPBACK_NETWORKS
    return ServerSettings(
        maxage=upsd.maxage,
        trackingdelay=upsd.trackingdelay,
        tls_available=tls_available,
        plaintext_from=plaintext,
    )


def _server_tls(config: NutConfig) -> ssl.SSLContext | None:
    """upsd.conf's TLS context (see :func:`~nuttrio.server.tls.load_server_context`).

    Raises:
        ConfigError: If TLS is configured and cannot be set up.
    """
    path = config.confdir / "upsd.conf"
    context = load_server_context(config.upsd, path)
    if context is None and config.upsd.plaintext_from is not None:
        log.warning(
            "%s: NUTTRIO_PLAINTEXT_FROM has no effect without CERTFILE: with no certificate "
            "every client may talk in plaintext, as with upsd",
            path,
        )
    elif context is not None:
        assert config.upsd.certfile is not None
        warning = expiry_warning(
            config.confdir / config.upsd.certfile, datetime.datetime.now(datetime.UTC)
        )
        if warning is not None:
            log.warning("%s", warning)
        where = ", ".join(str(n) for n in config.upsd.plaintext_networks() or ()) or "nowhere"
        log.info("TLS configured: commands without STARTTLS are accepted from %s", where)
    return context


def _listen_addresses(options: DaemonOptions, config: NutConfig | None) -> list[ListenAddress]:
    """Where to listen, each with its origin for the messages.

    ``--listen`` addresses are each required; upsd.conf's LISTEN lines are skipped with a
    warning when they cannot be bound, as upsd 2.8.0 does; the built-in simulator listens
    on 127.0.0.1:3493.
    """
    if options.listen:
        return [
            ListenAddress(h, p, f"--listen {host_port(h, p)}", required=True)
            for h, p in options.listen
        ]
    if config is None:
        return [ListenAddress("127.0.0.1", DEFAULT_PORT, "the built-in default", required=True)]
    path = config.confdir / "upsd.conf"
    return [
        ListenAddress(
            item.host,
            item.port,
            f"{path}:{item.lineno}" if item.lineno else f"{path} (no LISTEN line: the default)",
        )
        for item in config.upsd.listen
    ]


def _limits(options: DaemonOptions, config: NutConfig | None) -> ConnectionLimits:
    limits = options.limits
    if config is not None and limits.max_per_peer == ConnectionLimits().max_per_peer:
        limits = attrs.evolve(limits, max_per_peer=config.upsd.maxconn_per_peer)
    if limits.max_clients is None and config is not None and config.upsd.maxconn is not None:
        # upsd counts driver sockets in MAXCONN; nuttrio counts its in-process drivers alike.
        clients = max(config.upsd.maxconn - len(config.ups), 1)
        limits = attrs.evolve(limits, max_clients=clients)
    return limits


def load_manager_config(options: DaemonOptions) -> tuple[UpsmonConfig, UpsschedConfig | None]:
    """Read upsmon.conf (and upssched.conf when used) for the primary and secondary roles.

    Also checks that RUN_AS_USER (or the default ``nut``, see
    :func:`~nuttrio.mgmt.process.command_user`) exists. The MONITOR lines served
    in-process are checked by :func:`check_local_logins`, once the listeners are bound.

    Raises:
        ConfigError: If there is no configuration directory or a file is bad.
    """
    if options.confdir is None:
        raise ConfigError(
            f"--{options.role.value} needs a NUT configuration directory with upsmon.conf "
            "(--nut-config DIR or NUT_CONFPATH)"
        )
    upsmon = load_upsmon_conf(options.confdir / "upsmon.conf")
    for warning in upsmon.warnings:
        log.warning("%s", warning)
    run_as_user(upsmon)
    for mon in upsmon.monitors:
        client_tls(upsmon, mon)  # a CA or certificate that cannot be loaded stops us now
    sched_path = options.upssched
    if sched_path is None and upsmon.uses_upssched:
        sched_path = options.confdir / "upssched.conf"
    sched = load_upssched_conf(sched_path) if sched_path is not None else None
    if sched is not None:
        for warning in sched.warnings:
            log.warning("%s", warning)
    return upsmon, sched


def run_as_user(upsmon: UpsmonConfig) -> RunAs | None:
    """The user the notifications' commands run as (``None``: this process's own).

    Raises:
        ConfigError: If RUN_AS_USER (or the default user) does not exist, with the line.
    """
    try:
        return command_user(upsmon.run_as_user)
    except KeyError:
        if upsmon.run_as_user is None:
            raise ConfigError(
                f"RUN_AS_USER is not set and the default user {DEFAULT_RUN_AS_USER} does not "
                "exist: started as root, upsmon runs NOTIFYCMD as that user; set RUN_AS_USER",
                upsmon.path,
            ) from None
        raise ConfigError(
            f"RUN_AS_USER {upsmon.run_as_user}: no such user",
            upsmon.path,
            upsmon.run_as_user_line or None,
        ) from None


def _login_problem(mon: Monitor, users: Mapping[str, User], *, fsd: bool = False) -> str | None:
    """Why upsd would refuse this MONITOR's LOGIN or PRIMARY (and its FSD, for a primary).

    ``None`` if it would not. With ``fsd``, the FSD right is checked whatever the
    MONITOR's role (upsd checks the action, not the role).
    """
    user = users.get(mon.username)
    if user is None:
        return f"user {mon.username!r} is not in {UPSD_USERS}: upsd would refuse its LOGIN"
    if user.password is None:
        return f"user {mon.username!r} has no password in {UPSD_USERS}: upsd allows it nothing"
    if user.password != mon.password:
        return (
            f"the password of user {mon.username!r} is not the one in {UPSD_USERS}: upsd "
            "would refuse its LOGIN"
        )
    if not user.allows("login", mon.password):
        return (
            f"user {mon.username!r} may not LOGIN: give it 'upsmon secondary' (or 'upsmon "
            f"primary') in {UPSD_USERS}"
        )
    if mon.primary and not user.allows("primary", mon.password):
        return (
            f"user {mon.username!r} has no 'upsmon primary' in {UPSD_USERS}: upsd would refuse "
            "PRIMARY, so the real upsmon could never set FSD"
        )
    if (mon.primary or fsd) and not user.allows("fsd", mon.password):
        return (
            f"user {mon.username!r} has no 'fsd' action in {UPSD_USERS}: upsd would refuse "
            "its FSD (give it 'upsmon primary')"
        )
    return None


def check_local_logins(upsmon: UpsmonConfig, daemon: Daemon) -> None:
    """Refuse a MONITOR served in-process with credentials upsd.users would refuse.

    In the primary role the manager follows its own UPSes through the store and never
    logs in; this makes it no more powerful than the real upsmon: LOGIN needs the user
    and password of upsd.users (and the ``login`` action), a ``primary`` MONITOR also
    ``upsmon primary`` (or ``master``). A MONITOR polled over TCP is checked by the
    server it connects to, as usual.

    Raises:
        ConfigError: For the first MONITOR upsd would refuse, with upsmon.conf's line.
    """
    if daemon.config is None:
        return
    local = local_monitors(upsmon, daemon.store, daemon.addresses)
    for mon in upsmon.monitors:
        if mon.system not in local:
            continue
        problem = _login_problem(mon, daemon.config.users)
        if problem is not None:
            users = daemon.config.confdir / UPSD_USERS
            raise ConfigError(
                f"MONITOR {mon.system} (served by this nuttrio): {problem} ({users})",
                upsmon.path,
                mon.lineno or None,
            )


async def _run_attach(
    options: DaemonOptions,
    nursery: trio.Nursery,
) -> Daemon:
    config = load_nut_config(options.confdir) if options.confdir is not None else None
    store = StateStore(maxage=config.upsd.maxage if config is not None else 15.0)
    if config is not None:
        sections = _create_drivers(config, options, store)
        for warning in config.warnings:
            log.warning("%s", warning)
        descriptions = Descriptions.load(config.upsd.datapath)
        tls_context = _server_tls(config)
        settings = _settings(config, tls_available=tls_context is not None)
        users = config.users
    elif options.nut_drivers or options.external_drivers:
        raise ConfigError(
            "--nut-driver and --external-drivers need a NUT configuration directory with "
            "ups.conf (--nut-config DIR or NUT_CONFPATH)"
        )
    else:
        tls_context = None
        section, driver = dummy.simulated_ups()
        sections = [(section, driver)]
        descriptions = Descriptions.load(None)
        settings = ServerSettings()
        users = {}
    store.maxage = settings.maxage
    nursery.start_soon(store.run)
    core = ServerCore(store, users, descriptions, settings)
    daemon = Daemon(options, config, store, core, nursery)
    await daemon.start_drivers(sections)
    listeners = await open_listeners(_listen_addresses(options, config))
    daemon.listeners = await nursery.start(
        functools.partial(serve_nut, tls_context=tls_context),
        core,
        listeners,
        _limits(options, config),
    )
    return daemon


async def run_daemon(
    options: DaemonOptions,
    *,
    task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run nuttrio in the role the options give, until cancelled.

    In the secondary role it also returns once the shutdown is done and SHUTDOWNEXIT has
    passed (the process then exits, as upsmon does). In the primary role the attachment
    daemon keeps serving after the shutdown command, until the system stops it.

    Raises:
        ConfigError: Before ``task_status.started``, for a bad configuration.
        OSError: Before ``task_status.started``, if a listener cannot be bound.
    """
    manager_config = None
    if options.role is not Role.ATTACH:
        manager_config = load_manager_config(options)
    async with trio.open_nursery() as nursery:
        if options.role is Role.SECONDARY:
            daemon = Daemon(options, None, StateStore(), None, nursery)
        else:
            daemon = await _run_attach(options, nursery)
        await _start_web(daemon, nursery)
        if options.advertise and daemon.listeners:
            await _start_advertising(daemon, nursery)
        if manager_config is not None:
            upsmon, sched = manager_config
            if options.role is Role.PRIMARY:
                check_local_logins(upsmon, daemon)
            notifier = Notifier(upsmon, upssched=sched, run_as=run_as_user(upsmon))
            daemon.notifier = notifier
            await nursery.start(notifier.run)
            maxage = daemon.config.upsd.maxage if daemon.config is not None else 15.0
            store = daemon.store if options.role is Role.PRIMARY else None
            local = _local_entries(upsmon, daemon)
            sink = _NotifyTee(notifier, daemon.published, daemon.web, local)
            daemon.manager = await nursery.start(
                _run_manager_then, upsmon, notifier, sink, store, maxage, daemon, nursery
            )
        task_status.started(daemon)
        await trio.sleep(math.inf)


#: ``await nursery.start(nuttrio.serve, options)``: nuttrio in any role inside another Trio
#: program, started once serving (the :class:`Daemon` is the start value); the same
#: function as :func:`run_daemon`.
serve = run_daemon


async def _run_manager_then(
    upsmon: UpsmonConfig,
    notifier: Notifier,
    sink: NotifySink,
    store: StateStore | None,
    maxage: float,
    daemon: Daemon,
    daemon_nursery: trio.Nursery,
    *,
    task_status: trio.TaskStatus[Manager] = trio.TASK_STATUS_IGNORED,
) -> None:
    await run_manager(
        upsmon,
        sink,
        store=store,
        maxage=maxage,
        listeners=daemon.addresses,
        refusal=daemon.fsd_refusal,
        task_status=task_status,
    )
    if daemon.options.role is Role.SECONDARY:
        # Let the notifications already queued (FSD, SHUTDOWN, the wall) finish before the
        # process exits, as upsmon's forked notifiers outlive it; but not for ever.
        with trio.move_on_after(NOTIFY_DRAIN_TIMEOUT):
            await notifier.drain()
        daemon_nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_daemon(options: DaemonOptions) -> AsyncIterator[Daemon]:
    """Run the daemon for the duration of the ``async with`` block.

    Leaving the block stops drivers and closes every connection.

    Raises:
        ConfigError: On entry, for a bad configuration (the error itself, not a group).
        ListenError: On entry, if no listener could be bound (or a required one).
    """
    started = False
    try:
        async with trio.open_nursery() as nursery:
            daemon: Daemon = await nursery.start(run_daemon, options)
            started = True
            try:
                yield daemon
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = None if started else _single_leaf(group)
        if isinstance(leaf, ConfigError | ListenError):
            raise leaf from None
        raise


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside nested groups, or ``None`` if there are several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc
