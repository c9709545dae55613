"""The state store: per-UPS variables and metadata, shared by drivers, server and manager.

General theory of operation
---------------------------
Each UPS has a :class:`UpsEntry`. Its driver changes it through a :class:`DriverLink`: the
changes made in one ``with link.update() as u:`` block are published together as a new
immutable :class:`UpsSnapshot`. Readers never see half an update:

* the server reads :meth:`UpsEntry.snapshot` synchronously and formats its whole reply from
  that one object (never a torn reply);
* the manager and the web dashboard iterate :meth:`UpsEntry.watch`, a *latest-value* watch:
  a slow reader skips intermediate snapshots instead of slowing the driver, which never
  blocks on publishing.

Commands (SET VAR, INSTCMD) travel the other way, from the server or manager to the driver,
as :class:`DriverCommand` objects on a small per-UPS channel; the driver resolves each one's
:class:`CommandResult`, which the sender may await (RFC 9271 TRACKING).

The entry also holds what upsd keeps per UPS outside the driver's data: the description, the
forced-shutdown latch, the list of clients that did LOGIN, and when the driver was last heard.
All of it is in the snapshot, so one object answers "what does this UPS look like now".

The whole store has a latest-value watch too (:meth:`StateStore.watch`, and
:attr:`StateStore.versioned` for the version): its version moves whenever any UPS's snapshot
does (driver data, description, logins, FSD, connection, staleness) and when a UPS is added,
removed or reordered; a reader gets a :class:`StoreView`, every snapshot in configuration
order. Staleness (nothing heard for more than MAXAGE) is *pushed*: :meth:`StateStore.run` is
a timer task that wakes at the next MAXAGE edge and publishes the UPS as ``silent``; the
driver's next publish or heartbeat publishes it fresh again.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Generic, TypeVar

import attrs
import trio

from .nutconf.common import atoi

__all__ = [
    "CommandKind",
    "CommandResult",
    "CommandStatus",
    "DerivedWatch",
    "DriverCommand",
    "DriverLink",
    "LoginRecord",
    "StateStore",
    "StoreView",
    "Update",
    "UpsEntry",
    "UpsSnapshot",
    "UpsStatistics",
    "Variable",
    "Watch",
    "refuse_value",
]

T = TypeVar("T")


class _WatchBase(Generic[T]):
    """The versioning both watches share: a version number and a wake-up for readers."""

    def __init__(self) -> None:
        self._version = 0
        self._changed = trio.Event()

    def _current(self) -> T:
        raise NotImplementedError

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()

    def get(self) -> tuple[int, T]:
        """Return ``(version, value)`` without blocking."""
        return self._version, self._current()

    async def wait_newer(self, seen: int) -> tuple[int, T]:
        """Wait until the version is newer than ``seen``; return ``(version, value)``.

        Always a checkpoint, even when a newer value is already there. Cancellation leaves
        the watch unchanged.
        """
        if self._version > seen:
            await trio.lowlevel.checkpoint()
        while self._version <= seen:
            await self._changed.wait()
        return self.get()

    async def values(self) -> AsyncIterator[T]:
        """Yield the current value, then each newer one, skipping those missed meanwhile."""
        version, value = self.get()
        yield value
        while True:
            version, value = await self.wait_newer(version)
            yield value


class Watch(_WatchBase[T]):
    """A latest-value broadcast: producers never block, readers see the newest value.

    Each value carries a version number; readers ask for anything newer than what they
    saw. Intermediate values may be skipped (eventual consistency), the latest never is.

    Args:
        value: The initial value (version 0).
    """

    def __init__(self, value: T) -> None:
        super().__init__()
        self._value = value

    def _current(self) -> T:
        return self._value

    def get(self) -> tuple[int, T]:
        """Return ``(version, value)`` without blocking."""
        return self._version, self._value  # the server's hot path: no call to _current

    def set(self, value: T) -> None:
        """Publish a new value and wake every waiting reader. Never blocks."""
        self._value = value
        self._bump()


class DerivedWatch(_WatchBase[T]):
    """A latest-value watch over state kept elsewhere: the value is computed at each read.

    Whoever changes that state calls :meth:`bump`; readers then see a newer version and
    the value as it is when they read it (built once per read, never torn).

    Args:
        compute: Builds the current value; must not block.
    """

    def __init__(self, compute: Callable[[], T]) -> None:
        super().__init__()
        self._compute = compute

    def _current(self) -> T:
        return self._compute()

    def bump(self) -> None:
        """Say the value changed: wake every waiting reader. Never blocks."""
        self._bump()


@attrs.frozen
class Variable:
    """One UPS variable as a driver publishes it (NUT's dstate entry).

    Attributes:
        name: The canonical spelling.
        value: The value, unescaped.
        rw: Writable with SET VAR.
        string: Flagged STRING (``aux`` is then its maximum length).
        number: Flagged NUMBER.
        aux: Maximum length of a STRING value.
        enums: Allowed values, in the driver's order.
        ranges: Allowed integer ranges ``(min, max)``, in the driver's order.
    """

    name: str
    value: str
    rw: bool = False
    string: bool = False
    number: bool = False
    aux: int = 0
    enums: tuple[str, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()


def refuse_value(var: Variable, value: str) -> str | None:
    """Why upsd refuses to SET ``var`` to ``value`` (its ERR token), in upsd's order, or ``None``.

    The protocol server and the web dashboard both check a SET with this.
    """
    if not var.rw:
        return "READONLY"
    if var.string:
        if var.aux < 1:
            return "SET-FAILED"
        if len(value) > var.aux:
            return "TOO-LONG"
    if var.enums and value not in var.enums:
        return "INVALID-VALUE"
    if var.ranges:
        number = atoi(value)
        if not any(lo <= number <= hi for lo, hi in var.ranges):
            return "INVALID-VALUE"
    return None


@attrs.frozen
class UpsSnapshot:
    """An immutable, consistent view of one UPS.

    Attributes:
        name: The UPS name as configured.
        variables: Variables keyed by lower-cased name.
        commands: Instant commands in the driver's order.
        connected: Whether a driver is running for the UPS.
        stale: Whether the driver declared its data stale (DATASTALE).
        fsd: The forced-shutdown latch (set by FSD, kept until the UPS is dropped).
        dumped: Whether the driver has published its first complete state.
        desc: The ``desc`` from ups.conf, if any.
        logins: The connections that did LOGIN, newest first.
        silent: Nothing heard from the driver for more than MAXAGE, as pushed by the
            store's timer (:meth:`StateStore.run`); cleared by the driver's next word.
    """

    name: str
    variables: Mapping[str, Variable] = attrs.field(factory=lambda: MappingProxyType({}))
    commands: tuple[str, ...] = ()
    connected: bool = False
    stale: bool = False
    fsd: bool = False
    dumped: bool = False
    desc: str | None = None
    logins: tuple[LoginRecord, ...] = ()
    silent: bool = False

    @property
    def data_stale(self) -> bool:
        """Whether clients get DATA-STALE: declared stale, silent, or no first state yet."""
        return self.stale or self.silent or not self.dumped

    def get(self, name: str) -> Variable | None:
        """Return the variable called ``name`` (any case), or ``None``."""
        return self.variables.get(name.lower())

    def value(self, name: str) -> str | None:
        """Return the value of ``name`` (any case), or ``None``."""
        var = self.variables.get(name.lower())
        return None if var is None else var.value

    def has_command(self, name: str) -> bool:
        """Whether the UPS offers the instant command ``name`` (any case)."""
        low = name.lower()
        return any(c.lower() == low for c in self.commands)

    @property
    def status(self) -> str:
        """``ups.status`` as clients read it: with ``FSD`` in front while the latch is set."""
        raw = self.value("ups.status") or ""
        if not self.fsd:
            return raw
        return f"FSD {raw}" if raw else "FSD"


class CommandKind(enum.Enum):
    """What a :class:`DriverCommand` asks for."""

    SET = "SET"
    INSTCMD = "INSTCMD"


class CommandStatus(enum.IntEnum):
    """Outcome of a driver command, with NUT's TRACKING status numbers."""

    SUCCESS = 0
    UNKNOWN = 1
    INVALID_ARGUMENT = 2
    FAILED = 3


class CommandResult:
    """The outcome slot of one :class:`DriverCommand`, resolved once by the driver.

    Attributes:
        on_resolve: Called with the outcome when it is resolved (the server's audit line
            of the driver's answer); it must not raise or block.
    """

    def __init__(self) -> None:
        self._status: CommandStatus | None = None
        self._done = trio.Event()
        self.on_resolve: Callable[[CommandStatus], None] | None = None

    @property
    def status(self) -> CommandStatus | None:
        """The outcome, or ``None`` while the driver has not answered."""
        return self._status

    def resolve(self, status: CommandStatus) -> None:
        """Record the outcome; later calls are ignored (the first answer counts)."""
        if self._status is None:
            self._status = status
            self._done.set()
            if self.on_resolve is not None:
                self.on_resolve(status)

    async def wait(self) -> CommandStatus:
        """Wait for the outcome. Cancellation leaves the result unresolved."""
        await self._done.wait()
        assert self._status is not None
        return self._status


@attrs.frozen
class DriverCommand:
    """A request for a driver: set a variable or run an instant command.

    Attributes:
        kind: SET or INSTCMD.
        name: The variable or command, as the client spelt it.
        value: The new value (SET) or the optional parameter (INSTCMD).
        tracking: The TRACKING id, if the sender asked for one.
        result: Resolved by the driver with the outcome.
    """

    kind: CommandKind
    name: str
    value: str | None = None
    tracking: str | None = None
    result: CommandResult = attrs.field(factory=CommandResult, eq=False)


@attrs.frozen
class LoginRecord:
    """A client connection that did LOGIN (ATTACH) on a UPS.

    Attributes:
        address: The peer address as text, e.g. ``127.0.0.1``.
        username: The USERNAME it gave.
    """

    address: str
    username: str | None = attrs.field(default=None, eq=False)


@attrs.frozen
class UpsStatistics:
    """Counters of one UPS, for the metrics endpoint (:meth:`UpsEntry.statistics`).

    Attributes:
        updates: Driver updates published (one per ``with link.update()`` block).
        restarts: Times a driver attached again after the first (driver restarts).
    """

    updates: int
    restarts: int


@attrs.frozen
class StoreView:
    """Every UPS of a store at one instant, in configuration order.

    Attributes:
        ups: The snapshots.
    """

    ups: tuple[UpsSnapshot, ...] = ()

    def get(self, name: str) -> UpsSnapshot | None:
        """The snapshot of UPS ``name`` (any case), or ``None``."""
        low = name.lower()
        return next((snap for snap in self.ups if snap.name.lower() == low), None)


class Update:
    """Changes to one UPS, collected by :meth:`DriverLink.update` and published together."""

    def __init__(self, snap: UpsSnapshot) -> None:
        self._vars = dict(snap.variables)
        self._cmds = list(snap.commands)
        self.stale = snap.stale
        self.dumped = snap.dumped

    def set(self, name: str, value: str) -> None:
        """Set ``name`` to ``value``, creating it with no flags if it is new."""
        key = name.lower()
        old = self._vars.get(key)
        if old is None:
            self._vars[key] = Variable(name=name, value=value)
        elif old.value != value:
            self._vars[key] = attrs.evolve(old, value=value)

    def delete(self, name: str) -> None:
        """Remove ``name`` if present."""
        self._vars.pop(name.lower(), None)

    def set_flags(
        self, name: str, *, rw: bool = False, string: bool = False, number: bool = False
    ) -> None:
        """Replace the flags of an existing variable (NUT's SETFLAGS)."""
        old = self._vars.get(name.lower())
        if old is not None:
            self._vars[name.lower()] = attrs.evolve(old, rw=rw, string=string, number=number)

    def set_aux(self, name: str, aux: int) -> None:
        """Set the maximum STRING length of an existing variable (NUT's SETAUX)."""
        old = self._vars.get(name.lower())
        if old is not None:
            self._vars[name.lower()] = attrs.evolve(old, aux=aux)

    def set_enums(self, name: str, values: tuple[str, ...]) -> None:
        """Replace the allowed values of an existing variable."""
        old = self._vars.get(name.lower())
        if old is not None:
            self._vars[name.lower()] = attrs.evolve(old, enums=values)

    def set_ranges(self, name: str, ranges: tuple[tuple[int, int], ...]) -> None:
        """Replace the allowed ranges of an existing variable."""
        old = self._vars.get(name.lower())
        if old is not None:
            self._vars[name.lower()] = attrs.evolve(old, ranges=ranges)

    def get(self, name: str) -> Variable | None:
        """Return the variable as it stands in this update."""
        return self._vars.get(name.lower())

    def add_command(self, name: str) -> None:
        """Offer instant command ``name`` (no duplicates, any case)."""
        if all(c.lower() != name.lower() for c in self._cmds):
            self._cmds.append(name)

    def delete_command(self, name: str) -> None:
        """Withdraw instant command ``name``."""
        self._cmds = [c for c in self._cmds if c.lower() != name.lower()]

    def clear(self) -> None:
        """Remove every variable and command."""
        self._vars.clear()
        self._cmds.clear()

    def _build(self, base: UpsSnapshot) -> UpsSnapshot:
        return attrs.evolve(
            base,
            variables=MappingProxyType(dict(self._vars)),
            commands=tuple(self._cmds),
            stale=self.stale,
            dumped=self.dumped,
        )


def _ignore(rearm: bool) -> None:
    pass


class UpsEntry:
    """Everything the store keeps for one UPS. Created by :meth:`StateStore.add`.

    Args:
        name: The UPS name.
        desc: The ``desc`` from ups.conf, if any.
        clock: Returns the current time in seconds (Trio's clock by default).
        command_buffer: How many driver commands may wait before senders see a full queue.
        on_change: Called after each new snapshot (the store bumps its own watch), with
            ``rearm=True`` when the UPS's MAXAGE edge may have come closer (a driver
            attached), so that the store's timer looks again.
    """

    def __init__(
        self,
        name: str,
        desc: str | None = None,
        *,
        clock: Callable[[], float] = trio.current_time,
        command_buffer: int = 16,
        on_change: Callable[[bool], None] = _ignore,
    ) -> None:
        self.name = name
        self._clock = clock
        self._on_change = on_change
        self._watch: Watch[UpsSnapshot] = Watch(UpsSnapshot(name=name, desc=desc))
        self._send, self._receive = trio.open_memory_channel[DriverCommand](command_buffer)
        self.last_heard = -math.inf
        self._logins: list[tuple[object, LoginRecord]] = []
        self._link: DriverLink | None = None
        self._updates = 0
        self._connects = 0
        self._supervisor_state: str | None = None
        #: When (the store's clock) ``ups.status`` as clients read it last changed.
        self.status_changed_at = -math.inf

    # -- readers -----------------------------------------------------------------------------

    def snapshot(self) -> UpsSnapshot:
        """The current snapshot (sync, consistent)."""
        return self._watch.get()[1]

    def watch(self) -> AsyncIterator[UpsSnapshot]:
        """Iterate the current snapshot and then newer ones (latest-value semantics)."""
        return self._watch.values()

    @property
    def versioned(self) -> Watch[UpsSnapshot]:
        """The underlying watch, for readers that track versions themselves."""
        return self._watch

    def is_stale(self, maxage: float, snap: UpsSnapshot | None = None) -> bool:
        """Whether data is stale: declared so, or not heard from for more than ``maxage``.

        Computed now from the clock (what the server answers); the snapshot's ``silent``
        is the same fact as last pushed by the store's timer. ``snap`` is the current
        snapshot when the caller already holds it.
        """
        if snap is None:
            snap = self.snapshot()
        return snap.stale or (self._clock() - self.last_heard) > maxage

    def silent_at(self, maxage: float) -> float:
        """When the UPS goes silent if nothing more is heard (``inf``: not pending).

        The UPS is silent once the clock is *past* this time (strictly more than
        ``maxage`` without news); only a connected UPS that is not silent yet has an edge.
        """
        snap = self.snapshot()
        if not snap.connected or snap.silent:
            return math.inf
        return self.last_heard + maxage

    def statistics(self) -> UpsStatistics:
        """The counters of this UPS (driver updates published, driver restarts)."""
        return UpsStatistics(updates=self._updates, restarts=max(self._connects - 1, 0))

    # -- the description, the forced-shutdown latch and logins ------------------------------

    @property
    def desc(self) -> str | None:
        """The ``desc`` from ups.conf; setting it publishes a new snapshot if it changed."""
        return self.snapshot().desc

    @desc.setter
    def desc(self, value: str | None) -> None:
        if value != self.desc:
            self._set(attrs.evolve(self.snapshot(), desc=value))

    def set_fsd(self) -> None:
        """Set the FSD latch; it stays set for the life of this entry."""
        snap = self.snapshot()
        if not snap.fsd:
            self._set(attrs.evolve(snap, fsd=True))

    def add_login(self, token: object, record: LoginRecord) -> None:
        """Record a LOGIN by the connection identified by ``token``."""
        self._logins.insert(0, (token, record))
        self._set_logins()

    def remove_login(self, token: object) -> None:
        """Forget the LOGIN of ``token`` (its connection closed); no-op if it has none."""
        kept = [(t, r) for t, r in self._logins if t is not token]
        if len(kept) != len(self._logins):
            self._logins = kept
            self._set_logins()

    @property
    def logins(self) -> list[LoginRecord]:
        """Connections that did LOGIN, newest first."""
        return list(self.snapshot().logins)

    def _set_logins(self) -> None:
        self._set(attrs.evolve(self.snapshot(), logins=tuple(r for _, r in self._logins)))

    def set_driver_state(self, value: str | None) -> None:
        """Publish ``driver.state`` (NUT 2.8.1's variable) as the daemon's supervisor sees it.

        Used while the driver is down (``restarting``, ``restart-storm``); it is not news
        from the driver (MAXAGE is unaffected). ``None`` (the driver runs again) removes
        the value set here unless the driver has published its own since.
        """
        snap = self.snapshot()
        variables = dict(snap.variables)
        if value is not None:
            variables["driver.state"] = Variable("driver.state", value)
        elif self._supervisor_state is not None and snap.value("driver.state") == (
            self._supervisor_state
        ):
            del variables["driver.state"]
        self._supervisor_state = value
        if variables != snap.variables:
            self._set(attrs.evolve(snap, variables=MappingProxyType(variables)))

    # -- commands ------------------------------------------------------------------------------

    def submit(self, command: DriverCommand) -> bool:
        """Queue ``command`` for the driver without blocking.

        Returns:
            ``False`` if no driver is connected or its queue is full (upsd's "write to the
            driver failed").
        """
        if not self.snapshot().connected:
            return False
        try:
            self._send.send_nowait(command)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    # -- the driver side -------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[DriverLink]:
        """Attach a driver for the duration of the ``with`` block.

        On entry the UPS reads as connected but without data (and heard from now); on exit
        (however the driver ends) it reads as not connected and queued commands are
        answered FAILED. Every attach after the first counts as a driver restart.

        Raises:
            RuntimeError: If another driver is already attached.
        """
        if self._link is not None:
            raise RuntimeError(f"UPS {self.name} already has a driver")
        link = DriverLink(self, self._receive)
        self._link = link
        self._connects += 1
        self.last_heard = self._clock()
        self._set(attrs.evolve(self.snapshot(), connected=True, silent=False), rearm=True)
        try:
            yield link
        finally:
            self._link = None
            self._set(attrs.evolve(self.snapshot(), connected=False))
            while True:
                try:
                    self._receive.receive_nowait().result.resolve(CommandStatus.FAILED)
                except (trio.WouldBlock, trio.EndOfChannel):
                    break

    def _set(self, snap: UpsSnapshot, *, rearm: bool = False) -> None:
        if snap.status != self._watch.get()[1].status:
            self.status_changed_at = self._clock()
        self._watch.set(snap)
        self._on_change(rearm)

    def _publish(self, update: Update) -> None:
        self.last_heard = self._clock()
        self._updates += 1
        self._set(attrs.evolve(update._build(self.snapshot()), silent=False))

    def _heartbeat(self) -> None:
        self.last_heard = self._clock()
        snap = self.snapshot()
        if snap.silent:
            self._set(attrs.evolve(snap, silent=False))

    def _set_connected(self, connected: bool) -> None:
        snap = self.snapshot()
        if connected:
            self.last_heard = self._clock()
        if snap.connected != connected:
            self._set(attrs.evolve(snap, connected=connected, silent=False), rearm=connected)

    def _check_silence(self, maxage: float) -> None:
        """Publish the UPS as silent if its MAXAGE edge has passed (the store's timer)."""
        if self._clock() > self.silent_at(maxage):
            self._set(attrs.evolve(self.snapshot(), silent=True))


class DriverLink:
    """A driver's handle on its UPS entry. Obtained from :meth:`UpsEntry.connect`.

    Attributes:
        commands: Where SET VAR and INSTCMD requests arrive.
    """

    def __init__(self, entry: UpsEntry, commands: trio.MemoryReceiveChannel[DriverCommand]) -> None:
        self._entry = entry
        self.commands = commands

    @property
    def name(self) -> str:
        """The UPS name."""
        return self._entry.name

    def snapshot(self) -> UpsSnapshot:
        """The UPS as last published."""
        return self._entry.snapshot()

    @contextmanager
    def update(self) -> Iterator[Update]:
        """Collect changes; they are published as one snapshot when the block ends.

        If the block raises, nothing is published.
        """
        update = Update(self._entry.snapshot())
        yield update
        self._entry._publish(update)

    def heartbeat(self) -> None:
        """Say the driver is alive without changing data (upsd's PING/PONG)."""
        self._entry._heartbeat()

    def set_connected(self, connected: bool) -> None:
        """Say whether the driver reaches what feeds it (a bridged NUT driver's socket).

        The UPS reads DRIVER-NOT-CONNECTED while ``False`` (commands are refused), as upsd
        answers for a driver whose socket it cannot reach; the link stays attached.
        ``True`` counts as news from the driver.
        """
        self._entry._set_connected(connected)


class StateStore:
    """All UPS entries of one daemon, by name (case-insensitive), in configuration order.

    Args:
        clock: Returns the current time in seconds (Trio's clock by default; :meth:`run`
            sleeps on Trio's clock, so give it another only if :meth:`run` is not used).
        maxage: upsd.conf's MAXAGE: seconds without news after which :meth:`run`
            publishes a UPS as silent.
    """

    def __init__(
        self, *, clock: Callable[[], float] = trio.current_time, maxage: float = 15.0
    ) -> None:
        self._clock = clock
        self._maxage = maxage
        self._entries: dict[str, UpsEntry] = {}
        self._watch: DerivedWatch[StoreView] = DerivedWatch(self._view)
        self._rearm = trio.Event()

    # -- the store-wide watch ----------------------------------------------------------------

    def _entry_changed(self, rearm: bool) -> None:
        self._watch.bump()
        if rearm:
            self._rearm.set()

    def _view(self) -> StoreView:
        return StoreView(tuple(entry.snapshot() for entry in self._entries.values()))

    def view(self) -> StoreView:
        """Every UPS now, in configuration order (sync, consistent)."""
        return self._view()

    def watch(self) -> AsyncIterator[StoreView]:
        """Iterate the current view and then newer ones (latest-value semantics).

        A new view follows any change of any UPS's snapshot (data, description, logins,
        FSD, connection, staleness) and every add, remove or reorder. A slow reader skips
        views; it never slows a driver.
        """
        return self._watch.values()

    @property
    def versioned(self) -> DerivedWatch[StoreView]:
        """The store-wide watch, for readers that track versions themselves."""
        return self._watch

    @property
    def maxage(self) -> float:
        """MAXAGE in seconds; setting it (a reload) re-arms the staleness timer."""
        return self._maxage

    @maxage.setter
    def maxage(self, value: float) -> None:
        if value != self._maxage:
            self._maxage = value
            self._rearm.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Push staleness: publish each UPS as silent at its MAXAGE edge, until cancelled.

        The task sleeps until the earliest edge of any UPS (strictly after it, as a UPS
        is stale only past MAXAGE), and wakes early only when an edge may have come closer
        (a driver attached, MAXAGE changed); news from a driver only moves its edge later,
        which the timer finds when it wakes. Going fresh again needs no timer: the
        driver's next publish or heartbeat clears ``silent`` at once.

        Cancellation stops the timer; nothing needs cleaning up.
        """
        task_status.started()
        while True:
            for entry in self:
                entry._check_silence(self._maxage)
            self._rearm = trio.Event()
            edge = min((e.silent_at(self._maxage) for e in self), default=math.inf)
            with trio.move_on_at(math.nextafter(edge, math.inf)):
                await self._rearm.wait()

    # -- entries -----------------------------------------------------------------------------

    def add(self, name: str, desc: str | None = None) -> UpsEntry:
        """Create the entry for ``name``.

        Raises:
            ValueError: If a UPS of that name (any case) exists.
        """
        key = name.lower()
        if key in self._entries:
            raise ValueError(f"UPS {name} is already defined")
        entry = UpsEntry(name, desc, clock=self._clock, on_change=self._entry_changed)
        self._entries[key] = entry
        self._watch.bump()
        return entry

    def remove(self, name: str) -> None:
        """Drop the entry for ``name`` (its FSD latch and logins go with it)."""
        if self._entries.pop(name.lower(), None) is not None:
            self._watch.bump()

    def get(self, name: str) -> UpsEntry | None:
        """Return the entry for ``name`` (any case), or ``None``."""
        return self._entries.get(name.lower())

    def reorder(self, names: Iterable[str]) -> None:
        """Put the entries in the order of ``names``; entries not named keep their place last."""
        first = [key for key in (n.lower() for n in names) if key in self._entries]
        rest = [key for key in self._entries if key not in set(first)]
        order = first + rest
        if order != list(self._entries):
            self._entries = {key: self._entries[key] for key in order}
            self._watch.bump()

    def __iter__(self) -> Iterator[UpsEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """UPS names in configuration order."""
        return [e.name for e in self._entries.values()]
