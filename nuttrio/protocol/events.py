"""Requests a NUT client sends, as typed events.

:class:`~nuttrio.protocol.connection.ServerConnection` turns request lines into these, and
:class:`~nuttrio.protocol.client.ClientConnection` sends them; both read the one grammar in
:mod:`~nuttrio.protocol.grammar`. Names
(UPS, variable, command) keep the client's spelling, because upsd echoes it in replies.
A request the grammar or the session state already rejects arrives as :class:`Rejected`.
"""

from __future__ import annotations

import attrs

from .errors import ErrCode
from .quoting import request_line

__all__ = [
    "Fsd",
    "GetCmdDesc",
    "GetDesc",
    "GetNumLogins",
    "GetTracking",
    "GetType",
    "GetUpsDesc",
    "GetVar",
    "Help",
    "InstCmd",
    "ListClient",
    "ListCmd",
    "ListEnum",
    "ListRange",
    "ListRw",
    "ListUps",
    "ListVar",
    "Login",
    "Logout",
    "NetVer",
    "Password",
    "Primary",
    "Rejected",
    "Request",
    "SetTracking",
    "SetVar",
    "StartTLS",
    "Username",
    "Ver",
]


@attrs.frozen(kw_only=True)
class Request:
    """Base of every request event. Do not instantiate directly."""

    def words(self) -> tuple[str, ...]:
        """The request's words: ``GetVar(ups="u", var="v").words()`` → ``GET VAR u v``.

        Raises:
            LocalProtocolError: If no request carries this event (:class:`Rejected`).
        """
        # The grammar imports this module for its table, so it is imported here.
        from .grammar import serialize

        return serialize(self)

    def to_bytes(self) -> bytes:
        """The request line, each word quoted only where NUT's tokenizer needs it.

        Raises:
            LocalProtocolError: If no request carries this event, or a word cannot be sent
                (longer than 512 characters, or a character NUT drops).
        """
        return request_line(self.words())


@attrs.frozen(kw_only=True)
class Rejected(Request):
    """A request answered with an error before it reaches the application.

    Attributes:
        error: The error to send back.
    """

    error: ErrCode


@attrs.frozen(kw_only=True)
class Ver(Request):
    """``VER``: the server's version text."""


@attrs.frozen(kw_only=True)
class NetVer(Request):
    """``NETVER`` or ``PROTVER``: the protocol version."""


@attrs.frozen(kw_only=True)
class Help(Request):
    """``HELP``: the list of commands."""


@attrs.frozen(kw_only=True)
class StartTLS(Request):
    """``STARTTLS``: switch the connection to TLS."""


@attrs.frozen(kw_only=True)
class Username(Request):
    """``USERNAME <name>``."""

    name: str


@attrs.frozen(kw_only=True)
class Password(Request):
    """``PASSWORD <password>``."""

    password: str


@attrs.frozen(kw_only=True)
class Login(Request):
    """``LOGIN <ups>``, or RFC 9271's ``ATTACH <ups>`` when ``rfc`` is true."""

    ups: str
    rfc: bool = False


@attrs.frozen(kw_only=True)
class Logout(Request):
    """``LOGOUT``, or RFC 9271's ``DETACH`` when ``rfc`` is true."""

    rfc: bool = False


@attrs.frozen(kw_only=True)
class Primary(Request):
    """``PRIMARY <ups>`` or its older name ``MASTER <ups>`` (``word`` says which)."""

    ups: str
    word: str = "PRIMARY"


@attrs.frozen(kw_only=True)
class Fsd(Request):
    """``FSD <ups>``: set the forced-shutdown latch."""

    ups: str


@attrs.frozen(kw_only=True)
class GetNumLogins(Request):
    """``GET NUMLOGINS <ups>``, or RFC 9271's ``GET NUMATTACH <ups>`` when ``rfc`` is true."""

    ups: str
    rfc: bool = False


@attrs.frozen(kw_only=True)
class GetUpsDesc(Request):
    """``GET UPSDESC <ups>``."""

    ups: str


@attrs.frozen(kw_only=True)
class GetVar(Request):
    """``GET VAR <ups> <var>``."""

    ups: str
    var: str


@attrs.frozen(kw_only=True)
class GetType(Request):
    """``GET TYPE <ups> <var>``."""

    ups: str
    var: str


@attrs.frozen(kw_only=True)
class GetDesc(Request):
    """``GET DESC <ups> <var>``."""

    ups: str
    var: str


@attrs.frozen(kw_only=True)
class GetCmdDesc(Request):
    """``GET CMDDESC <ups> <cmd>``."""

    ups: str
    cmd: str


@attrs.frozen(kw_only=True)
class GetTracking(Request):
    """``GET TRACKING [<id>]``: this connection's flag, or the result of a tracked request."""

    id: str | None = None


@attrs.frozen(kw_only=True)
class ListUps(Request):
    """``LIST UPS``."""


@attrs.frozen(kw_only=True)
class ListVar(Request):
    """``LIST VAR <ups>``."""

    ups: str


@attrs.frozen(kw_only=True)
class ListRw(Request):
    """``LIST RW <ups>``."""

    ups: str


@attrs.frozen(kw_only=True)
class ListCmd(Request):
    """``LIST CMD <ups>``."""

    ups: str


@attrs.frozen(kw_only=True)
class ListClient(Request):
    """``LIST CLIENT <ups>``."""

    ups: str


@attrs.frozen(kw_only=True)
class ListEnum(Request):
    """``LIST ENUM <ups> <var>``."""

    ups: str
    var: str


@attrs.frozen(kw_only=True)
class ListRange(Request):
    """``LIST RANGE <ups> <var>``."""

    ups: str
    var: str


@attrs.frozen(kw_only=True)
class SetVar(Request):
    """``SET VAR <ups> <var> <value>``."""

    ups: str
    var: str
    value: str


@attrs.frozen(kw_only=True)
class SetTracking(Request):
    """``SET TRACKING ON|OFF``."""

    on: bool


@attrs.frozen(kw_only=True)
class InstCmd(Request):
    """``INSTCMD <ups> <cmd> [<param>]``."""

    ups: str
    cmd: str
    param: str | None = None
