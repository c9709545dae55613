"""The manager's decisions as a pure state machine: observations in, actions out.

General theory of operation
---------------------------
:class:`Machine` knows nothing of sockets, processes or clocks. The runner feeds it what it
observed (:class:`Observed`, :class:`PollFailed`, :class:`NumLogins`, :class:`UserFsd`) and
the passing of time (:class:`Tick`), each stamped with ``now``; :meth:`Machine.step` returns
the :class:`Action` objects to carry out, in order. :meth:`Machine.next_deadline` says when
the machine next needs a :class:`Tick` even if nothing is observed (DEADTIME, HOSTSYNC,
OBLBDURATION, FINALDELAY...), so timers are exact and testable on a mock clock.

Events are deduced from status-symbol transitions as RFC 9271 Table 5 describes, with the
notify types upsmon uses; unlike upsmon 2.8.0, clearing transitions are reported too
(NOTLOWBATT, NOTFSD, NOTREPLBATT, NOTCAL...).

The shutdown decision is upsmon's: a UPS is *critical* when it shows FSD, when it is on
battery with low battery (after OBLBDURATION; a secondary gives the primary HOSTSYNC seconds
to set FSD first), when it went silent for DEADTIME while last known on battery, when OFF
lasted OFFDURATION, when OVER lasted OVERDURATION or ALARM was seen while communications
were lost (ALARMCRITICAL); nuttrio adds optional thresholds on battery.runtime,
battery.charge and time on battery. The power values of the non-critical UPSes are summed;
below MINSUPPLIES the shutdown starts. It runs at most once and nothing stops it: a primary
sets FSD on its UPSes, waits until they count at most one login (itself) or HOSTSYNC passes,
then both roles notify SHUTDOWN, wait FINALDELAY and run the shutdown command.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from nuttrio.nutconf.notify_types import STATUS_NOTIFY_TYPES

__all__ = [
    "KNOWN_SYMBOLS",
    "Action",
    "Event",
    "Logout",
    "Machine",
    "MonitorSpec",
    "Notify",
    "NumLogins",
    "Observed",
    "Phase",
    "Policy",
    "PollFailed",
    "QueryNumLogins",
    "RunShutdown",
    "SetFsd",
    "Tick",
    "UserFsd",
    "Verdict",
]


# -- configuration -------------------------------------------------------------------------


@attrs.frozen
class MonitorSpec:
    """One MONITOR line, as the machine needs it.

    Attributes:
        system: The UPS as written (``ups@host:port``); notifications name it.
        power_value: How many power supplies of this host the UPS feeds (0 = watch only).
        primary: Whether this host is the primary for the UPS (sets FSD, waits for others).
        runtime_below: nuttrio: critical when on battery with battery.runtime below this.
        charge_below: nuttrio: critical when on battery with battery.charge below this.
        onbatt_after: nuttrio: critical after this long continuously on battery.
    """

    system: str
    power_value: int = 1
    primary: bool = False
    runtime_below: float | None = None
    charge_below: float | None = None
    onbatt_after: float | None = None


@attrs.frozen
class Policy:
    """upsmon's timing and shutdown settings (seconds), with upsmon's defaults.

    Attributes:
        minsupplies: Power supplies that must stay fed (MINSUPPLIES).
        hostsync: Primary: longest wait for secondaries; secondary: longest wait for FSD.
        deadtime: Silence after which a UPS last seen on battery counts as dead.
        finaldelay: Delay between the SHUTDOWN notification and the shutdown command.
        oblbduration: How long OB LB must last before it is critical.
        offduration: How long OFF must last before the UPS counts as not feeding (<0: never).
        overduration: How long OVER without communications must last to be critical (<0: never).
        alarmcritical: ALARM without communications is critical.
        rbwarntime: Interval between REPLBATT notifications while RB lasts.
        nocommwarntime: Interval between NOCOMM notifications while a UPS is unreachable.
    """

    minsupplies: int = 1
    hostsync: float = 15
    deadtime: float = 15
    finaldelay: float = 5
    oblbduration: float = 0
    offduration: float = 30
    overduration: float = -1
    alarmcritical: bool = True
    rbwarntime: float = 43200
    nocommwarntime: float = 300


# -- events in -------------------------------------------------------------------------------


@attrs.frozen
class Observed:
    """A successful reading of a UPS.

    Attributes:
        system: The MONITOR it belongs to.
        status: ``ups.status`` as read.
        now: When it was read.
        variables: Other variables read with it (battery.charge, battery.runtime, ups.alarm).
    """

    system: str
    status: str
    now: float
    variables: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class PollFailed:
    """A reading failed: no connection, an ``ERR`` reply, stale data or a timeout."""

    system: str
    now: float
    reason: str = ""


@attrs.frozen
class NumLogins:
    """The answer to :class:`QueryNumLogins`; ``count`` is ``None`` when the query failed."""

    system: str
    count: int | None
    now: float


@attrs.frozen
class UserFsd:
    """An administrator asked for the shutdown now (``upsmon -c fsd``)."""

    now: float


@attrs.frozen
class Tick:
    """Time has passed; re-evaluate timers."""

    now: float


Event = Observed | PollFailed | NumLogins | UserFsd | Tick


# -- actions out -----------------------------------------------------------------------------


@attrs.frozen
class Notify:
    """Send a notification.

    Attributes:
        type: The notify type (ONBATT, LOWBATT, ...).
        system: The UPS it is about, or ``None`` (SHUTDOWN).
        detail: Extra text (the ALARM text, the unknown status tokens).
    """

    type: str
    system: str | None
    detail: str = ""


@attrs.frozen
class SetFsd:
    """Primary: set the forced-shutdown flag of this UPS at its attachment daemon."""

    system: str


@attrs.frozen
class QueryNumLogins:
    """Primary: ask how many systems are logged in on this UPS; answer with NumLogins."""

    system: str


@attrs.frozen
class Logout:
    """Detach from this UPS (LOGOUT), so its primary stops waiting for this host."""

    system: str


@attrs.frozen
class RunShutdown:
    """Write the POWERDOWNFLAG and run the shutdown command. Emitted at most once."""


Action = Notify | SetFsd | QueryNumLogins | Logout | RunShutdown


@attrs.frozen
class Verdict:
    """Why a UPS is, or is not, critical now (``nuttrio why``)."""

    system: str
    critical: bool
    reason: str


class Phase(enum.Enum):
    """Where the manager is in the Shutdown Story."""

    #: Watching; nothing decided.
    MONITORING = enum.auto()
    #: Primary: FSD set, waiting for the secondaries to log out (at most HOSTSYNC).
    HOSTSYNC = enum.auto()
    #: SHUTDOWN notified; waiting FINALDELAY before the shutdown command.
    FINAL_DELAY = enum.auto()
    #: The shutdown command was issued.
    DONE = enum.auto()


#: Status symbols with a meaning (RFC 9271 Table 4, plus HB, ECO and the heartbeat's TICK/TOCK).
#: Any other token is "unclassified" (OTHER/NOTOTHER).
KNOWN_SYMBOLS = frozenset(
    [
        *("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF"),
        *("OVER", "TRIM", "BOOST", "FSD", "ALARM", "ECO", "TEST", "TICK", "TOCK"),
    ]
)

#: How often a primary asks for NUMLOGINS while it waits for the secondaries (as upsmon).
NUMLOGINS_INTERVAL = 0.25

# upsmon's "more than N seconds" tests are strict: wake just after the limit.
_EPSILON = 1e-6

# Symbol -> (type when it appears, type when it goes). OL/OB are handled apart.
_TRANSITIONS = STATUS_NOTIFY_TYPES


@attrs.define
class _Ups:
    """What the machine remembers of one UPS."""

    spec: MonitorSpec
    symbols: frozenset[str] = frozenset()
    seen: bool = False  # ever read successfully
    online: bool = False
    onbatt: bool = False
    line_known: bool = False  # OL or OB was seen at least once
    comm: bool | None = None  # None: never tried or never reached yet
    lastpoll: float | None = None
    oblb_since: float | None = None
    onbatt_since: float | None = None
    off_since: float | None = None
    over_since: float | None = None
    lastrbwarn: float = -math.inf
    lastncwarn: float = -math.inf
    alarm_text: str = ""
    other: frozenset[str] = frozenset()
    charge: float | None = None
    runtime: float | None = None

    @property
    def lowbatt(self) -> bool:
        return "LB" in self.symbols

    def dead(self, now: float, deadtime: float) -> bool:
        return self.comm is False and self.lastpoll is not None and now - self.lastpoll > deadtime


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Machine:
    """The manager's state: one entry per MONITOR line, and the shutdown phase.

    Args:
        monitors: The MONITOR lines.
        policy: Timings and thresholds.
        start: The time the manager starts (silence is counted from here).

    Raises:
        ValueError: If two MONITOR lines name the same system, or the power values add up to
            less than MINSUPPLIES (the host would shut down at once; upsmon refuses it too).
    """

    def __init__(self, monitors: Sequence[MonitorSpec], policy: Policy, start: float) -> None:
        total = sum(spec.power_value for spec in monitors)
        if total < policy.minsupplies:
            raise ValueError(
                f"the power values add up to {total}, less than MINSUPPLIES {policy.minsupplies}"
            )
        self.policy = policy
        self.phase = Phase.MONITORING
        self._ups: dict[str, _Ups] = {}
        for spec in monitors:
            if spec.system in self._ups:
                raise ValueError(f"MONITOR {spec.system} is listed twice")
            self._ups[spec.system] = _Ups(spec)
        self._start = start
        self._deadline: float | None = None  # HOSTSYNC or FINALDELAY end
        self._logins: dict[str, int | None] = {}
        self._next_query = math.inf
        self._now = start  # time of the last step: deadlines at or before it are done
        self.shutdown_reason = ""

    # -- queries ---------------------------------------------------------------------------

    @property
    def systems(self) -> list[str]:
        """The monitored systems, in MONITOR order."""
        return list(self._ups)

    def is_alert(self, system: str) -> bool:
        """Whether ``system`` should be polled at POLLFREQALERT (on battery, or unreachable)."""
        ups = self._ups[system]
        return ups.onbatt or ups.comm is False

    def verdicts(self, now: float) -> list[Verdict]:
        """For each UPS, whether it is critical now and the rule that decides."""
        out = []
        for ups in self._ups.values():
            critical, reason = self._critical(ups, now)
            out.append(Verdict(ups.spec.system, critical, reason))
        return out

    def fed(self, now: float) -> int:
        """Power supplies fed by non-critical UPSes now."""
        return sum(v.spec.power_value for v in self._ups.values() if not self._critical(v, now)[0])

    def next_deadline(self) -> float:
        """When the machine next needs a :class:`Tick` (``inf`` if nothing is pending).

        Always later than the last event stepped: what was due by then has been done.
        """
        if self.phase is Phase.DONE:
            return math.inf
        if self.phase is Phase.HOSTSYNC:
            return min(self._deadline if self._deadline is not None else math.inf, self._next_query)
        if self.phase is Phase.FINAL_DELAY:
            return self._deadline if self._deadline is not None else math.inf
        p = self.policy
        times = [math.inf]
        for ups in self._ups.values():
            if ups.comm is False and ups.lastpoll is not None:
                times.append(ups.lastpoll + p.deadtime + _EPSILON)
            if ups.oblb_since is not None:
                times.append(ups.oblb_since + p.oblbduration)
                if not ups.spec.primary:
                    times.append(ups.oblb_since + p.hostsync + _EPSILON)
            if ups.off_since is not None and p.offduration >= 0:
                times.append(ups.off_since + p.offduration + _EPSILON)
            if ups.over_since is not None and p.overduration >= 0:
                times.append(ups.over_since + p.overduration + _EPSILON)
            if ups.onbatt_since is not None and ups.spec.onbatt_after is not None:
                times.append(ups.onbatt_since + ups.spec.onbatt_after)
            if "RB" in ups.symbols:
                times.append(ups.lastrbwarn + p.rbwarntime + _EPSILON)
        return min((t for t in times if t > self._now), default=math.inf)

    def update_settings(self, policy: Policy, monitors: Sequence[MonitorSpec]) -> None:
        """Take new timings and thresholds (a reload); what was observed is kept.

        Args:
            policy: The new timings and MINSUPPLIES.
            monitors: The same systems, in the same order, with new thresholds.

        Raises:
            ValueError: If ``monitors`` names other systems or power values, or their power
                values add up to less than the new MINSUPPLIES; nothing is changed then.
        """
        old = [(u.spec.system, u.spec.power_value, u.spec.primary) for u in self._ups.values()]
        if [(m.system, m.power_value, m.primary) for m in monitors] != old:
            raise ValueError("the MONITOR lines changed: restart to apply them")
        total = sum(spec.power_value for spec in monitors)
        if total < policy.minsupplies:
            raise ValueError(
                f"the power values add up to {total}, less than MINSUPPLIES {policy.minsupplies}"
            )
        self.policy = policy
        for spec in monitors:
            self._ups[spec.system].spec = spec

    # -- the one entry point ---------------------------------------------------------------

    def step(self, event: Event) -> list[Action]:
        """Apply ``event`` and return the actions to carry out, in order.

        Raises:
            KeyError: If the event names a system that is not monitored.
        """
        actions: list[Action] = []
        self._now = max(self._now, event.now)
        if isinstance(event, Observed):
            self._observed(self._ups[event.system], event, actions)
        elif isinstance(event, PollFailed):
            self._failed(self._ups[event.system], event.now, actions)
        elif isinstance(event, NumLogins):
            self._logins[event.system] = event.count
        elif isinstance(event, UserFsd):
            self._start_shutdown(event.now, "shutdown requested by the administrator", actions)
        self._advance(event.now, actions)
        return actions

    # -- observations ----------------------------------------------------------------------

    def _observed(self, ups: _Ups, ev: Observed, actions: list[Action]) -> None:
        now, system = ev.now, ups.spec.system
        if ups.comm is False:
            actions.append(Notify("COMMOK", system))
        ups.comm = True
        ups.lastpoll = now
        ups.lastncwarn = -math.inf
        tokens = ev.status.upper().split()
        if not tokens:
            # An empty status means the UPS told nothing: keep what we knew.
            return
        new = frozenset(tokens)
        old = ups.symbols if ups.seen else frozenset()
        ups.seen = True
        ups.charge = _number(ev.variables.get("battery.charge"))
        ups.runtime = _number(ev.variables.get("battery.runtime"))
        if "OL" in new and not ups.online:
            if ups.line_known:
                actions.append(Notify("ONLINE", system))
            ups.online, ups.onbatt, ups.line_known = True, False, True
            ups.onbatt_since = None
        if "OB" in new and not ups.onbatt:
            actions.append(Notify("ONBATT", system))
            ups.online, ups.onbatt, ups.line_known = False, True, True
            ups.onbatt_since = now
        for symbol, (appear, vanish) in _TRANSITIONS.items():
            if symbol in new and symbol not in old:
                detail = ev.variables.get("ups.alarm", "") if symbol == "ALARM" else ""
                actions.append(Notify(appear, system, detail))
                if symbol == "RB":
                    ups.lastrbwarn = now
            elif symbol in old and symbol not in new:
                actions.append(Notify(vanish, system))
        if "ALARM" in new and "ALARM" in old:
            text = ev.variables.get("ups.alarm", "")
            if text and text != ups.alarm_text:
                actions.append(Notify("ALARM", system, text))
        ups.alarm_text = ev.variables.get("ups.alarm", "") if "ALARM" in new else ""
        other = new - KNOWN_SYMBOLS - {"OL", "OB"}
        if other != ups.other:
            if other:
                actions.append(Notify("OTHER", system, " ".join(sorted(other))))
            else:
                actions.append(Notify("NOTOTHER", system))
            ups.other = other
        ups.symbols = new
        ups.off_since = (
            (ups.off_since if ups.off_since is not None else now) if "OFF" in new else None
        )
        ups.over_since = (
            (ups.over_since if ups.over_since is not None else now) if "OVER" in new else None
        )
        if ups.onbatt and ups.lowbatt and "CAL" not in new:
            if ups.oblb_since is None:
                ups.oblb_since = now
        else:
            ups.oblb_since = None

    def _failed(self, ups: _Ups, now: float, actions: list[Action]) -> None:
        system, p = ups.spec.system, self.policy
        # NOCOMM repeats are counted from the last good reading, or from the start for a UPS
        # never reached (upsmon 2.8.0 counts from 1970 and repeats after 5 s: not copied).
        if ups.comm is not False:
            actions.append(Notify("COMMBAD", system))
            ups.comm = False
            return
        since = ups.lastpoll if ups.lastpoll is not None else self._start
        if now - since >= p.nocommwarntime and now - ups.lastncwarn > p.nocommwarntime:
            actions.append(Notify("NOCOMM", system))
            ups.lastncwarn = now

    # -- decisions -------------------------------------------------------------------------

    def _critical(self, ups: _Ups, now: float) -> tuple[bool, str]:
        p = self.policy
        if not ups.seen:
            return False, "never read: counted as feeding"
        if "FSD" in ups.symbols:
            return True, "FSD is set"
        if ups.dead(now, p.deadtime):
            if ups.onbatt:
                return (
                    True,
                    f"no news for more than DEADTIME ({p.deadtime:g} s), last seen on battery",
                )
            if "ALARM" in ups.symbols and p.alarmcritical:
                return True, "ALARM and communications lost (ALARMCRITICAL)"
        over = ups.over_since
        if ups.comm is False and over is not None and 0 <= p.overduration < now - over:
            return (
                True,
                f"OVER for more than OVERDURATION ({p.overduration:g} s), no communications",
            )
        if ups.off_since is not None and p.offduration >= 0 and now - ups.off_since > p.offduration:
            return True, f"OFF for more than OFFDURATION ({p.offduration:g} s)"
        t = ups.spec
        if ups.onbatt and "CAL" not in ups.symbols:
            if (
                t.runtime_below is not None
                and ups.runtime is not None
                and ups.runtime < t.runtime_below
            ):
                return (
                    True,
                    f"battery.runtime {ups.runtime:g} s below "
                    f"NUTTRIO_RUNTIME_BELOW {t.runtime_below:g}",
                )
            if (
                t.charge_below is not None
                and ups.charge is not None
                and ups.charge < t.charge_below
            ):
                return (
                    True,
                    f"battery.charge {ups.charge:g} % below "
                    f"NUTTRIO_CHARGE_BELOW {t.charge_below:g}",
                )
            if (
                t.onbatt_after is not None
                and ups.onbatt_since is not None
                and now - ups.onbatt_since >= t.onbatt_after
            ):
                return True, f"on battery for NUTTRIO_ONBATT_AFTER ({t.onbatt_after:g} s)"
        if not (ups.onbatt and ups.lowbatt):
            state = (
                "on battery" if ups.onbatt else "on line power" if ups.online else "status known"
            )
            return False, f"{state}, battery not low"
        if "CAL" in ups.symbols:
            return False, "OB LB during calibration (CAL): not critical"
        if ups.oblb_since is not None and now - ups.oblb_since < p.oblbduration:
            return False, f"OB LB for less than OBLBDURATION ({p.oblbduration:g} s)"
        if ups.spec.primary:
            return True, "on battery with low battery"
        if ups.oblb_since is not None and now - ups.oblb_since > p.hostsync:
            return True, f"OB LB and no FSD from the primary within HOSTSYNC ({p.hostsync:g} s)"
        return False, f"OB LB: waiting up to HOSTSYNC ({p.hostsync:g} s) for the primary's FSD"

    def _advance(self, now: float, actions: list[Action]) -> None:
        if self.phase is Phase.MONITORING:
            self._rb_repeat(now, actions)
            fed = self.fed(now)
            if fed < self.policy.minsupplies:
                reasons = [f"{v.system}: {v.reason}" for v in self.verdicts(now) if v.critical]
                reason = (
                    f"fed supplies {fed} < MINSUPPLIES {self.policy.minsupplies} "
                    f"({'; '.join(reasons)})"
                )
                self._start_shutdown(now, reason, actions)
        if self.phase is Phase.HOSTSYNC:
            # A failed query (None) is "unknown": keep waiting, up to HOSTSYNC.
            waiting = [s for s, n in self._logins.items() if n is None or n > 1]
            if not waiting or (self._deadline is not None and now >= self._deadline):
                self._final_delay(now, actions)
            elif now >= self._next_query:
                self._next_query = now + NUMLOGINS_INTERVAL
                actions.extend(QueryNumLogins(s) for s in waiting)
        if self.phase is Phase.FINAL_DELAY and self._deadline is not None and now >= self._deadline:
            self.phase = Phase.DONE
            actions.append(RunShutdown())
            # Detach only now: the primary must not cut the power before this host is down.
            actions.extend(Logout(u.spec.system) for u in self._ups.values() if not u.spec.primary)

    def _rb_repeat(self, now: float, actions: list[Action]) -> None:
        for ups in self._ups.values():
            if "RB" in ups.symbols and now - ups.lastrbwarn > self.policy.rbwarntime:
                ups.lastrbwarn = now
                actions.append(Notify("REPLBATT", ups.spec.system))

    def _start_shutdown(self, now: float, reason: str, actions: list[Action]) -> None:
        if self.phase is not Phase.MONITORING:
            return
        self.shutdown_reason = reason
        primaries = [u.spec.system for u in self._ups.values() if u.spec.primary]
        for system in primaries:
            actions.append(SetFsd(system))
        if primaries:
            self.phase = Phase.HOSTSYNC
            self._deadline = now + self.policy.hostsync
            self._logins = dict.fromkeys(primaries)
            self._next_query = now
            actions.append(Notify("SHUTDOWN_HOSTSYNC", None))
        else:
            self._final_delay(now, actions)

    def _final_delay(self, now: float, actions: list[Action]) -> None:
        self.phase = Phase.FINAL_DELAY
        self._deadline = now + self.policy.finaldelay
        actions.append(Notify("SHUTDOWN", None))


def policy_fields() -> Iterable[str]:
    """The names of :class:`Policy`'s settings (for mapping configuration onto it)."""
    return (f.name for f in attrs.fields(Policy))
