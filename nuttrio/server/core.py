"""What the server answers: each request checked against the state store, as upsd 2.8.0 does.

:class:`ServerCore` is synchronous on purpose. Every reply is computed from one state-store
snapshot with no checkpoint in between, so a reply (a whole ``LIST VAR`` included) is never
torn by a driver update. Commands for a driver (SET VAR, INSTCMD) are queued without
blocking; a full or closed queue is upsd's "write to the driver failed".

The checks run in upsd 2.8.0's order (see shared/reference/upsd-protocol.md §3), because
clients see the first error that applies.

Before any of that, two guards (see docs/security.md):

* TLS enforcement: a connection from outside ``ServerSettings.plaintext_from`` that has not
  done STARTTLS gets ``ERR TLS-NOT-ENABLED`` for every request but ``STARTTLS``, and nothing
  it sends is executed (USERNAME included);
* failed authentications (an unknown user or a wrong password at LOGIN, PRIMARY, FSD, SET,
  INSTCMD) are counted per peer address by an :class:`~nuttrio.guard.AuthThrottle`;
  the delay it asks for is left in ``Session.reply_delay`` for the TCP layer to wait
  before sending the refusal.

Every FSD, SET, INSTCMD, PRIMARY/MASTER and failed authentication is logged on the
``nuttrio.audit`` logger: user, peer, UPS, the request, the result and the tracking id.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import attrs
import trio

from ..audit import audit
from ..guard import AuthThrottle
from ..nutconf.upsd_conf import IPNetwork
from ..protocol import ErrCode, Reply, ServerConnection, quote
from ..protocol import events as ev
from ..protocol import replies as rp
from ..protocol.grammar import COMMANDS
from ..state import (
    CommandKind,
    CommandResult,
    CommandStatus,
    DriverCommand,
    LoginRecord,
    StateStore,
    UpsEntry,
    UpsSnapshot,
    refuse_value,
)
from .tls import plaintext_allowed

__all__ = [
    "DescriptionSource",
    "ServerCore",
    "ServerSettings",
    "ServerStats",
    "Session",
    "UserDirectory",
]

log = logging.getLogger("nuttrio.server")

#: Shown for a variable or command without a description (upsd's text).
NO_DESCRIPTION = "Description unavailable"


class UserLike(Protocol):
    """What the server needs to know about an upsd.users entry."""

    def password_ok(self, password: str | None) -> bool:
        """Whether ``password`` is this user's password (compared in constant time)."""
        ...

    def allows(self, action: str, password: str | None) -> bool:
        """Whether ``password`` is right and the user may perform ``action``."""
        ...

    def allows_instcmd(self, command: str, password: str | None) -> bool:
        """Whether ``password`` is right and the user may run instant command ``command``."""
        ...


UserDirectory = Mapping[str, UserLike]


class DescriptionSource(Protocol):
    """Texts for GET DESC and GET CMDDESC."""

    def var(self, name: str) -> str | None:
        """The description of variable ``name``, if known."""
        ...

    def cmd(self, name: str) -> str | None:
        """The description of instant command ``name``, if known."""
        ...


@attrs.frozen
class ServerSettings:
    """upsd.conf settings the request handling depends on.

    Attributes:
        maxage: Seconds without news from a driver before its data is stale (MAXAGE).
        trackingdelay: Seconds a TRACKING result is kept (TRACKINGDELAY).
        tls_available: Whether STARTTLS can be offered (a certificate is configured).
        plaintext_from: The networks whose clients may send commands without TLS, or
            ``None`` for everyone (see :func:`~nuttrio.server.tls.plaintext_allowed`).
    """

    maxage: float = 15.0
    trackingdelay: float = 3600.0
    tls_available: bool = False
    plaintext_from: tuple[IPNetwork, ...] | None = None


class Session:
    """Per-connection state the core keeps besides the protocol's own.

    Args:
        conn: The connection's protocol state.
        address: The peer's address as text (``127.0.0.1``, ``::1``).
    """

    def __init__(self, conn: ServerConnection, address: str) -> None:
        self.conn = conn
        self.address = address
        self.login_entry: UpsEntry | None = None
        #: Seconds to wait before sending the reply just computed (a failed
        #: authentication); the caller sets it back to 0 once it has waited.
        self.reply_delay = 0.0
        #: Whether the request being answered failed authentication.
        self.auth_failed = False
        #: Whether a command was refused for want of TLS (logged once per connection).
        self.refused_plaintext = False
        #: The settings under which this session may send any command (it runs inside
        #: TLS, or its peer may talk without); ``None`` until checked. A reload replaces
        #: the settings, so each new settings object is checked once.
        self.open_for: ServerSettings | None = None


_TRACKING_TEXT = {
    CommandStatus.SUCCESS: rp.line("SUCCESS"),
    CommandStatus.UNKNOWN: rp.err(ErrCode.UNKNOWN),
    CommandStatus.INVALID_ARGUMENT: rp.err(ErrCode.INVALID_ARGUMENT),
    CommandStatus.FAILED: rp.err(ErrCode.FAILED),
}


@attrs.define
class ServerStats:
    """Counters for a metrics endpoint, kept by the server as it runs.

    Plain integers, updated without a checkpoint; reading them never blocks.

    Attributes:
        connections_open: Client connections being served now.
        connections_accepted: Client connections accepted since the start.
        requests: Requests answered, by command word (``GET``, ``LIST``, ``LOGIN``...;
            ``ATTACH``/``DETACH`` and ``MASTER`` as the client spelled them). A request the
            protocol layer refused before the core (an unknown command, a line too long)
            counts as ``REJECTED``.
        errors: ``ERR`` replies sent, by token (``UNKNOWN-UPS``, ``DATA-STALE``...).
    """

    connections_open: int = 0
    connections_accepted: int = 0
    requests: Counter[str] = attrs.field(factory=Counter)
    errors: Counter[str] = attrs.field(factory=Counter)

    def count(self, request: ev.Request, reply: Reply) -> None:
        """Count one answered request and its error token, if any."""
        word = _COMMAND_WORDS.get(type(request))
        self.requests[word if word is not None else _command_word(request)] += 1
        if reply.error is not None:
            self.errors[reply.error.value] += 1


#: Events that carry their first word (see :func:`_command_word`).
_WORD_IN_EVENT = (ev.Login, ev.Logout, ev.Primary)


def _first_words() -> dict[type[ev.Request], str]:
    """Each request type's first word (NUT's where aliases share one, as PROTVER NETVER's).

    Events whose word is one of their fields (LOGIN/ATTACH, PRIMARY/MASTER) are left to
    :func:`_command_word`.
    """
    words: dict[type[ev.Request], str] = {ev.Rejected: "REJECTED"}
    for command in COMMANDS:
        if command.event not in _WORD_IN_EVENT:
            words.setdefault(command.event, command.words[0])
    return words


#: The first word of each request, for the counters (from the grammar's one table).
_COMMAND_WORDS = _first_words()


#: Requests every answer to which is written to the audit log (failed LOGINs are too).
_AUDITED: frozenset[type[ev.Request]] = frozenset({ev.Fsd, ev.SetVar, ev.InstCmd, ev.Primary})
_TLS_REQUIRED = rp.err(ErrCode.TLS_NOT_ENABLED)


def _command_word(request: ev.Request) -> str:
    """The request's first word, as NUT's command table names it."""
    match request:
        case ev.Login(rfc=rfc):
            return "ATTACH" if rfc else "LOGIN"
        case ev.Logout(rfc=rfc):
            return "DETACH" if rfc else "LOGOUT"
        case ev.Primary(word=word):
            return word.upper()
    return _COMMAND_WORDS[type(request)]


@attrs.define
class _Available:
    """A UPS that passed upsd's availability check, with the snapshot it was checked on.

    Not frozen: a frozen class's ``__init__`` costs a measurable share of a GET VAR.
    """

    entry: UpsEntry
    snap: UpsSnapshot


class ServerCore:
    """Answers requests from the state store, the users and the descriptions.

    Args:
        store: The UPS data.
        users: upsd.users entries by user name (case-sensitive); may be replaced on reload.
        descriptions: Texts for GET DESC / GET CMDDESC.
        settings: MAXAGE, TRACKINGDELAY and whether TLS is available.
        clock: Returns the current time (Trio's clock by default).
    """

    def __init__(
        self,
        store: StateStore,
        users: UserDirectory,
        descriptions: DescriptionSource,
        settings: ServerSettings | None = None,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.store = store
        self.users = users
        self.descriptions = descriptions
        self.settings = settings or ServerSettings()
        self._clock = clock
        self._tracking: dict[str, tuple[CommandResult, float]] = {}
        #: Delays for failed authentications, per peer address.
        self.throttle = AuthThrottle(clock)
        #: Counters for the metrics endpoint (requests and errors; the TCP layer counts
        #: connections).
        self.stats = ServerStats()

    # -- entry points ------------------------------------------------------------------------

    def handle(self, session: Session, request: ev.Request) -> Reply:
        """Compute the reply to ``request`` and count both in :attr:`stats`.

        Never blocks, never raises for client input. A request refused for want of TLS is
        not looked at further. After a failed authentication, ``session.reply_delay`` holds
        the seconds the caller should wait before sending the reply; the caller resets it.
        """
        if session.open_for is not self.settings and not self._admit(session, request):
            reply = _TLS_REQUIRED
        else:
            reply = self._answer(session, request)
        self.stats.count(request, reply)
        return reply

    def _admit(self, session: Session, request: ev.Request) -> bool:
        """The TLS enforcement (off the hot path: once per session and settings)."""
        settings = self.settings
        if session.conn.tls or plaintext_allowed(session.address, settings.plaintext_from):
            session.open_for = settings
            return True
        if type(request) is ev.StartTLS:
            return True
        if not session.refused_plaintext:
            session.refused_plaintext = True
            log.info("%s sent commands without STARTTLS: refused", session.address)
        return False

    def closed(self, session: Session) -> None:
        """Forget what a closed connection held (its LOGIN counts no more)."""
        if session.login_entry is not None:
            session.login_entry.remove_login(session)
            session.login_entry = None

    def _answer(self, session: Session, request: ev.Request) -> Reply:
        match request:
            # The request classes are disjoint, so the order only matters for speed: GET VAR,
            # the request of every poll, first and in full, then the others about a UPS.
            case ev.GetVar():
                if request.var[:7].lower() == "server.":
                    return _server_var(request)
                found = self._available(request.ups)
                return found if isinstance(found, Reply) else _get_var(request, found.snap)
            case (
                ev.GetNumLogins(ups=ups)
                | ev.GetType(ups=ups)
                | ev.GetDesc(ups=ups)
                | ev.GetCmdDesc(ups=ups)
                | ev.ListVar(ups=ups)
                | ev.ListRw(ups=ups)
                | ev.ListCmd(ups=ups)
                | ev.ListEnum(ups=ups)
                | ev.ListRange(ups=ups)
                | ev.SetVar(ups=ups)
                | ev.InstCmd(ups=ups)
            ):
                # The one availability check of every request about the UPS's data.
                found = self._available(ups)
                if isinstance(found, Reply):
                    if type(request) in _AUDITED:
                        return _audited(session, request, found)
                    return found
                return self._answer_available(session, request, found)
            case ev.Rejected(error=code):
                return rp.err(code)
            case ev.Ver():
                return rp.line(rp.VER_TEXT)
            case ev.NetVer():
                return rp.line(rp.NETVER_TEXT)
            case ev.Help():
                return rp.line(rp.HELP_TEXT_RFC if session.conn.rfc else rp.HELP_TEXT)
            case ev.StartTLS():
                return self._starttls()
            case ev.Username() | ev.Password() | ev.SetTracking():
                return rp.ok()
            case ev.Logout():
                return rp.ok("Goodbye")
            case ev.Login():
                reply = self._login(session, request)
                return _audited(session, request, reply) if session.auth_failed else reply
            case ev.Primary():
                return _audited(session, request, self._primary(session, request))
            case ev.Fsd():
                return _audited(session, request, self._fsd(session, request))
            case ev.GetUpsDesc():
                return self._get_upsdesc(request)
            case ev.GetTracking():
                return self._get_tracking(session, request)
            case ev.ListUps():
                return self._list_ups()
            case ev.ListClient():
                return self._list_client(request)
        raise TypeError(f"unexpected request {request!r}")  # pragma: no cover

    def _answer_available(self, session: Session, request: ev.Request, found: _Available) -> Reply:
        """Answer a request whose UPS passed :meth:`_available`."""
        match request:
            case ev.GetNumLogins():
                return rp.numlogins(request.ups, len(found.entry.logins), rfc=request.rfc)
            case ev.GetType():
                return _get_type(request, found.snap)
            case ev.GetDesc():
                text = self.descriptions.var(request.var) or NO_DESCRIPTION
                return rp.desc(request.ups, request.var, text)
            case ev.GetCmdDesc():
                text = self.descriptions.cmd(request.cmd) or NO_DESCRIPTION
                return rp.cmddesc(request.ups, request.cmd, text)
            case ev.ListVar():
                return _list_vars(request.ups, found.snap, "VAR", rw_only=False)
            case ev.ListRw():
                return _list_vars(request.ups, found.snap, "RW", rw_only=True)
            case ev.ListCmd():
                return _list_cmd(request.ups, found.snap)
            case ev.ListEnum() | ev.ListRange():
                return _list_meta(request, found.snap)
            case ev.SetVar():
                return _audited(session, request, self._set_var(session, request, found))
            case ev.InstCmd():
                return _audited(session, request, self._instcmd(session, request, found))
        raise TypeError(f"unexpected request {request!r}")  # pragma: no cover

    # -- shared checks -------------------------------------------------------------------------

    def _available(self, name: str) -> _Available | Reply:
        """UNKNOWN-UPS, then DRIVER-NOT-CONNECTED, then DATA-STALE (upsd's ups_available)."""
        entry = self.store.get(name)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        snap = entry.snapshot()
        if not snap.connected:
            return rp.err(ErrCode.DRIVER_NOT_CONNECTED)
        if not snap.dumped or entry.is_stale(self.settings.maxage, snap):
            return rp.err(ErrCode.DATA_STALE)
        return _Available(entry, snap)

    def _authorized(self, session: Session, allowed: Callable[[UserLike], bool]) -> bool:
        """Whether the session's user passes ``allowed``; counts a failed authentication.

        An unknown user or a wrong password is a failed authentication: it is throttled
        per peer (``session.reply_delay``) and audited. A right password without the
        permission is only refused.
        """
        user = self.users.get(session.conn.username or "")
        if user is not None and allowed(user):
            return True
        if user is None or not user.password_ok(session.conn.password):
            session.auth_failed = True
            session.reply_delay = self.throttle.failed(session.address)
        return False

    def _user_allows(self, session: Session, action: str) -> bool:
        password = session.conn.password
        return self._authorized(session, lambda user: user.allows(action, password))

    # -- session commands ----------------------------------------------------------------------

    def _starttls(self) -> Reply:
        if not self.settings.tls_available:
            return rp.err(ErrCode.FEATURE_NOT_CONFIGURED)
        return rp.ok("STARTTLS")

    def _login(self, session: Session, request: ev.Login) -> Reply:
        entry = self.store.get(request.ups)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        if not self._user_allows(session, "login"):
            return rp.err(ErrCode.ACCESS_DENIED)
        entry.add_login(session, LoginRecord(session.address, session.conn.username))
        session.login_entry = entry
        log.info("%s@%s attached to UPS %s", session.conn.username, session.address, entry.name)
        return rp.ok()

    def _primary(self, session: Session, request: ev.Primary) -> Reply:
        if self.store.get(request.ups) is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        if not (self._user_allows(session, "primary") or self._user_allows(session, "master")):
            return rp.err(ErrCode.ACCESS_DENIED)
        return rp.ok(f"{request.word.upper()}-GRANTED")

    def _fsd(self, session: Session, request: ev.Fsd) -> Reply:
        entry = self.store.get(request.ups)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        if not self._user_allows(session, "fsd"):
            return rp.err(ErrCode.ACCESS_DENIED)
        entry.set_fsd()
        return rp.ok("FSD-SET")

    # -- GET and LIST that do not need the UPS's data ---------------------------------------------

    def _get_upsdesc(self, request: ev.GetUpsDesc) -> Reply:
        entry = self.store.get(request.ups)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        return rp.upsdesc(request.ups, entry.desc if entry.desc else "Unavailable")

    def _get_tracking(self, session: Session, request: ev.GetTracking) -> Reply:
        if request.id is None:
            return rp.line("ON" if session.conn.tracking else "OFF")
        if not session.conn.tracking:
            return rp.err(ErrCode.FEATURE_NOT_CONFIGURED)
        self._expire_tracking()
        item = self._tracking.get(request.id.upper())
        if item is None:
            return rp.err(ErrCode.UNKNOWN)
        status = item[0].status
        return rp.line("PENDING") if status is None else _TRACKING_TEXT[status]

    def _list_ups(self) -> Reply:
        lines = (f"UPS {e.name} {quote(e.desc or NO_DESCRIPTION)}" for e in self.store)
        return rp.block("UPS", lines)

    def _list_client(self, request: ev.ListClient) -> Reply:
        entry = self.store.get(request.ups)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        lines = (f"CLIENT {entry.name} {r.address}" for r in entry.logins)
        return rp.block(f"CLIENT {request.ups}", lines)

    # -- SET and INSTCMD -----------------------------------------------------------------------

    def _new_tracking(self, session: Session, result: CommandResult) -> str | None:
        if not session.conn.tracking:
            return None
        self._expire_tracking()
        tid = str(uuid.uuid4()).upper()
        self._tracking[tid] = (result, self._clock())
        return tid

    def _expire_tracking(self) -> None:
        limit = self._clock() - self.settings.trackingdelay
        expired = [k for k, (_, at) in self._tracking.items() if at < limit]
        for key in expired:
            del self._tracking[key]

    def _set_var(self, session: Session, request: ev.SetVar, found: _Available) -> Reply:
        if not self._user_allows(session, "set"):
            return rp.err(ErrCode.ACCESS_DENIED)
        var = found.snap.get(request.var)
        if var is None:
            return rp.err(ErrCode.VAR_NOT_SUPPORTED)
        refused = refuse_value(var, request.value)
        if refused is not None:
            return rp.err(ErrCode(refused))
        return self._submit(session, found, request)

    def _instcmd(self, session: Session, request: ev.InstCmd, found: _Available) -> Reply:
        if not found.snap.has_command(request.cmd):
            return rp.err(ErrCode.CMD_NOT_SUPPORTED)
        password = session.conn.password
        if not self._authorized(session, lambda user: user.allows_instcmd(request.cmd, password)):
            return rp.err(ErrCode.ACCESS_DENIED)
        return self._submit(session, found, request)

    def _submit(
        self,
        session: Session,
        found: _Available,
        request: ev.SetVar | ev.InstCmd,
    ) -> Reply:
        """Queue a checked SET or INSTCMD for the driver: ``OK`` (``OK TRACKING id``).

        A full or closed queue is upsd's failed write to the driver: ``SET-FAILED`` or
        ``INSTCMD-FAILED``. The driver's answer, when it comes, is an audit line of its own.
        """
        value: str | None
        if isinstance(request, ev.SetVar):
            kind, name, value = CommandKind.SET, request.var, request.value
        else:
            kind, name, value = CommandKind.INSTCMD, request.cmd, request.param
        result = CommandResult()
        tid = self._new_tracking(session, result)
        result.on_resolve = functools.partial(
            _audit_outcome, session.conn.username or "-", session.address, request, tid or "-"
        )
        if not found.entry.submit(DriverCommand(kind, name, value, tid, result)):
            failed = ErrCode.SET_FAILED if kind is CommandKind.SET else ErrCode.INSTCMD_FAILED
            return rp.err(failed)
        return rp.ok(f"TRACKING {tid}") if tid else rp.ok()


def _audited(session: Session, request: ev.Request, reply: Reply) -> Reply:
    """Log one audit line (user, peer, UPS, request, result, tracking id); return ``reply``."""
    if reply.ok:
        result = "OK"
    else:
        token = reply.error.value if reply.error is not None else "ERR"
        result = f"{token} (authentication failed)" if session.auth_failed else token
    words = reply.data.split()
    tracking = words[2].decode("ascii", "replace") if words[:2] == [b"OK", b"TRACKING"] else "-"
    audit(
        # A refusal, and any FSD (it shuts systems down), is a warning.
        logging.INFO if reply.ok and not isinstance(request, ev.Fsd) else logging.WARNING,
        session.conn.username or "-",
        session.address,
        getattr(request, "ups", "-"),
        " ".join(request.words()),  # never PASSWORD: it is neither audited nor refused
        result,
        tracking,
    )
    session.auth_failed = False
    return reply


def _audit_outcome(
    user: str, peer: str, request: ev.SetVar | ev.InstCmd, tracking: str, status: CommandStatus
) -> None:
    """The audit line of a driver's answer to a SET or INSTCMD (``driver=SUCCESS``...)."""
    level = logging.INFO if status is CommandStatus.SUCCESS else logging.WARNING
    what = " ".join(request.words())
    audit(level, user, peer, request.ups, what, status.name, tracking, field="driver")


# -- replies computed from one snapshot -----------------------------------------------------------


def _server_var(request: ev.GetVar) -> Reply:
    """``server.*`` variables: upsd answers them without even looking at the UPS name."""
    low = request.var.lower()
    if low == "server.info":
        return rp.var(request.ups, "server.info", rp.VER_TEXT)
    if low == "server.version":
        return rp.var(request.ups, "server.version", rp.SERVER_VERSION)
    return rp.err(ErrCode.VAR_NOT_SUPPORTED)


def _get_var(request: ev.GetVar, snap: UpsSnapshot) -> Reply:
    var = snap.get(request.var)
    if var is None:
        return rp.err(ErrCode.VAR_NOT_SUPPORTED)
    value = snap.status if request.var.lower() == "ups.status" else var.value
    return rp.var(request.ups, request.var, value)


def _get_type(request: ev.GetType, snap: UpsSnapshot) -> Reply:
    var = snap.get(request.var)
    if var is None:
        return rp.err(ErrCode.VAR_NOT_SUPPORTED)
    tokens = []
    if var.rw:
        tokens.append("RW")
    if var.enums:
        tokens.append("ENUM")
    if var.ranges:
        tokens.append("RANGE")
    tokens.append(f"STRING:{var.aux}" if var.string else "NUMBER")
    return rp.type_(request.ups, request.var, tokens)


def _list_vars(ups: str, snap: UpsSnapshot, kind: str, *, rw_only: bool) -> Reply:
    lines = []
    for key in sorted(snap.variables):
        var = snap.variables[key]
        if rw_only and not var.rw:
            continue
        value = snap.status if key == "ups.status" and not rw_only else var.value
        lines.append(f"{kind} {ups} {var.name} {quote(value)}")
    return rp.block(f"{kind} {ups}", lines)


def _list_cmd(ups: str, snap: UpsSnapshot) -> Reply:
    cmds = sorted(snap.commands, key=str.lower)
    return rp.block(f"CMD {ups}", (f"CMD {ups} {c}" for c in cmds))


def _list_meta(request: ev.ListEnum | ev.ListRange, snap: UpsSnapshot) -> Reply:
    u, n = request.ups, request.var
    var = snap.get(n)
    if var is None:
        return rp.err(ErrCode.VAR_NOT_SUPPORTED)
    lines: Iterable[str]
    if isinstance(request, ev.ListEnum):
        kind, lines = "ENUM", (f"ENUM {u} {n} {quote(x)}" for x in var.enums)
    else:
        kind, lines = "RANGE", (f'RANGE {u} {n} "{lo}" "{hi}"' for lo, hi in var.ranges)
    return rp.block(f"{kind} {u} {n}", lines)
