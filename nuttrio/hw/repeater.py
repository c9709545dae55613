"""A UPS of another NUT server re-exported as a local one (``dummy-ups`` repeater mode).

General theory of operation
---------------------------
A ups.conf section ``driver = dummy-ups`` with ``port = ups@host[:port]`` (or ``mode =
repeater``) follows UPS ``ups`` on the NUT server ``host`` (upsd or nuttrio) through
:mod:`nuttrio.client`, on the driver kit's polling loop
(:func:`nuttrio.hw.kit.run_polling_driver`): every ``pollinterval`` seconds (default 2)
it reads ``LIST VAR``, ``LIST RW`` and ``LIST CMD``, and for the writable variables
``GET TYPE`` with ``LIST ENUM``/``LIST RANGE`` (again only when the set of writable
variables changes or after a reconnection). The remote ``driver.*`` variables are left out,
as dummy-ups does; the repeater publishes its own (``driver.name``, ``driver.parameter.*``).

Where dummy-ups 2.8.0 stops (it neither forwards commands nor says its data is stale),
nuttrio goes on:

* SET VAR and INSTCMD are forwarded to the remote server, logged in with the section's
  ``username``/``password`` when given (nuttrio's keys; the remote upsd.users decides),
  with TRACKING when the remote server has it, so the remote driver's answer becomes the
  local one (without TRACKING, the remote ``OK`` counts as SUCCESS);
* while the remote server cannot be reached, or answers an error for the UPS (DATA-STALE,
  DRIVER-NOT-CONNECTED, UNKNOWN-UPS), the local UPS reads DATA-STALE; it is fresh again
  at the first good poll (the connection is made again at every poll until then).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping

import attrs
import trio

from ..client import NutClient, NutError, connect_nut
from ..nutconf import ConfigError, UpsSection
from ..nutconf.common import split_host_port
from ..protocol import ProtocolError
from ..state import CommandKind, CommandStatus, DriverCommand, DriverLink, Variable
from .base import DriverContext
from .dummy import DEFAULT_POLLINTERVAL, DRIVER_NAME, DRIVER_VERSION
from .kit import DeviceSilent, every, run_polling_driver

__all__ = [
    "RepeaterCore",
    "RepeaterSettings",
    "RepeaterUps",
    "is_repeater",
    "repeater_factory",
    "split_remote",
]

log = logging.getLogger(__name__)

#: The keys a repeater section may have (dummy-ups' own, and nuttrio's credentials).
_KEYS = frozenset(
    {
        "driver",
        "port",
        "desc",
        "mode",
        "pollinterval",
        "synchronous",
        "sdorder",
        "sddelay",
        "user",
        "group",
        "debug_min",
        "username",
        "password",
        "maxretry",
        "retrydelay",
    }
)

#: Remote errors that are about the UPS's data, not this request: the UPS reads stale.
_STALE_CODES = frozenset({"DATA-STALE", "DRIVER-NOT-CONNECTED", "UNKNOWN-UPS"})

#: Remote error tokens of SET VAR/INSTCMD as a local outcome (the rest: FAILED).
_OUTCOMES: Mapping[str, CommandStatus] = {
    "UNKNOWN": CommandStatus.UNKNOWN,
    "INVALID-ARGUMENT": CommandStatus.INVALID_ARGUMENT,
    "INVALID-VALUE": CommandStatus.INVALID_ARGUMENT,
    "READONLY": CommandStatus.INVALID_ARGUMENT,
    "TOO-LONG": CommandStatus.INVALID_ARGUMENT,
    "VAR-NOT-SUPPORTED": CommandStatus.INVALID_ARGUMENT,
    "CMD-NOT-SUPPORTED": CommandStatus.INVALID_ARGUMENT,
}


def split_remote(port: str, what: str) -> tuple[str, str, int]:
    """Split ``ups@host[:port]`` into the remote UPS name, the host and the TCP port.

    ``what`` names the reader in the message (``the repeater``).

    Raises:
        ValueError: With the reason, if ``port`` is not of that form.
    """
    remote, at, where = port.partition("@")
    if not at or not remote or not where:
        raise ValueError(f"{what} needs upsname@hostname[:port]")
    host, tcp_port = split_host_port(where)
    return remote, host, tcp_port


def is_repeater(section: UpsSection) -> bool:
    """Whether a ``dummy-ups`` section is in repeater mode (``mode``, else ``@`` in ``port``)."""
    mode = section.options.get("mode")
    return mode == "repeater" or (mode is None and "@" in section.port)


@attrs.frozen
class RepeaterSettings:
    """A repeater section, checked.

    Attributes:
        name: The local UPS name.
        port: ``port`` as written.
        remote: The UPS name on the remote server.
        host: The remote server.
        tcp_port: Its port.
        pollinterval: Seconds between polls.
        username: Login for forwarded commands, or ``None``.
        password: Its password.
        mode: ``mode`` as written, or ``None``.
    """

    name: str
    port: str
    remote: str
    host: str
    tcp_port: int
    pollinterval: float = DEFAULT_POLLINTERVAL
    username: str | None = None
    password: str | None = None
    mode: str | None = None

    @classmethod
    def from_section(cls, section: UpsSection, ups_globals: Mapping[str, str]) -> RepeaterSettings:
        """Check a repeater section.

        Raises:
            ConfigError: For a ``port`` not of the form ``ups@host[:port]``, a key dummy-ups
                does not know, or a ``pollinterval`` that is not a positive number.
        """

        def fail(message: str) -> ConfigError:
            return ConfigError(f"UPS [{section.name}]: {message}", section.path, section.lineno)

        for key in section.options:
            if key not in _KEYS and not key.startswith(("default.", "override.")):
                raise fail(f"{key!r} is not a valid setting for dummy-ups in repeater mode")
        try:
            remote, host, tcp_port = split_remote(section.port, "the repeater")
        except ValueError as exc:
            raise fail(f"port = {section.port!r}: {exc}") from None
        text = section.options.get("pollinterval", ups_globals.get("pollinterval"))
        try:
            pollinterval = float(text) if text is not None else DEFAULT_POLLINTERVAL
        except ValueError:
            pollinterval = 0
        if pollinterval <= 0:
            raise fail(f"invalid pollinterval: {text!r} (a positive number of seconds)")
        return cls(
            name=section.name,
            port=section.port,
            remote=remote,
            host=host,
            tcp_port=tcp_port,
            pollinterval=pollinterval,
            username=section.options.get("username"),
            password=section.options.get("password"),
            mode=section.options.get("mode"),
        )


class RepeaterCore:
    """What the repeater publishes: the remote UPS's variables and commands, and its own."""

    def __init__(self, settings: RepeaterSettings) -> None:
        self.settings = settings
        self._remote: dict[str, str] = {}
        self._types: dict[str, Variable] = {}  # writable variables: flags, enums, ranges
        self._commands: tuple[str, ...] = ()

    def own(self) -> list[Variable]:
        """The repeater's own ``driver.*`` variables."""
        s = self.settings
        values = {
            "driver.name": DRIVER_NAME,
            "driver.parameter.port": s.port,
            "driver.parameter.pollinterval": f"{s.pollinterval:g}",
            "driver.version": DRIVER_VERSION,
        }
        if s.mode is not None:
            values["driver.parameter.mode"] = s.mode
        return [Variable(k, v) for k, v in values.items()]

    def variables(self) -> list[Variable]:
        """The remote variables (typed as the remote server gives them), then the own ones."""
        out = []
        for name, value in self._remote.items():
            typed = self._types.get(name.lower())
            out.append(attrs.evolve(typed, value=value) if typed else Variable(name, value))
        return out + self.own()

    @property
    def commands(self) -> tuple[str, ...]:
        """The remote UPS's instant commands."""
        return self._commands

    async def refresh(self, nut: NutClient, *, retype: bool) -> None:
        """Read the remote UPS once (and the writable variables' types if needed).

        Raises:
            NutError, OSError, trio.BrokenResourceError, ProtocolError: As the client does.
        """
        ups = self.settings.remote
        remote = {k: v for k, v in (await nut.list_var(ups)).items() if not k.startswith("driver.")}
        writable = [n for n in await nut.list_rw(ups) if not n.startswith("driver.")]
        commands = tuple(await nut.list_cmd(ups))
        if retype or {n.lower() for n in writable} != set(self._types):
            self._types = {n.lower(): await _typed(nut, ups, n) for n in writable}
        self._remote, self._commands = remote, commands


async def _typed(nut: NutClient, ups: str, name: str) -> Variable:
    """A writable remote variable's flags, enums and ranges (value left empty)."""
    words = await nut.get_type(ups, name)
    string = next((w for w in words if w.startswith("STRING:")), None)
    enums: Iterable[str] = await nut.list_enum(ups, name) if "ENUM" in words else ()
    ranges = await nut.list_range(ups, name) if "RANGE" in words else []
    try:
        numeric = tuple((int(lo), int(hi)) for lo, hi in ranges)
    except ValueError:  # not what a NUT driver sends: no ranges then
        numeric = ()
    return Variable(
        name=name,
        value="",
        rw="RW" in words,
        string=string is not None,
        number="NUMBER" in words,
        aux=int(string.partition(":")[2] or 0) if string else 0,
        enums=tuple(enums),
        ranges=numeric,
    )


_CONNECTION_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError)


class RepeaterUps:
    """The repeater driver: a :class:`RepeaterCore` fed by one client connection.

    Args:
        settings: The checked section.
    """

    def __init__(self, settings: RepeaterSettings) -> None:
        self.settings = settings
        self._nut: NutClient | None = None

    async def _client(self) -> tuple[NutClient, bool]:
        """The connection, made (with LOGIN credentials and TRACKING) if there is none."""
        if self._nut is not None and not self._nut.closed:
            return self._nut, False
        nut = await connect_nut(self.settings.host, self.settings.tcp_port)
        try:
            if self.settings.username is not None:
                await nut.username(self.settings.username)
                await nut.password(self.settings.password or "")
            with contextlib.suppress(NutError):  # an older upsd: plain OK is all there is
                await nut.set_tracking(True)
        except BaseException:
            await nut.aclose()
            raise
        self._nut = nut
        return nut, True

    async def _drop(self) -> None:
        if self._nut is not None:
            await self._nut.aclose()
            self._nut = None

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the remote UPS and forward commands until cancelled.

        Started after the first poll, answered or not (the UPS reads DATA-STALE while the
        remote cannot be read). Cancellation closes the connection.
        """
        core = RepeaterCore(self.settings)
        limit = max(self.settings.pollinterval * 2, 5.0)

        async def poll(planned: float) -> None:
            try:
                with trio.fail_after(limit):
                    nut, fresh = await self._client()
                    await core.refresh(nut, retype=fresh)
            except NutError as exc:
                if exc.code not in _STALE_CODES:
                    await self._drop()
                raise DeviceSilent(f"{self.settings.port}: {exc}") from exc
            except (*_CONNECTION_ERRORS, trio.TooSlowError) as exc:
                await self._drop()
                why = str(exc) or type(exc).__name__
                raise DeviceSilent(f"{self.settings.port}: {why}") from exc

        try:
            await run_polling_driver(
                core,
                link,
                poll,
                self._execute,
                every(self.settings.pollinterval, trio.current_time()),
                task_status=task_status,
            )
        finally:
            with trio.CancelScope(shield=True):
                await self._drop()

    async def _execute(self, command: DriverCommand) -> CommandStatus:
        """Forward one SET VAR or INSTCMD; the remote answer is the outcome.

        A remote ``ERR`` maps to UNKNOWN, INVALID-ARGUMENT or FAILED; an unreachable or
        too slow remote is FAILED (and the connection is made again at the next poll).
        """
        ups = self.settings.remote
        try:
            with trio.fail_after(max(self.settings.pollinterval * 5, 10.0)):
                nut, _ = await self._client()
                if command.kind is CommandKind.SET:
                    result = await nut.set_var(ups, command.name, command.value or "")
                else:
                    result = await nut.instcmd(ups, command.name, command.value)
                await result
        except NutError as exc:
            return _OUTCOMES.get(exc.code, CommandStatus.FAILED)
        except (*_CONNECTION_ERRORS, trio.TooSlowError) as exc:
            log.warning(
                "UPS %s: %s %s not forwarded: %s",
                self.settings.name,
                command.kind.value,
                command.name,
                exc,
            )
            await self._drop()
            return CommandStatus.FAILED
        return CommandStatus.SUCCESS


def repeater_factory(section: UpsSection, context: DriverContext) -> RepeaterUps:
    """Build the repeater for a ``dummy-ups`` section with ``port = ups@host[:port]``.

    Raises:
        ConfigError: For a bad section (see :meth:`RepeaterSettings.from_section`).
    """
    return RepeaterUps(RepeaterSettings.from_section(section, context.ups_globals))
