"""What the server answers: each request checked against the state store, as upsd 2.8.0 does.

:class:`ServerCore` is synchronous on purpose. Every reply is computed from one state-store
snapshot with no checkpoint in between, so a reply (a whole ``LIST VAR`` included) is never
torn by a driver update. Commands for a driver (SET VAR, INSTCMD) are queued without
blocking; a full or closed queue is upsd's "write to the driver failed".

The checks run in upsd 2.8.0's order (see shared/reference/upsd-protocol.md §3), because
clients see the first error that applies.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import attrs
import trio

from ..nutconf.common import atoi as _atoi
from ..protocol import ErrCode, Reply, ServerConnection, quote
from ..protocol import events as ev
from ..protocol import replies as rp
from ..state import (
    CommandKind,
    CommandResult,
    CommandStatus,
    DriverCommand,
    LoginRecord,
    StateStore,
    UpsEntry,
    UpsSnapshot,
    Variable,
)

__all__ = ["DescriptionSource", "ServerCore", "ServerSettings", "Session", "UserDirectory"]

log = logging.getLogger("nuttrio.server")

#: Shown for a variable or command without a description (upsd's text).
NO_DESCRIPTION = "Description unavailable"


class UserLike(Protocol):
    """What the server needs to know about an upsd.users entry."""

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
    """

    maxage: float = 15.0
    trackingdelay: float = 3600.0
    tls_available: bool = False


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


_TRACKING_TEXT = {
    CommandStatus.SUCCESS: rp.line("SUCCESS"),
    CommandStatus.UNKNOWN: rp.err(ErrCode.UNKNOWN),
    CommandStatus.INVALID_ARGUMENT: rp.err(ErrCode.INVALID_ARGUMENT),
    CommandStatus.FAILED: rp.err(ErrCode.FAILED),
}


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
        self._handlers: dict[type[ev.Request], Callable[[Session, ev.Request], Reply]] = {
            ev.Rejected: lambda s, r: rp.err(r.error),  # type: ignore[attr-defined]
            ev.Ver: lambda s, r: rp.line(rp.VER_TEXT),
            ev.NetVer: lambda s, r: rp.line(rp.NETVER_TEXT),
            ev.Help: lambda s, r: rp.line(rp.HELP_TEXT_RFC if s.conn.rfc else rp.HELP_TEXT),
            ev.StartTLS: self._starttls,
            ev.Username: lambda s, r: rp.ok(),
            ev.Password: lambda s, r: rp.ok(),
            ev.Login: self._login,  # type: ignore[dict-item]
            ev.Logout: lambda s, r: rp.ok("Goodbye"),
            ev.Primary: self._primary,  # type: ignore[dict-item]
            ev.Fsd: self._fsd,  # type: ignore[dict-item]
            ev.GetNumLogins: self._get_numlogins,  # type: ignore[dict-item]
            ev.GetUpsDesc: self._get_upsdesc,  # type: ignore[dict-item]
            ev.GetVar: self._get_var,  # type: ignore[dict-item]
            ev.GetType: self._get_type,  # type: ignore[dict-item]
            ev.GetDesc: self._get_desc,  # type: ignore[dict-item]
            ev.GetCmdDesc: self._get_cmddesc,  # type: ignore[dict-item]
            ev.GetTracking: self._get_tracking,  # type: ignore[dict-item]
            ev.ListUps: self._list_ups,
            ev.ListVar: self._list_var,  # type: ignore[dict-item]
            ev.ListRw: self._list_rw,  # type: ignore[dict-item]
            ev.ListCmd: self._list_cmd,  # type: ignore[dict-item]
            ev.ListClient: self._list_client,  # type: ignore[dict-item]
            ev.ListEnum: self._list_enum,  # type: ignore[dict-item]
            ev.ListRange: self._list_range,  # type: ignore[dict-item]
            ev.SetVar: self._set_var,  # type: ignore[dict-item]
            ev.SetTracking: lambda s, r: rp.ok(),
            ev.InstCmd: self._instcmd,  # type: ignore[dict-item]
        }

    # -- entry points ------------------------------------------------------------------------

    def handle(self, session: Session, request: ev.Request) -> Reply:
        """Compute the reply to ``request``. Never blocks, never raises for client input."""
        return self._handlers[type(request)](session, request)

    def closed(self, session: Session) -> None:
        """Forget what a closed connection held (its LOGIN counts no more)."""
        if session.login_entry is not None:
            session.login_entry.remove_login(session)
            session.login_entry = None

    # -- shared checks -------------------------------------------------------------------------

    def _available(self, name: str) -> tuple[UpsEntry, UpsSnapshot] | Reply:
        """UNKNOWN-UPS, then DRIVER-NOT-CONNECTED, then DATA-STALE (upsd's ups_available)."""
        entry = self.store.get(name)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        snap = entry.snapshot()
        if not snap.connected:
            return rp.err(ErrCode.DRIVER_NOT_CONNECTED)
        if not snap.dumped or entry.is_stale(self.settings.maxage):
            return rp.err(ErrCode.DATA_STALE)
        return entry, snap

    def _user_allows(self, session: Session, action: str) -> bool:
        user = self.users.get(session.conn.username or "")
        return user is not None and user.allows(action, session.conn.password)

    # -- session commands ----------------------------------------------------------------------

    def _starttls(self, session: Session, request: ev.Request) -> Reply:
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
        log.warning("%s@%s set FSD on UPS %s", session.conn.username, session.address, entry.name)
        entry.set_fsd()
        return rp.ok("FSD-SET")

    # -- GET -----------------------------------------------------------------------------------

    def _get_numlogins(self, session: Session, request: ev.GetNumLogins) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        return rp.numlogins(request.ups, len(found[0].logins), rfc=request.rfc)

    def _get_upsdesc(self, session: Session, request: ev.GetUpsDesc) -> Reply:
        entry = self.store.get(request.ups)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        return rp.upsdesc(request.ups, entry.desc if entry.desc else "Unavailable")

    def _get_var(self, session: Session, request: ev.GetVar) -> Reply:
        low = request.var.lower()
        if low.startswith("server."):
            # upsd answers these without even looking at the UPS name.
            if low == "server.info":
                return rp.var(request.ups, "server.info", rp.VER_TEXT)
            if low == "server.version":
                return rp.var(request.ups, "server.version", rp.SERVER_VERSION)
            return rp.err(ErrCode.VAR_NOT_SUPPORTED)
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        snap = found[1]
        var = snap.get(request.var)
        if var is None:
            return rp.err(ErrCode.VAR_NOT_SUPPORTED)
        value = snap.status if low == "ups.status" else var.value
        return rp.var(request.ups, request.var, value)

    def _get_type(self, session: Session, request: ev.GetType) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        var = found[1].get(request.var)
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

    def _get_desc(self, session: Session, request: ev.GetDesc) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        text = self.descriptions.var(request.var) or NO_DESCRIPTION
        return rp.desc(request.ups, request.var, text)

    def _get_cmddesc(self, session: Session, request: ev.GetCmdDesc) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        text = self.descriptions.cmd(request.cmd) or NO_DESCRIPTION
        return rp.cmddesc(request.ups, request.cmd, text)

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

    # -- LIST ----------------------------------------------------------------------------------

    def _list_ups(self, session: Session, request: ev.Request) -> Reply:
        lines = (f"UPS {e.name} {quote(e.desc or NO_DESCRIPTION)}" for e in self.store)
        return rp.block("UPS", lines)

    def _list_vars(self, ups: str, kind: str, *, rw_only: bool) -> Reply:
        found = self._available(ups)
        if isinstance(found, Reply):
            return found
        snap = found[1]
        lines = []
        for key in sorted(snap.variables):
            var = snap.variables[key]
            if rw_only and not var.rw:
                continue
            value = snap.status if key == "ups.status" and not rw_only else var.value
            lines.append(f"{kind} {ups} {var.name} {quote(value)}")
        return rp.block(f"{kind} {ups}", lines)

    def _list_var(self, session: Session, request: ev.ListVar) -> Reply:
        return self._list_vars(request.ups, "VAR", rw_only=False)

    def _list_rw(self, session: Session, request: ev.ListRw) -> Reply:
        return self._list_vars(request.ups, "RW", rw_only=True)

    def _list_cmd(self, session: Session, request: ev.ListCmd) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        cmds = sorted(found[1].commands, key=str.lower)
        return rp.block(f"CMD {request.ups}", (f"CMD {request.ups} {c}" for c in cmds))

    def _list_client(self, session: Session, request: ev.ListClient) -> Reply:
        entry = self.store.get(request.ups)
        if entry is None:
            return rp.err(ErrCode.UNKNOWN_UPS)
        lines = (f"CLIENT {entry.name} {r.address}" for r in entry.logins)
        return rp.block(f"CLIENT {request.ups}", lines)

    def _list_meta(
        self, ups: str, name: str, kind: str, render: Callable[[Variable], Iterable[str]]
    ) -> Reply:
        found = self._available(ups)
        if isinstance(found, Reply):
            return found
        var = found[1].get(name)
        if var is None:
            return rp.err(ErrCode.VAR_NOT_SUPPORTED)
        return rp.block(f"{kind} {ups} {name}", render(var))

    def _list_enum(self, session: Session, request: ev.ListEnum) -> Reply:
        u, n = request.ups, request.var
        return self._list_meta(
            u, n, "ENUM", lambda v: (f"ENUM {u} {n} {quote(x)}" for x in v.enums)
        )

    def _list_range(self, session: Session, request: ev.ListRange) -> Reply:
        u, n = request.ups, request.var
        return self._list_meta(
            u, n, "RANGE", lambda v: (f'RANGE {u} {n} "{lo}" "{hi}"' for lo, hi in v.ranges)
        )

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

    def _set_var(self, session: Session, request: ev.SetVar) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        entry, snap = found
        if not self._user_allows(session, "set"):
            return rp.err(ErrCode.ACCESS_DENIED)
        var = snap.get(request.var)
        if var is None:
            return rp.err(ErrCode.VAR_NOT_SUPPORTED)
        if not var.rw:
            return rp.err(ErrCode.READONLY)
        value = request.value
        if var.string:
            if var.aux < 1:
                return rp.err(ErrCode.SET_FAILED)
            if len(value) > var.aux:
                return rp.err(ErrCode.TOO_LONG)
        if var.enums and value not in var.enums:
            return rp.err(ErrCode.INVALID_VALUE)
        if var.ranges:
            number = _atoi(value)
            if not any(lo <= number <= hi for lo, hi in var.ranges):
                return rp.err(ErrCode.INVALID_VALUE)
        result = CommandResult()
        tid = self._new_tracking(session, result)
        command = DriverCommand(CommandKind.SET, request.var, value, tid, result)
        if not entry.submit(command):
            return rp.err(ErrCode.SET_FAILED)
        log.info(
            "%s@%s set %s on %s", session.conn.username, session.address, request.var, entry.name
        )
        return rp.ok(f"TRACKING {tid}") if tid else rp.ok()

    def _instcmd(self, session: Session, request: ev.InstCmd) -> Reply:
        found = self._available(request.ups)
        if isinstance(found, Reply):
            return found
        entry, snap = found
        if not snap.has_command(request.cmd):
            return rp.err(ErrCode.CMD_NOT_SUPPORTED)
        user = self.users.get(session.conn.username or "")
        if user is None or not user.allows_instcmd(request.cmd, session.conn.password):
            return rp.err(ErrCode.ACCESS_DENIED)
        result = CommandResult()
        tid = self._new_tracking(session, result)
        command = DriverCommand(CommandKind.INSTCMD, request.cmd, request.param, tid, result)
        if not entry.submit(command):
            return rp.err(ErrCode.INSTCMD_FAILED)
        log.info(
            "%s@%s ran %s on %s", session.conn.username, session.address, request.cmd, entry.name
        )
        return rp.ok(f"TRACKING {tid}") if tid else rp.ok()
