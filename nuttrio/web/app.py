"""The web server's routes: the dashboard, the JSON API, /metrics, logins and actions.

Every route is a row of :data:`_ROUTES` (method, path pattern, handler); the JSON comes
from :mod:`nuttrio.jsonshapes`. Logging in checks a upsd.users account's password;
instant commands and SET then pass the protocol's own permission checks
(``User.allows_instcmd`` and ``User.allows("set")``, with the password given at login,
against the upsd.users in force at each action), and each action is logged as the
protocol server logs SET and INSTCMD (the audit line) and in the event log.

CSRF: the session cookie is ``HttpOnly`` and ``SameSite=Strict``; every state-changing
request must also carry the session's token in ``X-CSRF-Token``, be JSON, and come from
the page's own origin when the browser says where it comes from (``Origin``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any, Protocol

import attrs
import trio
import trio_websocket
from prometheus_client import Histogram

from ..audit import audit
from ..guard import AuthThrottle
from ..jsonshapes import (
    ClientList,
    CommandList,
    JsonValue,
    Sample,
    UpsDescriptions,
    Variables,
    unstructure,
)
from ..state import CommandKind, DriverCommand, StateStore, UpsEntry, refuse_value
from .feed import EventLog, RingLog, ups_state
from .http import Request, Response
from .metrics import ServerCounters, metrics_registry, render, render_ups
from .stream import StreamSource, serve_stream

__all__ = ["WebApp", "WebSource", "WebUser"]

log = logging.getLogger("nuttrio.web")

API = "/api/v1"
_COOKIE = "nuttrio_session"
_EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class WebUser(Protocol):
    """What the web needs of a upsd.users entry (nuttrio.nutconf.User)."""

    @property
    def password(self) -> str | None:
        """The password, or ``None`` (then nothing is allowed)."""
        ...

    def allows(self, action: str, password: str | None) -> bool:
        """Whether ``password`` is right and the user may perform ``action``."""
        ...

    def allows_instcmd(self, command: str, password: str | None) -> bool:
        """Whether ``password`` is right and the user may run instant command ``command``."""
        ...


@attrs.define
class WebSource:
    """What the web server reads; the daemon fills it in (the web imports no server).

    Attributes:
        store: The UPS data.
        users: The upsd.users entries in force now (read at each login and action).
        stats: The protocol server's counters now, or ``None``.
        verdict: The manager's verdict now (``nuttrio why``), or ``None`` if no manager.
        describe: A variable's description (upsd's cmdvartab), for /metrics' HELP.
        plaintext_ok: Whether a peer (its address) may log in and act over plain HTTP:
            the NUT port's TLS enforcement (``NUTTRIO_PLAINTEXT_FROM``) applied to the web
            when it serves without ``--web-tls``; everyone by default.
    """

    store: StateStore
    users: Callable[[], Mapping[str, WebUser]] = dict
    stats: Callable[[], ServerCounters | None] = lambda: None
    verdict: Callable[[], JsonValue] | None = None
    describe: Callable[[str], str | None] = lambda name: None
    plaintext_ok: Callable[[str], bool] = lambda address: True


@attrs.define
class _Session:
    username: str
    password: str
    csrf: str


def _json(
    data: JsonValue, status: int = 200, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps(data, ensure_ascii=False, indent=2).encode() + b"\n"
    headers = (("cache-control", "no-store"), *headers)
    return Response(status, body, "application/json; charset=utf-8", headers)


def _error(status: int, token: str, message: str | None = None) -> Response:
    return _json({"error": token, "message": message or token}, status)


def _audit(username: str, peer: str, ups: str, what: str, result: str) -> None:
    """One ``nuttrio.audit`` line for a web login or action, as the protocol server writes."""
    level = logging.INFO if result in ("SUCCESS", "PENDING") else logging.WARNING
    audit(level, username, peer, ups, what, result, via="web")


class _Refused(Exception):
    """A request refused with an error response (raised by the checks)."""

    def __init__(self, response: Response) -> None:
        self.response = response


class WebApp:
    """The routes over one :class:`WebSource`, with its event log and chart samples.

    Args:
        source: What to serve.
        events: The event log (logins and actions are added to it).
        samples: The chart's points.
        secure: Whether it is served over HTTPS (then plaintext_ok is not asked).
        chart_span: Seconds of chart kept (``--web-history``), told to the page.
    """

    def __init__(
        self,
        source: WebSource,
        events: EventLog,
        samples: RingLog[Sample],
        *,
        secure: bool = False,
        chart_span: float = 3 * 3600.0,
    ) -> None:
        self.source = source
        self.events = events
        self.samples = samples
        self.secure = secure
        self.sessions: dict[str, _Session] = {}
        #: Refused logins wait per peer address: 1 s, 2 s, 4 s... up to 30 s, one after the
        #: other per address; other addresses are not slowed. Loopback is throttled too (a
        #: reverse proxy in front of the dashboard connects from there).
        self.throttle = AuthThrottle(trio.current_time, free=0, exempt=())
        self.websockets = 0
        #: The bound listeners (set by :func:`~nuttrio.web.serve_web`).
        self.listeners: Sequence[trio.SocketListener] = ()
        self.registry = metrics_registry(
            source.store,
            source.stats,
            lambda: {"nuttrio_web_websockets": self.websockets},
            source.describe,
        )
        #: Seconds from a UPS status change in the store to the manager's notification.
        self.notify_latency = Histogram(
            "nuttrio_event_to_notify_seconds",
            "From a ups.status change in the store to the manager's notification",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
        )
        self.stream_source = StreamSource(source.store, events, samples, source.verdict, chart_span)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]] = [
            (m, re.compile(p), getattr(self, h)) for m, p, h in _ROUTES
        ]

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one HTTP request (never raises for client input)."""
        method = "GET" if request.method == "HEAD" else request.method
        allowed = []
        for route_method, pattern, handler in self._routes:
            found = pattern.fullmatch(request.path)
            if found is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            try:
                return await handler(request, *found.groups())
            except _Refused as refused:
                return refused.response
        if allowed:
            return _error(405, "METHOD-NOT-ALLOWED", f"use {', '.join(allowed)}")
        return _error(404, "NOT-FOUND", f"no such page: {request.path}")

    # -- pages and read-only API ---------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        name, kind = _STATIC[request.path]
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        headers = (("content-security-policy", _CSP), ("cache-control", "no-cache"))
        return Response(200, body, kind, headers)

    async def _ups_list(self, request: Request) -> Response:
        view = self.source.store.view()
        return _json(unstructure(UpsDescriptions({s.name: s.desc or "" for s in view.ups})))

    def _entry(self, name: str) -> UpsEntry:
        entry = self.source.store.get(name)
        if entry is None:
            raise _Refused(_error(404, "UNKNOWN-UPS", f"no UPS named {name}"))
        return entry

    def _available(self, name: str) -> UpsEntry:
        """The UPS, if its data can be read now (upsd's UNKNOWN-UPS, ... DATA-STALE)."""
        entry = self._entry(name)
        snap = entry.snapshot()
        if not snap.connected:
            raise _Refused(_error(503, "DRIVER-NOT-CONNECTED"))
        if snap.data_stale:
            raise _Refused(_error(503, "DATA-STALE"))
        return entry

    async def _ups_variables(self, request: Request, name: str) -> Response:
        snap = self._available(name).snapshot()
        return _json(unstructure(Variables({v.name: v.value for v in snap.variables.values()})))

    async def _ups_state(self, request: Request, name: str) -> Response:
        entry = self._entry(name)
        return _json(unstructure(ups_state(entry.snapshot(), entry.statistics().updates)))

    async def _ups_clients(self, request: Request, name: str) -> Response:
        snap = self._entry(name).snapshot()
        return _json(unstructure(ClientList(tuple(r.address for r in snap.logins))))

    async def _ups_commands(self, request: Request, name: str) -> Response:
        snap = self._available(name).snapshot()
        return _json(unstructure(CommandList(dict.fromkeys(snap.commands))))

    async def _event_list(self, request: Request) -> Response:
        after = _int(request.query.get("after", ["0"])[0])
        return _json([unstructure(e) for e in self.events.since(after)])

    async def _verdict(self, request: Request) -> Response:
        if self.source.verdict is None:
            return _error(404, "NO-MANAGER", "no manager runs in this process")
        return _json(self.source.verdict())

    async def _metrics(self, request: Request) -> Response:
        return Response(200, render(self.registry), _EXPOSITION)

    async def _ups_metrics(self, request: Request) -> Response:
        """nut_exporter's path: ``/ups_metrics?ups=NAME`` (scrape configs carry over)."""
        asked = request.query.get("ups")
        name = asked[0] if asked else None
        if name is not None:
            self._entry(name)  # 404 UNKNOWN-UPS
        return Response(200, render_ups(self.source.store, self.source.describe, name), _EXPOSITION)

    # -- sessions --------------------------------------------------------------------------------

    def session_of(self, request: Request) -> _Session | None:
        """The session whose cookie the request carries, if any."""
        token = _cookies(request.headers.get("cookie", "")).get(_COOKIE)
        return self.sessions.get(token) if token else None

    def _check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        if origin is not None and re.sub(r"^[a-z]+://", "", origin) != host:
            raise _Refused(_error(403, "BAD-ORIGIN", "cross-site request refused"))
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise _Refused(_error(415, "NOT-JSON", "send application/json"))

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _Refused(_error(400, "BAD-JSON", "the body must be a JSON object"))
        return data

    def _check_tls(self, request: Request) -> None:
        """Refuse a login or an action in plain HTTP from a peer the TLS rule covers."""
        if not self.secure and not self.source.plaintext_ok(request.peer):
            log.warning("web request from %s refused: plain HTTP", request.peer)
            message = "plain HTTP is refused from this address: use the https dashboard"
            raise _Refused(_error(403, "TLS-REQUIRED", message))

    async def _login(self, request: Request) -> Response:
        self._check_origin(request)
        self._check_tls(request)
        data = self._body(request)
        username, password = str(data.get("username", "")), str(data.get("password", ""))
        user = self.source.users().get(username)
        known = user is not None and user.password is not None
        if not (known and hmac.compare_digest(user.password or "", password)):  # type: ignore[union-attr]
            log.warning("web login as %s from %s refused", username, request.peer)
            _audit(username, request.peer, "-", "LOGIN", "ACCESS-DENIED")
            self.events.add("login", f"login as {username} from {request.peer} refused")
            # Right passwords never wait; more connections from one address do not guess
            # faster (its refusals are queued).
            await trio.sleep(self.throttle.failed(request.peer))
            return _error(403, "ACCESS-DENIED", "wrong user name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.sessions[token] = _Session(username, password, csrf)
        log.info("%s@%s logged in to the web", username, request.peer)
        self.events.add("login", f"{username} logged in from {request.peer}")
        cookie = f"{_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        return _json({"username": username, "csrf": csrf}, headers=(("set-cookie", cookie),))

    async def _session(self, request: Request) -> Response:
        found = self.session_of(request)
        if found is None:
            return _json({"username": None, "csrf": None})
        return _json({"username": found.username, "csrf": found.csrf})

    def _authorised(self, request: Request) -> _Session:
        self._check_origin(request)
        self._check_tls(request)
        found = self.session_of(request)
        if found is None:
            raise _Refused(_error(401, "NOT-LOGGED-IN", "log in first"))
        token = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(token, found.csrf):
            raise _Refused(_error(403, "BAD-CSRF-TOKEN", "missing or wrong X-CSRF-Token"))
        return found

    async def _logout(self, request: Request) -> Response:
        found = self._authorised(request)
        token = _cookies(request.headers.get("cookie", "")).get(_COOKIE, "")
        self.sessions.pop(token, None)
        self.events.add("login", f"{found.username} logged out")
        expired = f"{_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        return _json({"username": None}, headers=(("set-cookie", expired),))

    # -- actions ---------------------------------------------------------------------------------

    async def _instcmd(self, request: Request, name: str) -> Response:
        session = self._authorised(request)
        data = self._body(request)
        command, param = str(data.get("command", "")), data.get("param")
        what = " ".join(("INSTCMD", name, command, *(() if param is None else (str(param),))))
        entry = self._available(name)
        user = self.source.users().get(session.username)
        if not entry.snapshot().has_command(command):
            return self._refuse(request, session, name, what, 400, "CMD-NOT-SUPPORTED")
        if user is None or not user.allows_instcmd(command, session.password):
            return self._refuse(request, session, name, what, 403, "ACCESS-DENIED")
        order = DriverCommand(CommandKind.INSTCMD, command, None if param is None else str(param))
        return await self._submit(request, session, entry, order, what)

    async def _set_var(self, request: Request, name: str) -> Response:
        session = self._authorised(request)
        data = self._body(request)
        variable, value = str(data.get("variable", "")), str(data.get("value", ""))
        what = f"SET VAR {name} {variable} {value}"
        entry = self._available(name)
        user = self.source.users().get(session.username)
        if user is None or not user.allows("set", session.password):
            return self._refuse(request, session, name, what, 403, "ACCESS-DENIED")
        var = entry.snapshot().get(variable)
        refused = "VAR-NOT-SUPPORTED" if var is None else refuse_value(var, value)
        if refused is not None:
            return self._refuse(request, session, name, what, 400, refused)
        order = DriverCommand(CommandKind.SET, variable, value)
        return await self._submit(request, session, entry, order, what)

    def _refuse(
        self, request: Request, session: _Session, ups: str, what: str, status: int, token: str
    ) -> Response:
        """An action refused: audited as the protocol server audits its refusals."""
        _audit(session.username, request.peer, ups, what, token)
        return _error(status, token)

    async def _submit(
        self, request: Request, session: _Session, entry: UpsEntry, order: DriverCommand, what: str
    ) -> Response:
        """Queue ``order``; wait a little for the driver's answer (the page shows it).

        The audit line says the driver's answer, or ``PENDING`` if it has not come in 5 s.
        """
        failed = "INSTCMD-FAILED" if order.kind is CommandKind.INSTCMD else "SET-FAILED"
        if not entry.submit(order):
            _audit(session.username, request.peer, entry.name, what, failed)
            return _error(503, failed)
        done = "ran" if order.kind is CommandKind.INSTCMD else "set"
        self.events.add(
            "action", f"{session.username}@{request.peer} {done} {order.name}", entry.name
        )
        status = None
        with trio.move_on_after(5):
            status = await order.result.wait()
        result = "PENDING" if status is None else status.name
        _audit(session.username, request.peer, entry.name, what, result)
        return _json({"ups": entry.name, "result": result}, 200 if status is not None else 202)

    # -- the stream --------------------------------------------------------------------------------

    async def websocket(
        self, request: Request, ws_request: trio_websocket.WebSocketRequest
    ) -> None:
        """Serve ``WS /api/v1/stream`` (anything else is refused with 404)."""
        if request.path != f"{API}/stream":
            await ws_request.reject(404)
            return
        origin = request.headers.get("origin")
        if origin is not None and re.sub(r"^[a-z]+://", "", origin) != request.headers.get("host"):
            await ws_request.reject(403)
            return
        ws = await ws_request.accept()
        self.websockets += 1
        try:
            await serve_stream(self.stream_source, ws)
        finally:
            self.websockets -= 1
            await ws.aclose()


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _cookies(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header (the standard library parses it)."""
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


_NAME = r"([^/]+)"
#: method, path (a regular expression, whole match), handler method.
_ROUTES = (
    ("GET", r"/", "_page"),
    ("GET", r"/static/(?:app\.js|style\.css)", "_page"),
    ("GET", r"/metrics", "_metrics"),
    ("GET", r"/ups_metrics", "_ups_metrics"),
    ("GET", rf"{API}/ups", "_ups_list"),
    ("GET", rf"{API}/ups/{_NAME}", "_ups_variables"),
    ("GET", rf"{API}/ups/{_NAME}/state", "_ups_state"),
    ("GET", rf"{API}/ups/{_NAME}/clients", "_ups_clients"),
    ("GET", rf"{API}/ups/{_NAME}/commands", "_ups_commands"),
    ("POST", rf"{API}/ups/{_NAME}/instcmd", "_instcmd"),
    ("POST", rf"{API}/ups/{_NAME}/set", "_set_var"),
    ("GET", rf"{API}/events", "_event_list"),
    ("GET", rf"{API}/verdict", "_verdict"),
    ("GET", rf"{API}/session", "_session"),
    ("POST", rf"{API}/login", "_login"),
    ("POST", rf"{API}/logout", "_logout"),
)
