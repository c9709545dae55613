"""The manager on Trio: follows each MONITOR, feeds the state machine, carries out actions.

General theory of operation
---------------------------
Every MONITOR line gets a *source* task that turns what it sees into machine events:

* a UPS attached in this process (``--primary``: its name is in the local state store and
  the MONITOR host and port are one of this process's own listeners, see
  :func:`local_address`) is followed through the store's latest-value watch, so a
  status change at the driver reaches the machine at once, without polling; the manager
  counts itself as a login on it, as upsmon's LOGIN does;
* any other UPS is polled over the NUT protocol as upsmon does: STARTTLS attempt, USERNAME,
  PASSWORD, LOGIN, PRIMARY (MASTER if refused) for a primary, then ``GET VAR <ups>
  ups.status`` every POLLFREQ (POLLFREQALERT while on battery or unreachable) through
  :mod:`nuttrio.client`, reconnecting at the next poll after any failure (only the logging
  of repeated failures backs off).

One decision task owns the :class:`~nuttrio.mgmt.machine.Machine`: it waits for the next
event or the machine's next deadline, steps the machine and carries out the actions.
Notifications go to a non-blocking notifier; FSD, NUMLOGINS and LOGOUT requests run in
their own tasks; the shutdown (POWERDOWNFLAG, then SHUTDOWNCMD) runs in the decision task
itself, so nothing a notification command does can delay or stop it.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import math
import os
import shlex
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import attrs
import trio

from ..client import NutClient, NutError, client_ssl_context, wrap_nut_stream
from ..nutconf import CertHost, ConfigError, Monitor, UpsmonConfig
from ..nutconf.common import is_nss_database
from ..protocol import RemoteProtocolError
from ..state import LoginRecord, StateStore, UpsEntry, UpsSnapshot
from .machine import (
    Action,
    Event,
    Logout,
    Machine,
    MonitorSpec,
    Notify,
    NumLogins,
    Observed,
    Policy,
    PollFailed,
    QueryNumLogins,
    RunShutdown,
    SetFsd,
    Tick,
    UserFsd,
    policy_fields,
)

__all__ = [
    "POWERDOWN_MAGIC",
    "ClientTLS",
    "Manager",
    "NotifySink",
    "Reading",
    "check_powerdown_flag",
    "client_tls",
    "local_address",
    "local_monitors",
    "machine_for",
    "read_once",
    "run_manager",
]

log = logging.getLogger("nuttrio.mgmt")

#: What upsmon writes into POWERDOWNFLAG (and ``upsmon -K`` looks for).
POWERDOWN_MAGIC = "upsmon-shutdown-file"
#: The wall message upsmon sends, whatever NOTIFYFLAG says, when the shutdown starts.
SHUTDOWN_WALL = "Executing automatic power-fail shutdown"
#: Seconds allowed for each request to a remote attachment daemon (libupsclient: 5 s).
REQUEST_TIMEOUT = 5.0
#: Seconds allowed for SHUTDOWNCMD to return (it normally only starts the OS shutdown).
SHUTDOWNCMD_TIMEOUT = 120.0
_EXTRA_VARS = ("battery.charge", "battery.runtime")
# What a remote server or the network can do to a request (ConnectionError and ssl.SSLError
# are OSErrors; RemoteProtocolError is a server speaking nonsense).
_CONNECTION_ERRORS = (
    OSError,
    RemoteProtocolError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


class NotifySink(Protocol):
    """Where notifications go (see :class:`nuttrio.mgmt.notify.Notifier`)."""

    def send(self, type: str, system: str | None, detail: str = "") -> None:
        """Queue a notification; never blocks."""
        ...

    async def wall(self, message: str) -> object:
        """Send ``message`` to every terminal, whatever NOTIFYFLAG says."""
        ...


def machine_for(config: UpsmonConfig, start: float) -> Machine:
    """Build the state machine for an upsmon.conf (per-UPS thresholds resolved)."""
    return Machine(_specs(config), _policy(config), start)


def _policy(config: UpsmonConfig) -> Policy:
    return Policy(**{name: getattr(config, name) for name in policy_fields()})


def _specs(config: UpsmonConfig) -> list[MonitorSpec]:
    specs = []
    for mon in config.monitors:
        triggers = config.triggers_for(mon.system)
        specs.append(
            MonitorSpec(
                mon.system,
                mon.power_value,
                mon.primary,
                runtime_below=triggers.runtime_below,
                charge_below=triggers.charge_below,
                onbatt_after=triggers.onbatt_after,
            )
        )
    return specs


def _monitor_key(mon: Monitor) -> tuple[object, ...]:
    return (mon.system, mon.ups, mon.host, mon.port, mon.username, mon.password, mon.primary)


def check_powerdown_flag(config: UpsmonConfig) -> bool:
    """``upsmon -K``: whether POWERDOWNFLAG is configured, exists and holds the flag."""
    path = config.powerdownflag
    if path is None:
        return False
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(len(POWERDOWN_MAGIC)) == POWERDOWN_MAGIC
    except OSError:
        return False


def _write_powerdown_flag(path: Path) -> None:
    """Write the flag atomically: a reader sees no file or the whole flag, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(POWERDOWN_MAGIC)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- which MONITOR lines this process serves itself --------------------------------------

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _candidates(host: str) -> list[_IPAddress]:
    """The addresses a MONITOR host names: ``localhost`` resolved, an IP literal as is.

    Any other name counts as another machine (it is polled over TCP, where upsd's own
    checks apply, so a wrong guess costs a connection, never a check).
    """
    if host.lower() == "localhost":
        try:
            infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0])) for i in infos))
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return []


def _is_own_address(address: _IPAddress) -> bool:
    """Whether ``address`` belongs to this machine (a socket can be bound to it)."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def local_address(host: str, port: int, listeners: Sequence[tuple[str, int]]) -> str | None:
    """The address at which ``host:port`` reaches one of this process's own listeners.

    A listener on ``0.0.0.0`` covers every IPv4 address of this machine, one on ``::``
    every IPv6 address (Trio's listeners are IPv6-only, as upsd's). ``localhost`` is
    resolved; another host name never counts as local.

    Args:
        host: The MONITOR line's host (IPv6 without brackets).
        port: The MONITOR line's port.
        listeners: ``(host, port)`` of every bound listener (``Daemon.addresses``).

    Returns:
        The address a client connecting there would come from (what ``LIST CLIENT``
        shows for it), or ``None`` if no listener answers there.
    """
    bound = [(ipaddress.ip_address(h), p) for h, p in listeners if p == port]
    for address in _candidates(host):
        for listener, _ in bound:
            if listener == address:
                return str(address)
            if (
                listener.is_unspecified
                and listener.version == address.version
                and _is_own_address(address)
            ):
                return str(address)
    return None


def local_monitors(
    config: UpsmonConfig, store: StateStore | None, listeners: Sequence[tuple[str, int]]
) -> dict[str, str]:
    """The MONITOR lines served in this process: ``system`` -> client address.

    A MONITOR is local when its UPS is in ``store`` and its host and port reach one of
    ``listeners`` (see :func:`local_address`); every other one is polled over TCP.
    """
    out: dict[str, str] = {}
    if store is None:
        return out
    for mon in config.monitors:
        address = local_address(mon.host, mon.port, listeners)
        if address is not None and store.get(mon.ups) is not None:
            out[mon.system] = address
    return out


# -- sources -------------------------------------------------------------------------------


class _Source(Protocol):
    system: str

    async def run(
        self, manager: Manager, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...

    async def set_fsd(self) -> bool: ...

    async def numlogins(self) -> int | None: ...

    async def logout(self) -> None: ...


#: Why upsd would refuse a MONITOR's FSD now, or ``None`` if it would not.
Refusal = Callable[[Monitor], str | None]


class _LocalSource:
    """A UPS attached in this process, followed through the state store's watch.

    No polling: the source wakes when the UPS's snapshot changes and at its MAXAGE edge
    (the daemon's store timer publishes the UPS as silent then; the source wakes at the
    same edge itself, so that a store without that timer is followed alike). Only while
    the UPS cannot be read does it re-submit the failure every poll interval, so that
    NOCOMM repeats as upsmon's does.
    """

    def __init__(
        self,
        mon: Monitor,
        entry: UpsEntry,
        maxage: float,
        address: str,
        refusal: Refusal | None = None,
    ) -> None:
        self.system = mon.system
        self.mon = mon
        self.entry = entry
        self.maxage = maxage
        self.address = address
        self._refusal = refusal
        self._token = object()

    def _event(self, snap: UpsSnapshot, now: float) -> Observed | PollFailed:
        if not snap.connected:
            return PollFailed(self.system, now, "driver not connected")
        if snap.data_stale or self.entry.is_stale(self.maxage):
            return PollFailed(self.system, now, "data stale")
        variables = {
            name: value
            for name in (*_EXTRA_VARS, "ups.alarm")
            if (value := snap.value(name)) is not None
        }
        return Observed(self.system, snap.status, now, variables)

    async def run(
        self, manager: Manager, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Submit each change of the UPS to ``manager`` until cancelled (then log out)."""
        self.entry.add_login(self._token, LoginRecord(self.address, self.mon.username))
        task_status.started()
        try:
            last: Observed | PollFailed | None = None
            retry_at = math.inf  # when a failure is submitted again (NOCOMM repeats)
            while True:
                version, snap = self.entry.versioned.get()
                now = trio.current_time()
                event = self._event(snap, now)
                failed = isinstance(event, PollFailed)
                if failed and isinstance(last, Observed):
                    # The last reading held until now: DEADTIME counts from here, as it
                    # counts from upsmon's last good poll.
                    await manager.submit(attrs.evolve(last, now=now))
                if last is None or attrs.evolve(last, now=now) != event or now >= retry_at:
                    await manager.submit(event)
                    retry_at = now + manager.interval(self.system) if failed else math.inf
                last = event
                edge = math.nextafter(self.entry.silent_at(self.maxage), math.inf)
                with trio.move_on_at(retry_at if failed else edge):
                    await self.entry.versioned.wait_newer(version)
        finally:
            self.entry.remove_login(self._token)

    async def set_fsd(self) -> bool:
        # upsd checks each FSD against the upsd.users in force then (a SIGHUP may have
        # taken the right away since the start): so does the in-process primary.
        problem = None if self._refusal is None else self._refusal(self.mon)
        if problem is not None:
            log.error("FSD on %s refused, as upsd would refuse it: %s", self.system, problem)
            return False
        self.entry.set_fsd()
        return True

    async def numlogins(self) -> int | None:
        return len(self.entry.logins)

    async def logout(self) -> None:
        self.entry.remove_login(self._token)


#: Failures in a row between two "cannot reach" log lines, at most (the count doubles up to it).
FAILURE_LOG_MAX_GAP = 64


def _log_failure(failures: int) -> bool:
    """Whether the ``failures``-th failure in a row is logged.

    The 1st, 2nd, 4th, 8th... are, then every :data:`FAILURE_LOG_MAX_GAP`-th: an
    unreachable server is retried at every poll, but only the logging backs off.
    """
    if failures < 1:
        return False
    power_of_two = failures & (failures - 1) == 0
    return power_of_two or failures % FAILURE_LOG_MAX_GAP == 0


_T = TypeVar("_T")


async def _get_var(ups: str, var: str, client: NutClient) -> str:
    return await client.get_var(ups, var)


@attrs.frozen
class ClientTLS:
    """How the manager does STARTTLS with one MONITOR's server (see :func:`client_tls`).

    Attributes:
        context: The SSL context.
        pin: The SHA-256 fingerprint the certificate must have, or ``None``.
        server_hostname: The name the certificate must carry (CERTHOST's certname, else
            the MONITOR host).
        required: Refuse the server without TLS (FORCESSL, CERTHOST's forcessl or a pin).
        why_required: Which setting requires TLS, for the message.
    """

    context: ssl.SSLContext
    pin: bytes | None
    server_hostname: str
    required: bool
    why_required: str


def _certhost(config: UpsmonConfig, mon: Monitor) -> CertHost | None:
    """The CERTHOST line for the MONITOR's server (``host:port``, else ``host``), if any."""
    by_host = {entry.host: entry for entry in config.certhost}
    return by_host.get(f"{mon.host}:{mon.port}") or by_host.get(mon.host)


def _certpin(config: UpsmonConfig, mon: Monitor) -> bytes | None:
    pins = config.certpins
    return pins.get(f"{mon.host}:{mon.port}") or pins.get(mon.host)


def client_tls(config: UpsmonConfig, mon: Monitor) -> ClientTLS:
    """The TLS settings for one MONITOR, as upsmon applies upsmon.conf.

    ``CERTVERIFY`` (or CERTHOST's certverify for this host) checks the certificate against
    ``CERTPATH`` (a PEM CA file or a directory of PEM certificates; the system's CAs when
    not set) and the name (CERTHOST's certname, else the MONITOR host). ``FORCESSL`` (or
    CERTHOST's forcessl) refuses the server without TLS; so does a ``NUTTRIO_CERTPIN``,
    which also authenticates a self-signed certificate without CERTVERIFY. ``CERTFILE`` is
    this client's certificate and key, its password CERTIDENT's second word.

    Raises:
        ConfigError: If CERTPATH is an NSS database (upsmon's NSS build; the message says
            how to export its CA certificate) or a certificate file cannot be loaded.
    """
    host = _certhost(config, mon)
    pin = _certpin(config, mon)
    verify = host.verify if host is not None else config.certverify
    if host is not None and host.forcessl:
        required, why = True, f"CERTHOST {host.host} sets forcessl"
    elif config.forcessl:
        required, why = True, "FORCESSL is set"
    else:
        required, why = pin is not None, f"NUTTRIO_CERTPIN {mon.host} is set"
    certpath = config.certpath
    if certpath is not None and is_nss_database(certpath):
        raise ConfigError(
            f"CERTPATH {certpath} is an NSS database (upsmon's NSS build); nuttrio reads PEM: "
            f"export the server's CA certificate with 'certutil -L -d sql:{certpath} -n "
            "<nickname> -a > /etc/nut/ca.pem' and set CERTPATH /etc/nut/ca.pem",
            config.path,
        )
    password = config.certident.password if config.certident is not None else None
    try:
        context = client_ssl_context(
            ca=certpath if verify else None,
            verify=verify,
            pin=pin,
            certfile=config.certfile,
            password=password,
        )
    except OSError as exc:  # ssl.SSLError included
        raise ConfigError(f"TLS settings for {mon.system}: {exc}", config.path) from exc
    name = host.certname if host is not None and verify else mon.host
    return ClientTLS(context, pin, name, required, why)


class _RemoteSource:
    """A UPS at another attachment daemon, polled over the NUT protocol (nuttrio.client).

    Args:
        mon: The MONITOR line.
        config: upsmon.conf (TLS settings).
        login: Whether to log in (USERNAME, PASSWORD, LOGIN, PRIMARY) as upsmon does;
            ``nuttrio why`` only reads, so it never appears in NUMLOGINS.
    """

    def __init__(self, mon: Monitor, config: UpsmonConfig, *, login: bool = True) -> None:
        self.system = mon.system
        self.mon = mon
        self.config = config
        self.login = login
        self._client: NutClient | None = None
        self._lock = trio.Lock()
        self._logged_out = False
        self._tls = client_tls(config, mon)

    # -- connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection to the server is open."""
        return self._client is not None and not self._client.closed

    async def close(self) -> None:
        """Close the connection (without LOGOUT); the next request reconnects."""
        if self._client is not None:
            await self._client.aclose()
        self._client = None

    async def _connect(self) -> NutClient:
        """Connect, try STARTTLS, and log in as upsmon does (when :attr:`login`).

        Cancelled or failed: nothing is left open.
        """
        mon = self.mon
        tls = self._tls
        client = wrap_nut_stream(await trio.open_tcp_stream(mon.host, mon.port), host=mon.host)
        try:
            try:
                await client.starttls(tls.context, pin=tls.pin, server_hostname=tls.server_hostname)
            except NutError as exc:
                if tls.required:
                    raise ConnectionError(
                        f"{mon.host} refused STARTTLS (ERR {exc.code}) and {tls.why_required}"
                    ) from None
            if self.login:
                await self._log_in(client)
        except BaseException:
            await client.aclose()
            raise
        return client

    async def _log_in(self, client: NutClient) -> None:
        mon = self.mon
        steps = (
            ("USERNAME", client.username, mon.username),
            ("PASSWORD", client.password, mon.password),
            ("LOGIN", client.login, mon.ups),
        )
        for word, call, arg in steps:
            try:
                await call(arg)
            except NutError as exc:
                # upsmon goes on polling; the primary just won't count this host.
                log.warning("%s: %s refused: ERR %s", self.system, word, exc.code)
                break
        if mon.primary:
            try:
                await client.primary(mon.ups)
            except NutError as exc:
                log.warning("%s: not allowed to be primary: ERR %s", self.system, exc.code)

    async def request(self, call: Callable[[NutClient], Awaitable[_T]]) -> _T:
        """Run one client call (connecting first if needed) and return its result.

        Raises:
            NutError: The server refused the request; the connection stays open.
            OSError, ConnectionError, trio.TooSlowError, trio.BrokenResourceError,
            RemoteProtocolError: The connection failed; it is closed and will be reopened
                by the next request.
        """
        async with self._lock:
            try:
                with trio.fail_after(REQUEST_TIMEOUT * 4):
                    if self._client is None or self._client.closed:
                        self._client = await self._connect()
                with trio.fail_after(REQUEST_TIMEOUT):
                    return await call(self._client)
            except NutError:
                raise
            except BaseException:
                await self.close()
                raise

    # -- the source ----------------------------------------------------------------------

    async def poll(self, now_extra: bool) -> Event:
        """Read ``ups.status`` (and the battery figures when thresholds need them)."""
        ups = self.mon.ups
        try:
            try:
                status = await self.request(functools.partial(_get_var, ups, "ups.status"))
            except NutError as exc:
                return PollFailed(self.system, trio.current_time(), exc.code)
            variables: dict[str, str] = {}
            names = list(_EXTRA_VARS if now_extra else ())
            if "ALARM" in status.split():
                names.append("ups.alarm")
            for name in names:
                with contextlib.suppress(NutError):
                    variables[name] = await self.request(functools.partial(_get_var, ups, name))
            return Observed(self.system, status, trio.current_time(), variables)
        except _CONNECTION_ERRORS as exc:
            log.debug("%s: poll failed: %r", self.system, exc)
            return PollFailed(self.system, trio.current_time(), str(exc) or type(exc).__name__)

    async def run(
        self, manager: Manager, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        extra = manager.needs_battery_figures(self.system)
        failures = 0
        try:
            while not self._logged_out:
                event = await self.poll(extra)
                await manager.submit(event)
                if isinstance(event, PollFailed):
                    failures += 1
                    if _log_failure(failures):
                        log.warning(
                            "%s: cannot read %s:%s (%d failure(s) in a row): %s",
                            self.system,
                            self.mon.host,
                            self.mon.port,
                            failures,
                            event.reason,
                        )
                elif failures:
                    log.warning("%s: read again after %d failure(s)", self.system, failures)
                    failures = 0
                # Every poll, failing or not: a secondary that is not logged in is not
                # counted by its primary's HOSTSYNC wait (upsmon reconnects at its next poll).
                await trio.sleep(manager.interval(self.system))
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.close()

    async def set_fsd(self) -> bool:
        try:
            await self.request(lambda c: c.fsd(self.mon.ups))
        except NutError as exc:
            log.error("%s: FSD refused: ERR %s", self.system, exc.code)
            return False
        except _CONNECTION_ERRORS:
            return False
        return True

    async def numlogins(self) -> int | None:
        try:
            return await self.request(lambda c: c.num_logins(self.mon.ups))
        except (*_CONNECTION_ERRORS, NutError):
            return None

    async def logout(self) -> None:
        self._logged_out = True
        async with self._lock:
            client = self._client
            if client is not None and not client.closed:
                with (
                    trio.move_on_after(REQUEST_TIMEOUT),
                    contextlib.suppress(*_CONNECTION_ERRORS, NutError),
                ):
                    await client.logout()
            await self.close()


# -- the manager ---------------------------------------------------------------------------


class Manager:
    """A running manager. Obtained from :func:`run_manager` through ``task_status``.

    Attributes:
        machine: The decisions (read it for ``nuttrio why``-style reports).
        done: Set once the shutdown command has been run and this host has detached.
        shutdown_started: When (Trio time) the shutdown began: POWERDOWNFLAG, SHUTDOWNCMD.
    """

    def __init__(
        self,
        config: UpsmonConfig,
        notifier: NotifySink,
        store: StateStore | None,
        maxage: float,
        nursery: trio.Nursery,
        listeners: Sequence[tuple[str, int]] = (),
        refusal: Refusal | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.machine = machine_for(config, trio.current_time())
        self.done = trio.Event()
        self.shutdown_started: float | None = None
        self._nursery = nursery
        self._send, self._receive = trio.open_memory_channel[Event](256)
        self._sources: dict[str, _Source] = {}
        local = local_monitors(config, store, listeners)
        for mon in config.monitors:
            entry = store.get(mon.ups) if store is not None else None
            address = local.get(mon.system)
            if entry is not None and address is not None:
                self._sources[mon.system] = _LocalSource(mon, entry, maxage, address, refusal)
            else:
                self._sources[mon.system] = _RemoteSource(mon, config)

    def reload(self, config: UpsmonConfig) -> None:
        """Take a re-read upsmon.conf: timings, thresholds, SHUTDOWNCMD, POWERDOWNFLAG.

        MONITOR lines (and their power values and roles) cannot change while running.

        Raises:
            ValueError: If the MONITOR lines changed or MINSUPPLIES cannot be met; the
                running settings stay in force.
        """
        if [_monitor_key(m) for m in config.monitors] != [
            _monitor_key(m) for m in self.config.monitors
        ]:
            raise ValueError("the MONITOR lines changed: restart nuttrio to apply them")
        self.machine.update_settings(_policy(config), _specs(config))
        self.config = config

    def interval(self, system: str) -> float:
        """Seconds until the next reading of ``system`` (POLLFREQ or POLLFREQALERT)."""
        alert = self.machine.is_alert(system)
        return float(self.config.pollfreqalert if alert else self.config.pollfreq)

    def needs_battery_figures(self, system: str) -> bool:
        """Whether thresholds need battery.charge/battery.runtime for ``system``."""
        t = self.config.triggers_for(system)
        return t.runtime_below is not None or t.charge_below is not None

    async def submit(self, event: Event) -> None:
        """Give an event to the decision task (waits if it is behind)."""
        await self._send.send(event)

    def request_fsd(self) -> None:
        """Start the shutdown now, as ``upsmon -c fsd`` does. Never blocks, never lost."""
        self._nursery.start_soon(self.submit, UserFsd(trio.current_time()))

    async def _decide(self) -> None:
        while True:
            with trio.move_on_at(self.machine.next_deadline()) as scope:
                event = await self._receive.receive()
            if scope.cancelled_caught:
                event = Tick(trio.current_time())
            for action in self.machine.step(event):
                await self._carry_out(action)
            if self.shutdown_started is not None and not self.done.is_set():
                self.done.set()

    async def _carry_out(self, action: Action) -> None:
        if isinstance(action, Notify):
            self.notifier.send(action.type, action.system, action.detail)
            if action.type == "SHUTDOWN":
                log.critical("shutting down: %s", self.machine.shutdown_reason)
                self._nursery.start_soon(self.notifier.wall, SHUTDOWN_WALL)
        elif isinstance(action, SetFsd):
            self._nursery.start_soon(self._set_fsd, action.system)
        elif isinstance(action, QueryNumLogins):
            self._nursery.start_soon(self._query_numlogins, action.system)
        elif isinstance(action, Logout):
            # After the shutdown command: detach so the primary stops waiting for this host.
            with trio.move_on_after(REQUEST_TIMEOUT):
                await self._sources[action.system].logout()
        elif isinstance(action, RunShutdown):
            await self._shutdown()

    async def _set_fsd(self, system: str) -> None:
        if await self._sources[system].set_fsd():
            log.warning("FSD set on %s", system)

    async def _query_numlogins(self, system: str) -> None:
        count = await self._sources[system].numlogins()
        await self.submit(NumLogins(system, count, trio.current_time()))

    async def _shutdown(self) -> None:
        """Write POWERDOWNFLAG and run SHUTDOWNCMD; failures are logged, never raised."""
        self.shutdown_started = trio.current_time()
        if self.config.powerdownflag is not None:
            try:
                _write_powerdown_flag(Path(self.config.powerdownflag))
            except OSError as exc:
                log.error("cannot write POWERDOWNFLAG %s: %s", self.config.powerdownflag, exc)
        command = self.config.shutdowncmd
        if command is None:
            log.critical("no SHUTDOWNCMD configured: nothing to run")
        else:
            line = " ".join([command, *(shlex.quote(a) for a in self.config.shutdowncmd_args)])
            log.critical("running SHUTDOWNCMD: %s", line)
            try:
                with trio.move_on_after(SHUTDOWNCMD_TIMEOUT):
                    result = await trio.run_process(["/bin/sh", "-c", line], check=False)
                    if result.returncode:
                        log.error("SHUTDOWNCMD exited with status %s", result.returncode)
            except OSError as exc:
                log.error("cannot run SHUTDOWNCMD: %s", exc)


def _clear_stale_flag(config: UpsmonConfig) -> None:
    """At start-up, remove a POWERDOWNFLAG left by the last shutdown (only if it is ours)."""
    if config.powerdownflag is not None and check_powerdown_flag(config):
        with contextlib.suppress(OSError):
            os.unlink(config.powerdownflag)


async def run_manager(
    config: UpsmonConfig,
    notifier: NotifySink,
    *,
    store: StateStore | None = None,
    maxage: float = 15.0,
    listeners: Sequence[tuple[str, int]] = (),
    refusal: Refusal | None = None,
    task_status: trio.TaskStatus[Manager] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the manager until the shutdown is done (then per SHUTDOWNEXIT) or cancelled.

    Returns after the shutdown command ran and SHUTDOWNEXIT seconds passed; with a negative
    SHUTDOWNEXIT it keeps running (and logged in) until cancelled. Cancelling stops every
    source; remote connections are closed (a LOGOUT is sent only as part of a shutdown).

    Args:
        config: upsmon.conf.
        notifier: Where notifications go; its own task must be running.
        store: The local state store (``--primary``), for UPSes attached in this process.
        maxage: MAXAGE of the local attachment daemon (staleness of local UPSes).
        listeners: ``(host, port)`` of the local attachment daemon's listeners: a MONITOR
            is followed through ``store`` only when it names one of them (see
            :func:`local_monitors`), else it is polled over TCP like any remote one.
        refusal: For a UPS followed through ``store``: why upsd would refuse this
            MONITOR's FSD now (``None``: it would not), asked at each FSD; a refused FSD is
            logged and not set, as upsd's ``ERR ACCESS-DENIED`` to upsmon.
        task_status: Receives the :class:`Manager` once every source is started.
    """
    _clear_stale_flag(config)
    async with trio.open_nursery() as nursery:
        manager = Manager(config, notifier, store, maxage, nursery, listeners, refusal)
        nursery.start_soon(manager._decide)
        for source in manager._sources.values():
            await nursery.start(source.run, manager)
        task_status.started(manager)
        await manager.done.wait()
        if config.shutdownexit < 0:
            await trio.sleep_forever()
        await trio.sleep(config.shutdownexit)
        nursery.cancel_scope.cancel()


@attrs.frozen
class Reading:
    """What :func:`read_once` saw.

    Attributes:
        machine: The state machine fed with every reading.
        unreachable: System → why its server could not be read (no connection, or a
            server breaking the protocol); such readings count as failed polls.
    """

    machine: Machine
    unreachable: dict[str, str]


async def read_once(config: UpsmonConfig) -> Reading:
    """Read every MONITOR once over the protocol, for ``nuttrio why``.

    Nothing is notified or acted on, and no LOGIN is sent (the reading must not count in
    the server's NUMLOGINS, which a primary waiting through HOSTSYNC counts). A server that
    refuses a request (``ERR``) was reached: its refusal is the reading. Cancelling this
    closes every connection it opened.
    """
    machine = machine_for(config, trio.current_time())
    results: dict[str, Event] = {}
    unreachable: dict[str, str] = {}

    async def read(mon: Monitor) -> None:
        source = _RemoteSource(mon, config, login=False)
        t = config.triggers_for(mon.system)
        extra = t.runtime_below is not None or t.charge_below is not None
        try:
            event = results[mon.system] = await source.poll(extra)
            if not source.connected and isinstance(event, PollFailed):
                unreachable[mon.system] = (
                    f"server {mon.host}:{mon.port} unreachable: {event.reason}"
                )
        finally:
            await source.close()

    async with trio.open_nursery() as nursery:
        for mon in config.monitors:
            nursery.start_soon(read, mon)
    for mon in config.monitors:
        machine.step(results[mon.system])
    return Reading(machine, unreachable)
